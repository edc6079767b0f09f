"""Test bodies for the configuration space (both simulators)."""

from rtl.interfaces import Status
from sim.host import ConfigDriver, enumerate_and_dump  # noqa: F401  (a body for the tests)


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
