"""The whole GPU in simulation: one loop that ticks the clock, and everything around the
:class:`~rtl.top.gpu.SriovGpu` top that a real system would have.

- Agents (the hypervisor, one guest driver per VM) are ``async`` functions that await host
  requests (:meth:`System.config`, :meth:`System.mem`), waits (:meth:`System.wait`) and the
  PF's command-done interrupt (:meth:`System.interrupt`); the
  loop runs them cooperatively, one host request per cycle in the order they were made.
  They never tick the clock themselves, so the same agents run on any backend.
- Models: the FB memory (:class:`~sim.models.fbmem.FbMemoryModel`), the command processor
  and GPU engine (:class:`~sim.models.engine.Engine`: takes every doorbell, has work per
  function, drains when told to stop, and checks each function's engine state across
  world switches).
- Monitors: ownership and the world-switch sequence per cycle (:class:`Monitor`), every
  doorbell from ring to delivery.
"""

from collections import deque

from rtl.top.gpu import HostKind, gpu_regmap, reg_window
from rtl.pcie.config_space import REG_BAR
from rtl.memory.fb_partition import fb_partition_regmap
from rtl.common.interfaces import Status, channel_port
from rtl.mmio.decode import mmio_regmap
from rtl.common.iov_codes import SeqState
from rtl.world_switch.world_switch import world_switch_regmap

from sim.drivers.regbus import RegAccessError, RegisterAccess
from sim.runners.backend import Fields
from sim.models.engine import Engine
from sim.models.fbmem import FbMemoryModel
from sim.drivers.host import rid_of

__all__ = ["System", "Monitor", "HostBus", "SimulationStall", "HostPortError"]


class SimulationStall(RuntimeError):
    """The system stopped making progress (an agent waits for an answer that never comes)."""


class HostPortError(AssertionError):
    """The host port broke its promise: an accepted request unanswered, or answered twice."""


class _Agent:
    """An agent's coroutine, the cycle its wait ends (None: waiting for an answer or
    queued), and whether it still runs."""
    __slots__ = ("coroutine", "wake", "alive", "irq")

    def __init__(self, coroutine):
        self.coroutine, self.wake, self.alive = coroutine, None, True
        self.irq = False          # its wait also ends at the next command-done interrupt


class _Op:
    """What an agent awaits: the loop resumes it with the answer."""

    def __init__(self, what, **fields):
        self.kind = what
        self.fields = fields

    def __await__(self):
        return (yield self)


class HostBus(RegisterAccess):
    """A register bus over the host port, for the register drivers (``access`` like
    :class:`~sim.drivers.regbus.RegBusDriver`, reads and writes by name from
    :class:`~sim.drivers.regbus.RegisterAccess`): configuration (``space="config"``) or one
    register window of a function's register BAR, as driver ``requester`` sees it."""

    def __init__(self, system, regmap, space, requester=0, target=None):
        self.system = system
        self.regmap = regmap
        self.space = space
        self.requester = requester
        self.target = requester if target is None else target

    async def access(self, addr, *, write=False, data=0, fn=None, be=0xF):
        if self.space == "config":
            return await self.system.config(self.target if fn is None else fn, addr,
                                            write=write, data=data, be=be)
        target = self.target if fn is None else fn
        address = self.system.reg_address(target, self.space, addr)
        return await self.system.mem(self.requester, address, write=write, data=data, be=be)

    def refused(self, status, write, name, index, fn):
        """Every access by name is one the driver means to succeed."""
        raise RegAccessError(f"function {self.requester} {'writing' if write else 'reading'} "
                             f"{name}[{index}]: {status}")


