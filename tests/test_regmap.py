import pytest

from rtl.fb_partition import fb_partition_regmap
from rtl.params import GpuParams
from rtl.regmap import Access, Field, Register, RegisterMap


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
    # 9 single registers, base and size per VF, a counter per function.
    assert len(offsets) == len(set(offsets)) == 9 + 2 * vfs + (vfs + 1)


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
