"""Test bodies for the configuration space (both simulators)."""

from rtl.common.interfaces import Status
from sim.drivers.host import ConfigDriver, enumerate_and_dump  # noqa: F401  (a body for the tests)


async def numvfs_rules(tb, params):
    """NumVFs: refused above TotalVFs and while VF Enable is set; VFs answer UR when absent."""
    cfg = ConfigDriver(tb, params)
    total = params.num_vfs
    await cfg.write(0, "SRIOV_NUM_VFS", NUM_VFS=total)
    assert (await cfg.read(0, "SRIOV_NUM_VFS"))["NUM_VFS"] == total
    await cfg.write_dword(0, cfg.pf_map.offset("SRIOV_NUM_VFS"), total + 1)
    assert (await cfg.read(0, "SRIOV_NUM_VFS"))["NUM_VFS"] == total, "NumVFs > TotalVFs accepted"
    status, _ = await cfg.read_dword(1, 0)
    assert status == Status.UR, "a VF answered before VF Enable"
    await cfg.write(0, "SRIOV_CTRL", VF_ENABLE=1)
    status, value = await cfg.read_dword(1, 0)
    assert (status, value) == (Status.OK, 0xFFFFFFFF), "VF ID must read all ones"
    await cfg.write(0, "SRIOV_NUM_VFS", NUM_VFS=1)
    assert (await cfg.read(0, "SRIOV_NUM_VFS"))["NUM_VFS"] == total, "NumVFs changed while enabled"
    await cfg.write(0, "SRIOV_CTRL", VF_ENABLE=0)
    await cfg.write(0, "SRIOV_NUM_VFS", NUM_VFS=1)
    await cfg.write(0, "SRIOV_CTRL", VF_ENABLE=1)
    status, _ = await cfg.read_dword(min(2, total), 0)
    assert status == (Status.UR if total >= 2 else Status.OK), "VF above NumVFs answered"
    return {"ok": True}


async def system_page_size_takes_one_supported_size(tb, params):
    cfg = ConfigDriver(tb, params)
    for value, accepted in ((0x2, True), (0x3, False), (0x4, False), (0x10, True), (0, False)):
        before = (await cfg.read(0, "SRIOV_SYSTEM_PAGE"))["SIZE"]
        await cfg.write(0, "SRIOV_SYSTEM_PAGE", SIZE=value)
        after = (await cfg.read(0, "SRIOV_SYSTEM_PAGE"))["SIZE"]
        assert after == (value if accepted else before), (value, before, after)
    return {"ok": True}


async def reserved_registers_read_zero(tb, params):
    """Offsets no register occupies answer OK, read 0 and ignore writes (PCI), on PF and VF."""
    cfg = ConfigDriver(tb, params)
    await cfg.write(0, "SRIOV_NUM_VFS", NUM_VFS=1)
    await cfg.write(0, "SRIOV_CTRL", VF_ENABLE=1)
    for fn in (0, 1):
        for dword in (0x19, 0x3F, 0x3FF):          # DevCap2, end of header space, last dword
            assert cfg._map(fn).find(dword) is None
            assert await cfg.write_dword(fn, dword, 0xFFFFFFFF) == Status.OK
            assert await cfg.read_dword(fn, dword) == (Status.OK, 0), (fn, hex(dword))
    return {"ok": True}


