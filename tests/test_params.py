import pytest

from rtl.params import GpuParams, GiB, MiB, ParamError, TiB


def test_defaults_are_the_design_notes_generation():
    p = GpuParams()
    assert (p.num_vfs, p.fb_granule, p.num_fns) == (16, 16 * MiB, 17)
    assert p.fb_granules == 8 * GiB // (16 * MiB)
    assert p.fb_addr_width == 33 and p.fn_width == 5


def test_64_vfs_need_a_7_bit_function_number():
    assert GpuParams(num_vfs=64).fn_width == 7


@pytest.mark.parametrize("vfs", [0, 65, -1])
def test_num_vfs_outside_1_to_64_is_refused_by_name(vfs):
    with pytest.raises(ParamError, match=rf"^num_vfs={vfs} is out of range: allowed 1\.\.64$"):
        GpuParams(num_vfs=vfs)


@pytest.mark.parametrize("changes, name", [
    ({"fb_size": 3 * MiB}, "fb_size"),
    ({"fb_size": 0}, "fb_size"),
    ({"fb_granule": 3 * MiB}, "fb_granule"),
    ({"fb_granule": 1024}, "fb_granule"),
    ({"vf_fb_aperture": 100 * MiB}, "vf_fb_aperture"),
    ({"counter_width": 40}, "counter_width"),
    ({"tag_width": -1}, "tag_width"),
    ({"num_vfs": "16"}, "num_vfs"),
    ({"fb_size": 2 ** 20 * 16 * MiB}, "fb_size"),
    ({"vf_fb_aperture": 3 * GiB}, "vf_fb_aperture"),
    ({"vf_fb_aperture": 2 * TiB}, "vf_fb_aperture"),
    ({"pf_mmio_size": 4 * GiB}, "pf_mmio_size"),       # a 32-bit BAR
    ({"vf_mmio_size": 8 * GiB}, "vf_mmio_size"),
])
def test_bad_values_raise_one_line_naming_the_parameter(changes, name):
    with pytest.raises(ParamError) as info:
        GpuParams(**changes)
    message = str(info.value)
    assert message.startswith(f"{name}=") and "\n" not in message


@pytest.mark.parametrize("name", ["pf_mmio_size", "vf_mmio_size"])
def test_a_32_bit_bar_of_4_gib_is_refused_saying_it_is_32_bit(name):
    with pytest.raises(ParamError, match=rf"^{name}=.* 32-bit, at most 2 GiB"):
        GpuParams(**{name: 4 * GiB})


def test_64_bit_bars_take_4_gib_and_more():
    p = GpuParams(vf_fb_aperture=4 * GiB, pf_fb_aperture=64 * GiB)
    assert (p.vf_fb_aperture, p.pf_fb_aperture) == (4 * GiB, 64 * GiB)


def test_params_are_frozen_and_copies_are_validated():
    p = GpuParams()
    with pytest.raises(AttributeError):
        p.num_vfs = 8
    assert p.with_(num_vfs=8).num_vfs == 8
    with pytest.raises(ParamError):
        p.with_(num_vfs=99)