class Monitor:
    """Who owns the GPU and what the world switch does, cycle by cycle, as segments; and
    each world switch's phases (cycles in DRAIN, SAVE, LOAD, OVERLAP, SWAP + RUN)."""

    PHASES = {SeqState.DRAIN: "idle", SeqState.SAVE: "save", SeqState.LOAD: "load",
              SeqState.OVERLAP: "overlap", SeqState.SWAP: "run", SeqState.RUN: "run",
              SeqState.INIT: "init"}

    def __init__(self):
        self.segments = []        # [start, end, kind, fn]: kind "own" or a SeqState name
        self.switches = []        # {"from", "to", "start", "end", phases...}
        self._switch = None
        self._prev = None
        self.owned = {}           # fn -> cycles owned
        self._last = None         # (cycle, owner_valid, owner, seq) of the last step

    def step(self, cycle, owner_valid, owner, seq):
        """What the monitors show in cycle ``cycle``; the cycles since the last step showed
        what it did (a loop that sleeps steps only when something changed)."""
        self.finish(cycle)
        self._span(cycle, 1, owner_valid, owner, seq)
        self._last = (cycle, owner_valid, owner, seq)

    def finish(self, cycle):
        """The run ended before cycle ``cycle``: account for the cycles up to it."""
        if self._last is not None and cycle > self._last[0] + 1:
            self._span(self._last[0] + 1, cycle - self._last[0] - 1, *self._last[1:])
            self._last = (cycle - 1, *self._last[1:])

    def _span(self, cycle, n, owner_valid, owner, seq):
        """``n`` cycles from ``cycle`` on with the same monitor values."""
        key = ("own", owner) if owner_valid and seq == SeqState.READY else \
            (seq.name.lower(), owner) if seq != SeqState.READY else ("none", None)
        if owner_valid:
            self.owned[owner] = self.owned.get(owner, 0) + n
        if self.segments and self.segments[-1][2:] == list(key) and \
                self.segments[-1][1] == cycle:
            self.segments[-1][1] = cycle + n
        else:
            self.segments.append([cycle, cycle + n, key[0], key[1]])
        # Switches: from the first DRAIN cycle to the cycle ownership is back.
        sw = self._switch
        if sw is None and seq == SeqState.DRAIN:
            sw = self._switch = {"from": self._prev, "start": cycle, "idle": 0, "save": 0,
                                 "load": 0, "overlap": 0, "run": 0}
        if sw is not None:
            if seq in self.PHASES and seq != SeqState.INIT:
                sw[self.PHASES[seq]] += n
            # Over once a loaded context runs (the outgoing one still owns the GPU while
            # it drains).
            if owner_valid and seq == SeqState.READY and (sw["load"] or sw["overlap"]):
                sw.update(to=owner, end=cycle, total=cycle - sw["start"])
                self.switches.append(sw)
                self._switch = None
        if owner_valid:
            self._prev = owner


