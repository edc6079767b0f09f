import pytest

from rtl.memory.fb_partition import fb_partition_regmap
from rtl.params import GpuParams
from rtl.common.interfaces import Status
from rtl.common.regmap import Access, Field, Register, RegisterMap


def test_array_offsets_follow_index_and_stride():
    regmap = fb_partition_regmap(GpuParams(num_vfs=4))
    assert regmap.offset("SLICE_SIZE", 3) - regmap.offset("SLICE_SIZE", 1) == 4
    assert regmap.offset("VIOL_COUNT", 4) - regmap.offset("VIOL_COUNT", 0) == 4
    with pytest.raises(IndexError, match=r"SLICE_BASE\[5\] does not exist"):
        regmap.offset("SLICE_BASE", 5)


@pytest.mark.parametrize("vfs", [1, 16, 64])
def test_every_register_instance_has_its_own_offset(vfs):
    regmap = fb_partition_regmap(GpuParams(num_vfs=vfs))
    offsets = [offset for _, _, offset in regmap.instances()]
    # 11 single registers, the active and refused masks (32 regions each), base and size
    # per VF, a counter per function.
    masks = -(-(vfs + 1) // 32)
    assert len(offsets) == len(set(offsets)) == 11 + 2 * masks + 2 * vfs + (vfs + 1)


def test_two_registers_on_one_offset_are_refused():
    f = (Field("X", 0, 1, Access.RW),)
    with pytest.raises(ValueError, match="share offset 0x1"):
        RegisterMap("m", 4, [Register("A", 1, f), Register("B", 0, f, count=2)])


def test_overlapping_fields_are_refused():
    with pytest.raises(ValueError, match="overlaps"):
        Register("A", 0, (Field("X", 0, 4, Access.RW), Field("Y", 3, 1, Access.RW)))


def test_encode_and_decode_are_inverse_and_check_widths():
    regmap = fb_partition_regmap(GpuParams())
    word = regmap.encode("SLICE_SIZE", SIZE=5, ENABLE=1)
    assert word == 5 | 1 << 31
    assert regmap.decode("SLICE_SIZE", word) == {"SIZE": 5, "ENABLE": 1}
    with pytest.raises(ValueError, match="does not fit"):
        regmap.encode("SLICE_SIZE", ENABLE=2)


def test_markdown_lists_every_field():
    regmap = fb_partition_regmap(GpuParams())
    text = regmap.markdown()
    for reg in regmap.registers:
        assert f"**{reg.name}" in text
        for f in reg.fields:
            assert f"| {f.name} |" in text


# --- Partial writes, per field, from the table -------------------------------------------

def _file_bench(locked=False):
    """A register file with a field in each byte lane, one spanning two, and a lock (the
    owner asks for it before the file is elaborated, as for every owner hook)."""
    from amaranth.sim import Simulator
    from rtl.common.regmap import RegisterFile
    regmap = RegisterMap("t", 2, [Register("R", 0, (
        Field("A", 0, 8, Access.RW), Field("B", 8, 8, Access.RW),
        Field("C", 12 + 4, 16, Access.RW)))])
    rf = RegisterFile(GpuParams(num_vfs=1), regmap, pf_only=False)
    lock = rf.lock("R") if locked else None
    sim = Simulator(rf)
    sim.add_clock(1e-6)
    return sim, rf, lock


def _write(ctx, rf, data, be):
    req = rf.bus.req
    ctx.set(req.payload, {"fn": 0, "addr": 0, "write": 1, "data": data, "be": be})
    ctx.set(req.valid, 1)


def test_a_byte_write_changes_only_the_fields_of_its_byte_lanes():
    sim, rf, _ = _file_bench()
    seen = {}

    async def bench(ctx):
        _write(ctx, rf, 0x44332211, 0xF)
        await ctx.tick()
        _write(ctx, rf, 0xAABBCCDD, 0b0010)              # lane 1: B only
        # The write view merges this write with what the field holds.
        seen["view"] = [ctx.get(v) for v in rf.write_view("R", "B")]
        await ctx.tick()
        _write(ctx, rf, 0x00EE0000, 0b0100)              # lane 2: half of C
        await ctx.tick()
        ctx.set(rf.bus.req.valid, 0)
        seen["fields"] = [ctx.get(rf.f("R", name)) for name in "ABC"]

    sim.add_testbench(bench)
    sim.run()
    assert seen["view"] == [1, 0xCC]
    assert seen["fields"] == [0x11, 0xCC, 0x44EE]


def test_a_locked_register_refuses_writes_and_says_so():
    sim, rf, lock = _file_bench(locked=True)
    seen = {}

    async def bench(ctx):
        _write(ctx, rf, 0x11, 0xF)
        await ctx.tick()
        ctx.set(lock, 1)
        _write(ctx, rf, 0x22, 0xF)
        seen["refused"] = ctx.get(rf.refused("R"))
        seen["writing"] = ctx.get(rf.writing("R"))
        await ctx.tick()
        ctx.set(rf.bus.req.valid, 0)
        seen["status"] = ctx.get(rf.bus.resp.payload.status)
        seen["A"] = ctx.get(rf.f("R", "A"))

    sim.add_testbench(bench)
    sim.run()
    assert seen == {"refused": 1, "writing": 0, "status": Status.OK, "A": 0x11}
