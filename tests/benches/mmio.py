"""Test bodies for the register decode and the mailbox (both simulators)."""

from random import Random

from rtl.common.interfaces import Status
from rtl.mmio.decode import MMIO_ADDR_WIDTH, mmio_regmap
from sim.drivers.regbus import pack_shared_beats
from sim.drivers.mailbox import GuestMailbox, HostMailbox, PfEvent, VfRequest
from sim.models.mmio import MmioModel


def _set_owner(tb, owner):
    tb.set("owner_valid", int(owner is not None))
    tb.set("owner", owner or 0)


async def random_mmio(tb, params, seed, requests):
    """Random requests from every function (and bad function numbers) to every register,
    holes and edges, with random owners, byte enables and data; every answer, interrupt and
    flush pulse is checked against the model the cycle it appears."""
    rng = Random(seed)
    model = MmioModel(params)
    regmap = mmio_regmap(params)
    offsets = [off for _, _, off in regmap.instances()]
    mailbox = [regmap.offset(name, k) for name in ("MAILBOX_CONTROL", "PF_MB_CONTROL")
               for k in [None]] + [regmap.offset("MB_INDEX")]
    fn_limit = (1 << params.fn_width) - 1
    owner = None
    counts = {s.name: 0 for s in Status}
    for _ in range(requests):
        if rng.random() < 0.02:
            owner = rng.choice([None] + list(range(params.num_fns)))
        _set_owner(tb, owner)
        fn = rng.choice([0, 0] + list(range(1, params.num_fns)))
        if rng.random() < 0.01:
            fn = rng.randint(0, fn_limit)
        pick = rng.random()
        if pick < 0.75:
            offset = rng.choice(offsets)
        elif pick < 0.9:
            offset = rng.choice(mailbox)
        else:
            offset = rng.getrandbits(MMIO_ADDR_WIDTH)
        write = rng.random() < 0.5
        if offset == regmap.offset("MB_INDEX") and rng.random() < 0.9:
            data = rng.randint(0, params.num_vfs + 1)
        elif rng.random() < 0.3:
            data = rng.choice([0, 1, 2, 3, 1 << 8, 1 << 9, (1 << 8) | 2, 0xFFFFFFFF])
        else:
            data = rng.getrandbits(32)
        be = 0xF if rng.random() < 0.8 else rng.getrandbits(4)
        tb.set("bus__req__payload", {"fn": fn, "addr": offset, "write": int(write),
                                     "data": data, "be": be})
        tb.set("bus__req__valid", 1)
        # Now and then a VF's FLR, in the same cycle as the request (the FLR wins).
        reset = rng.randint(1, params.num_vfs) if rng.random() < 0.01 else None
        tb.set("flr", 0 if reset is None else 1 << reset)
        flushes = len(model.flushes)
        want = model.access(fn, offset, write, data, be, owner)
        if reset is not None:
            model.flr(reset)
        await tb.tick()
        assert tb.get("bus__resp__valid"), "no answer one cycle after a request"
        got = tb.get("bus__resp__payload")
        seen = (got.status, int(got.data))
        assert seen == want, (f"fn {fn} {'write' if write else 'read'} {offset:#06x} "
                              f"({regmap.find(offset)}) data {data:#x} be {be:#x} owner {owner}: "
                              f"got {seen}, model {want}")
        counts[want[0].name] += 1
        irqs = (tb.get("violation_irq"), tb.get("pf_mailbox_irq"), tb.get("vf_mailbox_irq"))
        assert irqs == model.irqs(), f"irqs {irqs} != model {model.irqs()}"
        pulse = tb.get("hdp_flush")
        assert pulse == (1 << model.flushes[-1] if len(model.flushes) > flushes else 0)
    tb.set("bus__req__valid", 0)
    tb.set("flr", 0)
    return counts


