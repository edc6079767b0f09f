"""Bodies for the whole GPU (rtl/top/gpu.py), run on Amaranth and on cocotb alike: one agent
(the hypervisor, sometimes speaking for a VF's driver) on sim/system/system.py."""

from rtl.top.gpu import HostKind
from rtl.params import MiB
from rtl.common.iov_codes import IovCommand

from sim.drivers.host import ConfigDriver, enumerate_device
from sim.drivers.iov import IovDriver
from sim.system.system import System

SLICE_OFFSET_UNITS, SLICE_SIZE_UNITS = 17, 8       # VF 1: 272 MiB .. 400 MiB
CSA_OFFSET_UNITS, CSA_SIZE_UNITS = 16, 1           # 256 MiB .. 272 MiB


async def host_port(tb, params):
    """Enumerate, partition through the GPU-IOV capability, then probe the host port."""
    system = System(tb, params)
    seen = {}

    async def mem(*args, **kwargs):
        status, value = await system.mem(*args, **kwargs)
        return [status.name, value]

    async def agent():
        cfg = ConfigDriver(None, params, bus=system.bus("config"))
        system.bars = await enumerate_device(None, params, params.num_vfs, cfg=cfg)
        await cfg.write(0, "GPUIOV_CNTXT", SIZE=CSA_SIZE_UNITS, LOC=0, OFFSET=CSA_OFFSET_UNITS)
        await cfg.write(0, "VF_FB", 0, SIZE=SLICE_SIZE_UNITS - 1, OFFSET=SLICE_OFFSET_UNITS)
        fbp, ws, gpu = system.bus("fb_partition"), system.bus("world_switch"), system.bus("gpu")
        while (await fbp.read_fields("LAYOUT_STATUS"))["BUSY"]:
            pass
        seen["active"] = await fbp.read("ACTIVE_MASK", 0)
        seen["csa"] = await ws.read_fields("CSA_BASE")
        seen["layout"] = await fbp.read_fields("LAYOUT_STATUS")
        seen["consumed"] = (await cfg.read(0, "GPUIOV_FB"))["TOTAL_FB_CONSUMED"]

        # FB: VF 1 writes a dword of its slice and reads it back.
        fb1 = system.bar_base(1, 0)
        seen["fb_write"] = await mem(1, fb1 + 0x1234, write=True, data=0xCAFEF00D)
        seen["fb_read"] = await mem(1, fb1 + 0x1234)
        seen["fb_words"] = dict(system.fbmem.words)
        # Interrupts: the PF hears of a VF's mailbox message and of an FB violation.
        await system.bus("mmio").write("PF_MB_INT_CNTL", EN=1)
        await fbp.write("CTRL", IRQ_EN=1)
        seen["irq_before"] = tb.get("irq").as_bits()
        await system.bus("mmio", 1).write("MAILBOX_CONTROL", TRN_MSG_VALID=1)
        await system.wait(2)
        seen["irq_mailbox"] = {"pf_mailbox": int(tb.get("irq").pf_mailbox),
                               "pending": await system.bus("mmio").read("PF_MB_PENDING", 0)}
        # Refusals, each of its kind.
        seen["past_slice"] = await mem(1, fb1 + SLICE_SIZE_UNITS * 16 * MiB)
        seen["other_doorbell"] = await mem(1, system.bar_base(2, 2), write=True, data=1)
        seen["doorbell_read"] = await mem(1, system.bar_base(1, 2))
        seen["nowhere"] = await mem(0, 0x10)
        seen["pf_only"] = await mem(1, system.reg_address(1, "mmio", 0x1000),
                                           write=True, data=1)
        await system.wait(2)
        seen["irq_fb_violation"] = int(tb.get("irq").fb_violation)
        seen["counters"] = {"xfn": await gpu.read("XFN_COUNT", 1),
                            "host_ur": await gpu.read("HOST_UR"),
                            "fb": await fbp.read("VIOL_COUNT", 1),
                            "reg": await system.bus("mmio").read("VIOL_COUNT", 1)}

        # The GPU-IOV sequence of docs/sources.md#gpu-iov-commands, polled; doorbells follow the owner.
        iov = IovDriver(cfg, system.wait, poll_every=4)

        async def command(cmd, fn):
            return (await iov.command(cmd, fn)).name

        seen["commands"] = [await command(IovCommand.INIT_GPU, 1),
                            await command(IovCommand.INIT_GPU, 2),
                            await command(IovCommand.LOAD_GPU_STATE, 1),
                            await command(IovCommand.RUN_GPU, 1)]
        seen["ring1"] = await mem(1, system.bar_base(1, 2) + 4 * 3, write=True, data=77)
        seen["ring2"] = await mem(2, system.bar_base(2, 2) + 4 * 1, write=True, data=55)
        await system.wait(20)
        seen["delivered_while_1_owns"] = [list(d[1:4]) for d in system.deliveries]
        seen["commands"] += [await command(IovCommand.IDLE_GPU, 1),
                             await command(IovCommand.SAVE_GPU_STATE, 1),
                             await command(IovCommand.LOAD_GPU_STATE, 2),
                             await command(IovCommand.RUN_GPU, 2)]
        await system.wait(20)
        seen["delivered"] = [list(d[1:4]) for d in system.deliveries]
        seen["state"] = await ws.read_fields("STATE")

    system.spawn(agent())
    await system.run(20_000)
    seen["answer_cycles"] = [list(x) for x in sorted({(k, w, c) for k, w, c in
                                                      system.answer_cycles
                                                      if k == HostKind.CONFIG.name or not w})]
    seen["switches"] = system.monitor.switches
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in seen.items()
            if k != "fb_words"} | {"fb_words": {str(a): v for a, v in seen["fb_words"].items()}}
