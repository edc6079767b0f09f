"""The scenario's agents: the hypervisor (the PF's driver) and one guest driver per VM.

The agents (all ``async``, over :class:`~sim.system.system.System`):

- the hypervisor enumerates the device (sizes BARs, NumVFs, VF Enable), programs each VF's
  FB slice and the context save area through the GPU-IOV capability, initializes every
  active VF's context (INIT_GPU) and schedules: host-driven (IDLE, SAVE, LOAD, RUN, each
  awaited by polling EXECUTE, or by the command-done interrupt with `completion =
  "interrupt"`, every time slice) or the hardware scheduler (auto solid,
  auto liquid, overlapped). It answers mailbox requests (REQ_GPU_INIT_ACCESS ->
  READY_TO_ACCESS_GPU) and performs the scenario's FLRs;
- one guest driver per active VF asks for init access through the mailbox, then rings its
  doorbells, reads and writes its FB slice (checking what it reads back) and reads its
  registers at its workload's rates; with probability ``misbehave`` an action is one of
  three violations instead: an FB access past its slice, a write to a PF-only register, a
  ring of another VF's doorbell. Each must be answered BLOCKED, and the PF's counters must
  count exactly those.
"""

from random import Random

from rtl.common.interfaces import Status
from rtl.params import MiB
from rtl.common.iov_codes import IovCommand, IovStatus

from sim.drivers.host import ConfigDriver, enumerate_device
from sim.drivers.iov import IovDriver
from sim.drivers.mailbox import GuestMailbox, HostMailbox, PfEvent, VfRequest
from sim.system.scenario import VIOLATION_KINDS

__all__ = ["Hypervisor", "Guest"]