async def vf_cannot_touch_pf_only_or_unowned_registers(tb, params):
    """Directed: each refusal is BLOCKED, leaves the register as it was, counts and records."""
    regmap = mmio_regmap(params)
    host = HostMailbox(tb, params)
    vf = params.num_vfs
    guest = GuestMailbox(tb, params, vf)
    _set_owner(tb, 1 if vf != 1 else None)
    await host.write("GRBM_SOFT_RESET", 0x1234)
    await host.write("GFX_STATE", 0xAAAA, index=0)
    for name, index in (("GRBM_SOFT_RESET", None), ("GFX_STATE", 0)):
        status, _ = await guest.bus.access(regmap.offset(name, index), write=True, data=0, fn=vf)
        assert status == Status.BLOCKED
        status, value = await guest.bus.access(regmap.offset(name, index), fn=vf)
        assert (status, value) == (Status.BLOCKED, 0)
    assert await host.read("GRBM_SOFT_RESET") == 0x1234
    assert await host.read("GFX_STATE", index=0) == 0xAAAA
    assert await host.read("VIOL_COUNT", index=vf) == 4
    last = regmap.decode("VIOL_LAST", await host.read("VIOL_LAST"))
    assert last == {"VALID": 1, "WRITE": 0, "KIND": 2, "FN": vf}
    assert await host.read("VIOL_OFFSET") == regmap.offset("GFX_STATE", 0)
    _set_owner(tb, vf)                                   # now it owns the GPU
    await guest.write("GFX_STATE", 0x5555, index=0)
    assert await host.read("GFX_STATE", index=0) == 0x5555
    assert await guest.read("IOV_FUNC_IDENTIFIER") == vf | 1 << 31
    return {"ok": True}


async def mailbox_handshakes(tb, params):
    """INIT, REL and FINI from a guest, answered like GIM, and an FLR notification."""
    vf = params.num_vfs
    guest = GuestMailbox(tb, params, vf)
    host = HostMailbox(tb, params)
    _set_owner(tb, None)
    await guest.write("MAILBOX_INT_CNTL", 0b11)
    await host.write("PF_MB_INT_CNTL", 1)
    log = []
    for request in (VfRequest.REQ_GPU_INIT_ACCESS, VfRequest.REL_GPU_INIT_ACCESS,
                    VfRequest.REQ_GPU_FINI_ACCESS, VfRequest.REL_GPU_FINI_ACCESS):
        await guest.send(request, 0x11, 0x22)
        assert tb.get("pf_mailbox_irq"), "PF not interrupted by a VF message"
        assert await host.pending() == [vf]
        msg, data = await host.take(vf)
        assert (msg, data) == (request, [0x11, 0x22, 0])
        await guest.finish_send()
        assert not tb.get("pf_mailbox_irq") and await host.pending() == []
        log.append(VfRequest(msg).name)
        if request in (VfRequest.REQ_GPU_INIT_ACCESS, VfRequest.REQ_GPU_FINI_ACCESS):
            await host.post(vf, PfEvent.READY_TO_ACCESS_GPU)
            assert tb.get("vf_mailbox_irq") >> vf & 1, "VF not interrupted by the PF"
            event, _ = await guest.receive()
            assert event == PfEvent.READY_TO_ACCESS_GPU
            await host.finish_post(vf)
            log.append(PfEvent(event).name)
    await host.post(vf, PfEvent.FLR_NOTIFICATION)
    event, _ = await guest.receive()
    await host.finish_post(vf)
    await host.post(vf, PfEvent.FLR_NOTIFICATION_CMPL)
    done, _ = await guest.receive()
    await host.finish_post(vf)
    log += [PfEvent(event).name, PfEvent(done).name]
    assert tb.get("vf_mailbox_irq") == 0
    return {"log": log}


async def shared_registers_restore_from_context_beats(tb, params, seed=1):
    """The world switch's LOAD restores the owner-shared flops beat by beat (registers packed
    32 bits each): the PF reads back exactly the restored values, and `shared` shows them."""
    rng = Random(seed)
    host = HostMailbox(tb, params)
    _set_owner(tb, None)
    values = [rng.getrandbits(32) for _ in range(params.shared_regs)]
    for beat, word in enumerate(pack_shared_beats(params, values)):
        tb.set("shared_load__payload", {"beat": beat, "data": word})
        tb.set("shared_load__valid", 1)
        await tb.tick()
    tb.set("shared_load__valid", 0)
    await tb.tick()
    assert [int(v) for v in tb.get("shared")] == values
    for k, value in enumerate(values):
        assert await host.read("GFX_STATE", index=k) == value, f"GFX_STATE[{k}]"
    return {"ok": True}