class System:
    """The loop: the top, its models and its agents. See the module docstring."""

    def __init__(self, tb, params, *, latency=None, drain=4, work_per_doorbell=40,
                 check_words=4, seed=0, pf_rid=0x0100, preempt_every=1):
        self.tb, self.p = tb, params
        self.cycle = 0
        self.pf_rid = pf_rid
        #: The top is the harness (rtl/top/harness.py: FB in the design, a ``wake`` line)
        #: or the bare GPU (every FB access in :attr:`fbmem`, every cycle looked at).
        self.harness = tb.has_port("wake")
        if self.harness and latency not in (None, params.mem_latency):
            raise ValueError(f"latency={latency}: the harness's FB answers in "
                             f"mem_latency={params.mem_latency} cycles")
        #: One model per FB channel, all on the one FB: the bare top's memory, or (the
        #: harness) what answers its outside accesses.
        words = {}
        self.fbmems = [FbMemoryModel(params, latency, prefix=channel_port("fb", c),
                                     words=words) for c in range(params.mem_channels)]
        self.fbmem = self.fbmems[0]
        self.engine = Engine(params, drain=drain, work_per_doorbell=work_per_doorbell,
                             check_words=check_words, seed=seed + 7,
                             preempt_every=preempt_every)
        self.monitor = Monitor()
        self.agents = []          # _Agent
        self._queue = deque()     # (agent, op) host requests in the order made
        self._inflight = {}       # tag -> (agent, op, issue cycle)
        self._free_tags = deque(range(256))
        self.rung = {}            # (fn, index) -> deque of (value, cycle) not yet delivered
        self.deliveries = []      # (cycle, fn, index, value, latency)
        self.requests = 0
        #: Command-done interrupts seen (``irq.cmd_done`` pulses).
        self.interrupts = 0
        #: Cycles the loop looked at (the rest ran in the simulator alone).
        self.looked = 0
        self._toggle = 0
        #: (kind, write, cycles from acceptance to answer) of every host request
        self.answer_cycles = []
        self.bars = None          # set by the hypervisor after enumeration
        #: Cycles within which every accepted host request must be answered: a host FB
        #: access may wait out a whole serial switch's context traffic (both ways), the
        #: rest answer in a few cycles.
        self.answer_limit = 8 * params.ctx_beats + 8 * self.fbmem.latency + 4096
        self.maps = {"mmio": mmio_regmap(params), "fb_partition": fb_partition_regmap(params),
                     "world_switch": world_switch_regmap(params), "gpu": gpu_regmap(params)}
        tb.set("pf_rid", pf_rid)
        tb.set("cp__ready", 1)
        if not self.harness:
            for c in range(params.mem_channels):
                tb.set(f"{channel_port('fb', c)}__req__ready", 1)

    # --- what agents await ----------------------------------------------------------
    def config(self, fn, dword, *, write=False, data=0, be=0xF):
        """Configuration request to function ``fn`` (by its Routing ID); -> (status, data)."""
        return _Op("req", kind=HostKind.CONFIG, fn=0, rid=rid_of(self.p, fn, self.pf_rid),
                   addr=dword * 4, write=write, data=data, be=be)

    def mem(self, requester, address, *, write=False, data=0, be=0xF):
        """32-bit memory request by function ``requester``'s driver; -> (status, data)."""
        return _Op("req", kind=HostKind.MEMORY, fn=requester, rid=0, addr=address,
                   write=write, data=data, be=be)

    def wait(self, cycles):
        return _Op("wait", cycles=max(int(cycles), 1))

    def interrupt(self, after, timeout):
        """The PF's command-done interrupt (``irq.cmd_done``): resumes with the number of
        them so far once it exceeds ``after`` (at once if it already does: an interrupt
        that came first is not lost), or with None after ``timeout`` cycles."""
        return _Op("irq", after=after, cycles=max(int(timeout), 1))

    # --- addresses (after enumeration) -------------------------------------------------
    def bar_base(self, fn, index):
        if fn == 0:
            return self.bars["pf_bars"][index][0]
        base, size = self.bars["vf_bars"][index]
        return base + (fn - 1) * size

    def reg_address(self, fn, window, dword):
        return self.bar_base(fn, REG_BAR) + reg_window(window).offset + dword * 4

    def bus(self, window, requester=0, target=None):
        """A :class:`HostBus` on a register window (or ``"config"``)."""
        regmap = self.maps.get(window)
        return HostBus(self, regmap, window, requester, target)

    # --- agents -------------------------------------------------------------------------
    def spawn(self, coroutine):
        """Start an agent; it runs until its first await."""
        agent = _Agent(coroutine)
        self.agents.append(agent)
        self._resume(agent, None)
        return agent

    def _resume(self, agent, value):
        try:
            op = agent.coroutine.send(value)
        except StopIteration:
            agent.alive = False
            return
        if op.kind == "irq" and self.interrupts > op.fields["after"]:
            self._resume(agent, self.interrupts)
        elif op.kind in ("wait", "irq"):
            agent.wake = self.cycle + op.fields["cycles"]
            agent.irq = op.kind == "irq"
        else:
            agent.wake = None
            self._queue.append((agent, op))

    # --- the loop -----------------------------------------------------------------------
    def describe(self, op):
        """Where a host request went, in words: for error messages."""
        f = op.fields
        what = "write" if f["write"] else "read"
        if f["kind"] == HostKind.CONFIG:
            return f"configuration {what} of RID {f['rid']:#06x} dword {f['addr'] // 4:#x}"
        where = f"{f['addr']:#x}"
        for fn in range(self.p.num_fns) if self.bars else ():
            for index in (0, 2, 5):
                base = self.bar_base(fn, index)
                size = (self.bars["pf_bars"] if fn == 0 else self.bars["vf_bars"])[index][1]
                if base <= f["addr"] < base + size:
                    where = f"function {fn} BAR{index} + {f['addr'] - base:#x}"
        return f"memory {what} by function {f['fn']}'s driver at {where}"

    def _check_answers(self, now=False):
        """Every accepted request is answered within ``answer_limit`` cycles (at the end of
        the run: at all)."""
        for tag, (_, op, issued) in self._inflight.items():
            if now or self.cycle - issued > self.answer_limit:
                raise HostPortError(
                    f"host request tag {tag} ({self.describe(op)}), accepted in cycle "
                    f"{issued + 1}, unanswered at cycle {self.cycle}")

    async def run(self, limit, progress=None, progress_every=1000):
        """Run until every agent has finished; raise if that takes more than ``limit``.
        ``progress(cycle)`` is called every ``progress_every`` cycles. Every accepted host
        request must be answered exactly once: :class:`HostPortError` names the one that
        is not.

        On the harness the loop looks only at the cycles where something happens: those
        the ``wake`` line marks, those an agent or a model asked for, and the next one
        while requests wait to be presented; in between the simulator runs the clock
        alone. What it sees and drives is what looking at every cycle would, to the
        cycle."""
        tb = self.tb
        next_progress = 0
        if self.harness:
            self._cycle_offset = int(tb.get("cycle")) - self.cycle
        while any(a.alive for a in self.agents):
            now = self.cycle
            if progress and now >= next_progress:
                progress(now)
                next_progress = (now // progress_every + 1) * progress_every
            if self.harness or now % 256 == 0:
                self._check_answers()
            if now >= limit:
                self._check_answers(now=True)
                raise SimulationStall(f"agents still running after {limit} cycles")
            if self._cycle_step() or not self.harness or \
                    not any(a.alive for a in self.agents):
                await tb.tick()
                self.cycle += 1
                continue
            marks = [limit, next_progress if progress else None, self.engine.next_change(),
                     *(a.wake for a in self.agents if a.alive),
                     *(issued + self.answer_limit + 1 for _, _, issued in
                       self._inflight.values())]
            until = max(min(c for c in marks if c is not None), now + 1)
            # The harness counts cycles from reset; this loop from its own start.
            alarm = ("alarm", until + self._cycle_offset)
            self.cycle += await tb.sleep(until - now, "wake", alarm)
        self.monitor.finish(self.cycle)
        self._check_answers(now=True)
        return self.cycle

    def _cycle_step(self):
        """Look at this cycle and drive the next: answers, agents, models, a request.
        Returns whether the next cycle must be looked at too."""
        tb = self.tb
        self.looked += 1
        seen = self._seen()
        self.engine.catch_up(self.cycle)
        # Answers of the last edge; then agents whose wait is over.
        if seen.answer:
            self._answer(tb.fields("host__resp__payload"))
        if seen.cmd_irq:
            self.interrupts += 1
            for agent in self.agents:
                if agent.alive and agent.irq:
                    agent.wake, agent.irq = None, False
                    self._resume(agent, self.interrupts)
        for agent in self.agents:
            if agent.alive and agent.wake is not None and agent.wake <= self.cycle:
                agent.wake, agent.irq = None, False
                self._resume(agent, None)
        self._step_models(seen)
        # One request per cycle: it is accepted at the next edge if ready is high now.
        issue = self._queue and seen.req_ready and self._free_tags
        if issue:
            self._issue()
        if not self.harness:
            tb.set("host__req__valid", int(bool(issue)))
        return bool(self._queue)

    def _seen(self):
        """What the loop reacts to this cycle (the harness packs it in one port)."""
        tb = self.tb
        if self.harness:
            return tb.fields("seen")
        return Fields({"answer": tb.get("host__resp__valid"), "doorbell": tb.get("cp__valid"),
                       "fb_ext": 0, "req_ready": tb.get("host__req__ready"),
                       "engine_stop": tb.get("engine_stop"),
                       "owner_valid": tb.get("owner_valid"), "owner": tb.get("owner"),
                       "seq_state": tb.get("seq_state"),
                       "cmd_irq": tb.fields("irq").cmd_done})

    def _answer(self, resp):
        tag = int(resp.tag)
        if tag not in self._inflight:
            raise HostPortError(f"an answer with tag {tag} in cycle {self.cycle}: no request "
                                f"with that tag is in flight (answered twice, or never asked)")
        agent, op, issued = self._inflight.pop(tag)
        self._free_tags.append(tag)
        self.answer_cycles.append((op.fields["kind"].name, op.fields["write"],
                                   self.cycle - issued))
        self._resume(agent, (Status(resp.status), int(resp.data)))

    def _issue(self):
        """Present the oldest queued request this cycle (the next edge accepts it)."""
        tb = self.tb
        agent, op = self._queue.popleft()
        tag = self._free_tags.popleft()
        self._inflight[tag] = (agent, op, self.cycle)
        tb.set("host__req__payload", dict(op.fields, kind=op.fields["kind"].value, tag=tag))
        if self.harness:
            self._toggle ^= 1
            tb.set("host_req_toggle", self._toggle)
        self.requests += 1
        if op.fields["kind"] == HostKind.MEMORY and op.fields["write"]:
            self._note_doorbell(op.fields)

    def _note_doorbell(self, f):
        """Remember a doorbell ring in the guest's own doorbell BAR (others are refused)."""
        if self.bars is None:
            return
        fn = f["fn"]
        base = self.bar_base(fn, 2)
        offset = f["addr"] - base
        if 0 <= offset < self.p.doorbells_per_fn * 4 and fn != 0:
            self.rung.setdefault((fn, offset // 4), deque()).append((f["data"], self.cycle))

    def _step_models(self, seen):
        tb = self.tb
        if not self.harness:
            for fbmem in self.fbmems:
                fbmem.step(tb)
        elif seen.fb_ext:
            self._outside_fb()
        delivered = []
        if seen.doorbell:
            event = tb.fields("cp__payload")
            fn, index, value = int(event.fn), int(event.index), int(event.value)
            delivered.append((fn, index, value))
            queue = self.rung.get((fn, index), deque())
            # Coalescing: values rung before this one and not delivered are replaced by it.
            while queue and queue[0][0] != value:
                queue.popleft()
            ring = queue.popleft()[1] if queue else None
            self.deliveries.append((self.cycle, fn, index, value,
                                    None if ring is None else self.cycle - ring))
        owner_valid, owner = bool(seen.owner_valid), int(seen.owner)
        seq = seen.seq_state
        seq = seq if isinstance(seq, SeqState) else SeqState(seq)
        self.monitor.step(self.cycle, owner_valid, owner, seq)
        self.engine.step(tb, self.cycle, seen.engine_stop, owner_valid, owner, delivered)

    def _outside_fb(self):
        """Answer the harness's FB accesses outside its RAM, on every channel that has one."""
        tb, channels = self.tb, self.p.mem_channels
        for c, fbmem in enumerate(self.fbmems):
            port = channel_port("fb_ext", c)
            if channels > 1 and not tb.get(f"{port}__valid"):
                continue
            value = fbmem.access(tb.fields(f"{port}__payload"))
            if value is not None:
                tb.set(channel_port("fb_ext_rdata", c), value)

    def mem_counts(self):
        """{"reads", "writes"}: FB memory requests so far."""
        if self.harness:
            return {"reads": int(self.tb.get("fb_reads")), "writes": int(self.tb.get("fb_writes"))}
        return {"reads": sum(f.reads for f in self.fbmems),
                "writes": sum(f.writes for f in self.fbmems)}

    def undelivered(self, fns):
        """(fn, index) whose last ring has not reached the CP, for functions ``fns``."""
        return sorted(key for key, queue in self.rung.items() if queue and key[0] in fns)

    def flr(self, fn):
        """Forget what function ``fn`` had in flight (its FLR drops it)."""
        for key in list(self.rung):
            if key[0] == fn:
                self.rung[key].clear()
        self.engine.forget(fn)