class Hypervisor:
    """The PF's driver: set-up, scheduling, mailbox, FLRs, counters (see the module docstring)."""

    def __init__(self, system, sc, out):
        self.sys, self.sc, self.out = system, sc, out
        self.p = system.p
        self.cfg = ConfigDriver(None, self.p, bus=system.bus("config"))
        self.ws = system.bus("world_switch")
        self.mb = HostMailbox(None, self.p, bus=system.bus("mmio"))
        self.mb.poll_limit = 5000
        self.active = list(range(1, sc.active_vfs + 1))
        self.cur = None
        self.flrs = sorted(sc.flr)
        # One read of GPUIOV_CMD a poll (no hang check): the report counts these requests.
        interrupt = ((lambda: system.interrupts, system.interrupt)
                     if sc.completion == "interrupt" else None)
        # GIM gives a command 2 s (the scenario's command_timeout_us), polled or not.
        polls = -(-sc.command_timeout_cycles() // sc.poll_every)
        self.iov = IovDriver(self.cfg, system.wait, poll_every=sc.poll_every,
                             timeout=polls, hang_check=False, cycle=lambda: system.cycle,
                             interrupt=interrupt)
        self.commands = self.iov.log  # (command, fn, nxt, status, cycles from write to done)
        #: Violation counters read just before each FLR cleared them: {kind: {vf: n}}.
        self.before_flr = {"fb_violations": {}, "reg_violations": {}, "xfn_blocked": {}}
        self.guests = []          # the guests' agents: it serves them until they are done

    async def command(self, command, fn=0, nxt=0):
        """Run one GPU-IOV command to its end; anything but COMMAND_DONE raises."""
        return await self.iov.command(command, fn, nxt, expect=IovStatus.COMMAND_DONE)

    async def init(self, vf):
        await self.command(IovCommand.INIT_GPU, vf)
        self.sys.engine.reset_fn(vf)

    async def setup(self):
        sc, p, cfg = self.sc, self.p, self.cfg
        self.sys.bars = await enumerate_device(None, p, sc.num_vfs, cfg=cfg)
        pf_units, csa_units, slice_units, _ = sc._fb_units(p)
        await cfg.write(0, "GPUIOV_CNTXT", SIZE=csa_units, LOC=0, OFFSET=pf_units)
        for vf in range(1, sc.num_vfs + 1):
            await cfg.write(0, "VF_FB", vf - 1, SIZE=slice_units - 1,
                            OFFSET=pf_units + csa_units + (vf - 1) * slice_units)
        fbp = self.sys.bus("fb_partition")
        for _ in range(10_000):
            layout = await fbp.read_fields("LAYOUT_STATUS")
            if not layout["BUSY"]:
                break
        if layout["REFUSED"]:
            last = await fbp.read_fields("LAYOUT_LAST")
            raise AssertionError(f"FB layout refused by the partition unit: {last}")
        mode = sc.mode
        await self.ws.write("SCHED", LIQUID=int(mode == "auto-liquid"),
                            OVERLAP=int(mode == "overlapped"))
        if mode != "host":
            for vf in self.active:
                await self.ws.write("TIME_SLICE", vf, CYCLES=sc.time_slice, RUN=1)
        for vf in self.active:
            await self.init(vf)
        self.cur = self.active[0]
        await self.command(IovCommand.LOAD_GPU_STATE, self.cur)
        await self.command(IovCommand.RUN_GPU, self.cur)
        if mode != "host":
            await self.command(IovCommand.ENABLE_AUTO_HW_SWITCH, self.cur)
        self.out["setup_done"] = self.sys.cycle
        # The scenario's times count from here: guest traffic, its end, the FLRs.
        self.traffic_end = self.sys.cycle + sc.run_cycles
        self.flrs = [(self.sys.cycle + at, vf) for at, vf in self.flrs]
        # The scenario's faults: from then on the VF's next work item never ends.
        for at, vf in sc.hang:
            self.sys.engine.hang_at(vf, self.sys.cycle + at)

    def _next_after(self, vf):
        k = self.active.index(vf) if vf in self.active else -1
        return self.active[(k + 1) % len(self.active)]

    async def switch_to(self, nxt):
        C = IovCommand
        start = self.sys.cycle
        status = await self.iov.command(C.IDLE_GPU, self.cur)
        if status == IovStatus.GFX_HANG:
            await self.recover(self.cur, start)
            return
        if status != IovStatus.COMMAND_DONE:
            raise AssertionError(f"IDLE_GPU({self.cur}) ended with {status.name}")
        for command, fn in ((C.SAVE_GPU_STATE, self.cur), (C.LOAD_GPU_STATE, nxt),
                            (C.RUN_GPU, nxt)):
            await self.command(command, fn)
        self.cur = nxt

    async def recover(self, vf, start):
        """IDLE_GPU of ``vf`` ended with GFX_HANG (its engine never drained): reset it with
        an FLR, as GIM does, and give the GPU to the next VM; its context is lost (INIT
        again), the others' are not."""
        hang = {"cycle": start, "vf": vf, "status": IovStatus.GFX_HANG.name}
        self.out["hangs"].append(hang)
        await self.do_flr(vf)
        hang["recovered"] = self.sys.cycle - start     # to the next VM running

    async def serve_mailbox(self):
        for vf in await self.mb.pending():
            msg, _ = await self.mb.take(vf)
            self.out["mailbox"].append((self.sys.cycle, vf, VfRequest(msg).name))
            if msg in (VfRequest.REQ_GPU_INIT_ACCESS, VfRequest.REQ_GPU_FINI_ACCESS,
                       VfRequest.REQ_GPU_RESET_ACCESS):
                await self.mb.post(vf, PfEvent.READY_TO_ACCESS_GPU)
                await self.mb.finish_post(vf)

    async def vf_counters(self, vf):
        """VF ``vf``'s violation counters, as the PF reads them (an FLR clears them)."""
        sys = self.sys
        return {"fb_violations": await sys.bus("fb_partition").read("VIOL_COUNT", vf),
                "reg_violations": await sys.bus("mmio").read("VIOL_COUNT", vf),
                "xfn_blocked": await sys.bus("gpu").read("XFN_COUNT", vf)}

    async def do_flr(self, vf):
        # The VM is stopped while its VF is reset (a real hypervisor pauses it), so the
        # counters read just before the FLR hold every violation it made until then.
        guest = next((g for g in self.guests if g.vf == vf), None)
        if guest:
            guest.hold = True
            while guest.in_action:
                await self.sys.wait(4)
        for kind, n in (await self.vf_counters(vf)).items():
            self.before_flr[kind][vf] = self.before_flr[kind].get(vf, 0) + n
        self.out["flrs"].append((self.sys.cycle, vf))
        await self.cfg.write(vf, "DEV_CTL", INITIATE_FLR=1)
        self.sys.flr(vf)
        state = await self.ws.read_fields("STATE")
        await self.init(vf)
        if self.sc.mode == "host" and not state["OWNER_VALID"]:
            # The reset VF owned the GPU: it is empty now; the next one gets it.
            nxt = self._next_after(vf)
            await self.command(IovCommand.LOAD_GPU_STATE, nxt)
            await self.command(IovCommand.RUN_GPU, nxt)
            self.cur = nxt
        if guest:
            guest.hold = False

    def finished(self):
        sys, sc = self.sys, self.sc
        if sys.cycle < self.traffic_end or not all(g.done for g in self.guests):
            return False
        return not sys.undelivered(self.active) or sys.cycle >= self.traffic_end + sc.drain_limit

    async def __call__(self):
        sc, sys = self.sc, self.sys
        await self.setup()
        next_switch = sys.cycle + sc.time_slice
        while not self.finished():
            await self.serve_mailbox()
            while self.flrs and self.flrs[0][0] <= sys.cycle:
                await self.do_flr(self.flrs.pop(0)[1])
            if sc.mode == "host" and sys.cycle >= next_switch and len(self.active) > 1:
                await self.switch_to(self._next_after(self.cur))
                next_switch = sys.cycle + sc.time_slice
            await sys.wait(sc.poll_every * 4)
        self.out["end_of_traffic"] = sys.cycle
        await self.collect()

    async def collect(self):
        """The PF's counters, read the way a hypervisor would."""
        gpu = self.sys.bus("gpu")
        counters = {"fb_violations": {}, "reg_violations": {}, "xfn_blocked": {}}
        for vf in range(1, self.sc.num_vfs + 1):
            for kind, n in (await self.vf_counters(vf)).items():
                counters[kind][vf] = n + self.before_flr[kind].get(vf, 0)
        counters["doorbell_ur"] = await gpu.read("DB_UR")
        counters["host_ur"] = await gpu.read("HOST_UR")
        counters["switches"] = await self.ws.read("SWITCHES")
        counters["switch_last"] = await self.ws.read("SWITCH_LAST")
        counters["switch_max"] = await self.ws.read("SWITCH_MAX")
        counters["phase_last"] = [await self.ws.read("PHASE_LAST", k) for k in range(4)]
        counters["phase_max"] = [await self.ws.read("PHASE_MAX", k) for k in range(4)]
        counters["host_switches"] = await self.ws.read("HOST_SWITCHES")
        counters["host_switch_last"] = await self.ws.read("HOST_SWITCH_LAST")
        counters["host_switch_max"] = await self.ws.read("HOST_SWITCH_MAX")
        counters["scrub_last"] = await gpu.read("SCRUB_LAST")
        counters["scrub_granules"] = await gpu.read("SCRUB_GRANULES")
        self.out["counters"] = counters
        self.out["commands"] = self.commands


class Guest:
    """VF ``vf``'s driver in its VM: init access, then its workload (see the module docstring)."""

    def __init__(self, system, sc, vf, out, hv_out):
        self.sys, self.sc, self.vf = system, sc, vf
        self.hv_out = hv_out          # the guest starts once the hypervisor has set up
        self.p = system.p
        self.wl = sc.workload_of(vf)
        self.rng = Random(sc.seed * 1000 + vf)
        self.mb = GuestMailbox(None, self.p, vf, bus=system.bus("mmio", vf))
        self.mb.poll_limit = 20_000
        self.regs = system.bus("mmio", vf)
        self.out = out
        self.tally = {kind: 0 for kind in ("doorbells", "fb_reads", "fb_writes", "reg_reads",
                                           *VIOLATION_KINDS)}
        self.errors = []
        self.shadow = {}          # FB offset -> value this VM wrote there
        self.value = 0
        self.done = False
        self.hold = False         # the hypervisor stops the VM (an FLR of its VF)
        self.in_action = False

    def _gap(self, every):
        return self.rng.randint(1, 2 * every - 1) if every > 1 else 1

    def _expect(self, what, got, want):
        if got != want:
            self.errors.append(f"VF {self.vf} cycle {self.sys.cycle}: {what} answered "
                               f"{got.name if hasattr(got, 'name') else got}, expected "
                               f"{want.name if hasattr(want, 'name') else want}")

    async def init_access(self):
        start = self.sys.cycle
        await self.mb.send(VfRequest.REQ_GPU_INIT_ACCESS)
        await self.mb.finish_send()
        event, _ = await self.mb.receive()
        ready = self.sys.cycle
        self._expect("REQ_GPU_INIT_ACCESS", PfEvent(event), PfEvent.READY_TO_ACCESS_GPU)
        await self.mb.send(VfRequest.REL_GPU_INIT_ACCESS)
        await self.mb.finish_send()
        self.out["init_access"] = {"requested": start, "ready": ready,
                                   "released": self.sys.cycle}

    async def doorbell(self, bad):
        sys, p = self.sys, self.p
        index = self.rng.randrange(p.doorbells_per_fn)
        if bad:
            others = [v for v in range(1, self.sc.num_vfs + 1) if v != self.vf]
            if not others:
                return await self.fb(False)
            target = self.rng.choice(others)
            self.tally["other_vf_doorbell"] += 1
            status, _ = await sys.mem(self.vf, sys.bar_base(target, 2) + 4 * index, write=True,
                                      data=0xBAD)
            return self._expect("doorbell of another VF", status, Status.BLOCKED)
        self.value += 1
        self.tally["doorbells"] += 1
        status, _ = await sys.mem(self.vf, sys.bar_base(self.vf, 2) + 4 * index, write=True,
                                  data=self.value)
        self._expect("doorbell", status, Status.OK)

    async def fb(self, bad):
        sys = self.sys
        base = sys.bar_base(self.vf, 0)
        slice_bytes = self.sc.slice_mib(self.p) * MiB
        if bad:
            room = self.p.vf_fb_aperture - slice_bytes
            if room <= 0:
                return await self.reg(True)
            offset = slice_bytes + self.rng.randrange(0, room, 4)
            self.tally["fb_outside_slice"] += 1
            status, _ = await sys.mem(self.vf, base + offset, write=self.rng.random() < 0.5,
                                      data=0xDEAD)
            return self._expect("FB access past the slice", status, Status.BLOCKED)
        if self.shadow and self.rng.random() < 0.5:
            offset = self.rng.choice(list(self.shadow))
            self.tally["fb_reads"] += 1
            status, value = await sys.mem(self.vf, base + offset)
            self._expect("FB read", status, Status.OK)
            if value != self.shadow[offset]:
                self.errors.append(f"VF {self.vf}: FB offset {offset:#x} read {value:#x}, "
                                   f"wrote {self.shadow[offset]:#x}")
            return
        offset = self.rng.randrange(0, 64 * 1024, 4)
        value = self.rng.getrandbits(32)
        self.tally["fb_writes"] += 1
        status, _ = await sys.mem(self.vf, base + offset, write=True, data=value)
        self._expect("FB write", status, Status.OK)
        self.shadow[offset] = value

    async def reg(self, bad):
        if bad:
            self.tally["pf_only_register"] += 1
            status, _ = await self.regs.access(self.regs.regmap.offset("GRBM_SOFT_RESET"),
                                               write=True, data=1)
            return self._expect("PF-only register write", status, Status.BLOCKED)
        self.tally["reg_reads"] += 1
        ident = self.regs.regmap.decode("IOV_FUNC_IDENTIFIER",
                                        await self.regs.read("IOV_FUNC_IDENTIFIER"))
        self._expect("IOV_FUNC_IDENTIFIER", (ident["FUNC_ID"], ident["IS_VF"]), (self.vf, 1))

    async def __call__(self):
        sys, wl, sc = self.sys, self.wl, self.sc
        while "setup_done" not in self.hv_out:
            await sys.wait(16)
        if wl.init_access:
            await self.init_access()
        actions = [(every, act) for every, act in ((wl.doorbell_every, self.doorbell),
                                                   (wl.fb_every, self.fb),
                                                   (wl.reg_every, self.reg)) if every > 0]
        due = [sys.cycle + self._gap(every) for every, _ in actions]
        end = self.hv_out["setup_done"] + sc.run_cycles
        while actions and sys.cycle < end:
            k = min(range(len(due)), key=due.__getitem__)
            if due[k] > sys.cycle:
                await sys.wait(due[k] - sys.cycle)
                continue
            if self.hold:
                await sys.wait(4)
                continue
            every, act = actions[k]
            self.in_action = True
            await act(self.rng.random() < wl.misbehave)
            self.in_action = False
            due[k] = sys.cycle + self._gap(every)
        self.out["tally"] = self.tally
        self.out["errors"] = self.errors
        self.done = True