async def malformed_writes_leave_the_device_consistent(tb, params, seed, writes):
    """Random configuration writes (any target, any offset, any data and byte enables):
    every read-only bit stays as it was, NumVFs never exceeds TotalVFs, System Page Size stays
    one supported size, absent functions answer UR."""
    from random import Random
    from rtl.common.regmap import Access
    rng = Random(seed)
    cfg = ConfigDriver(tb, params)
    await cfg.write(0, "SRIOV_NUM_VFS", NUM_VFS=params.num_vfs)
    await cfg.write(0, "SRIOV_CTRL", VF_ENABLE=1)
    snapshot = {0: await cfg.dump(0), 1: await cfg.dump(1)}

    def writable_mask(fn, dword):
        found = cfg._map(fn).find(dword)
        if found is None:
            return 0
        return sum(f.mask for f in found[0].fields if f.access is not Access.RO)

    offsets = [off for _, _, off in cfg.pf_map.instances()]
    refused = 0
    for _ in range(writes):
        fn = rng.choice([0, 0, 0, 1, params.num_vfs, (1 << params.fn_width) - 1])
        dword = rng.choice(offsets) if rng.random() < 0.8 else rng.randrange(1024)
        data = rng.choice([0xFFFFFFFF, 0, rng.getrandbits(32), params.num_vfs + 1, 0x3])
        status = await cfg.write_dword(fn, dword, data, be=rng.choice([0xF, 0xF, rng.getrandbits(4)]))
        live = fn == 0 or ((await cfg.read(0, "SRIOV_CTRL"))["VF_ENABLE"] and
                           fn <= (await cfg.read(0, "SRIOV_NUM_VFS"))["NUM_VFS"])
        assert status == (Status.OK if live else Status.UR), (fn, dword, status)
        refused += status != Status.OK
        num = (await cfg.read(0, "SRIOV_NUM_VFS"))["NUM_VFS"]
        assert num <= params.num_vfs
        page = (await cfg.read(0, "SRIOV_SYSTEM_PAGE"))["SIZE"]
        assert page and page & (page - 1) == 0 and page & 0x553
    vf1_live = (await cfg.read(0, "SRIOV_CTRL"))["VF_ENABLE"] and \
        (await cfg.read(0, "SRIOV_NUM_VFS"))["NUM_VFS"] >= 1
    for fn in (0, 1) if vf1_live else (0,):
        now = await cfg.dump(fn)
        for dword in range(1024):
            was = int.from_bytes(snapshot[fn][4 * dword:4 * dword + 4], "little")
            is_ = int.from_bytes(now[4 * dword:4 * dword + 4], "little")
            fixed = ~writable_mask(fn, dword) & 0xFFFFFFFF
            assert was & fixed == is_ & fixed, \
                f"function {fn} dword {dword:#x}: read-only bits {was & fixed:#x} -> {is_ & fixed:#x}"
    return {"refused": refused}


async def probe_bar(tb, params, vf, index, address, num_vfs=1):
    """A 64-bit memory BAR as the PCI and SR-IOV specifications describe it, by raw dword
    accesses only (no register table): the PF's BAR ``index`` (header byte 0x10 + 4 * index)
    or, with ``vf``, the SR-IOV capability's VF BAR ``index`` (capability + 0x24 + 4 * index),
    the capability found by walking the extended capability chain from byte 0x100.

    Writes all ones to both dwords and reads them back (sizing), restores them, then writes
    ``address`` and enables decoding; returns the dwords read and the base the config space
    then drives to routing."""
    cfg = ConfigDriver(tb, params)
    byte = 0x10
    if vf:
        at = 0x100
        while True:
            _, header = await cfg.read_dword(0, at // 4)
            if header & 0xFFFF == 0x0010:        # SR-IOV
                break
            at = header >> 20
            assert at, "no SR-IOV capability"
        byte = at + 0x24
    low, high = byte // 4 + index, byte // 4 + index + 1
    saved = [(await cfg.read_dword(0, d))[1] for d in (low, high)]
    for d in (low, high):
        await cfg.write_dword(0, d, 0xFFFFFFFF)
    sized = [(await cfg.read_dword(0, d))[1] for d in (low, high)]
    for d, value in zip((low, high), saved):
        await cfg.write_dword(0, d, value)
    restored = [(await cfg.read_dword(0, d))[1] for d in (low, high)]
    for k, d in enumerate((low, high)):
        await cfg.write_dword(0, d, address >> (32 * k) & 0xFFFFFFFF)
    placed = [(await cfg.read_dword(0, d))[1] for d in (low, high)]
    await cfg.write(0, "SRIOV_NUM_VFS", NUM_VFS=num_vfs)
    await cfg.write(0, "SRIOV_CTRL", VF_ENABLE=1, VF_MSE=1)
    await cfg.write(0, "CMD_STATUS", MEM_EN=1)
    await tb.tick()
    return {"saved": saved, "sized": sized, "restored": restored, "placed": placed,
            "pf_bars": [int(x) for x in tb.get("pf_bars")],
            "vf_bars": [int(x) for x in tb.get("vf_bars")]}
