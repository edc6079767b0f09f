"""The capability mirror (rtl/top/cap_mirror.py) against a Python statement of the
capability's FB layout rules: random programmed layouts, every output compared."""

from random import Random

import pytest

from rtl.params import MiB, GpuParams
from rtl.top.cap_mirror import FB_CONSUMED_WIDTH, CapMirror
from tests import simulate


def expected(p, cntxt, vf_fb, consumed, owner, owner_valid):
    """What the capability's fields mean in granules (docs/sources.md#gpu-iov-capability: CNTXT, VFn_FB_*)."""
    s, lw = p.iov_unit_shift, (1 << p.layout_width) - 1
    size, loc, offset = cntxt
    layout = [((offset << s) & lw, (size << s) & lw, int(size != 0 and not loc))]
    for vsize, voffset in vf_fb:
        # SIZE is stored minus one; SIZE = OFFSET = 0 means no slice.
        layout.append(((voffset << s) & lw, ((vsize + 1) << s) & lw,
                       int(vsize != 0 or voffset != 0)))
    serve = (1 << owner) if owner_valid else 0
    return layout, (consumed >> s) & ((1 << FB_CONSUMED_WIDTH) - 1), serve


@pytest.mark.parametrize("params", [GpuParams(), GpuParams(num_vfs=3, fb_granule=4 * MiB)],
                         ids=["default", "4MiB-granules"])
def test_mirror_turns_capability_fields_into_the_regions_the_partition_judges(params):
    p, rng = params, Random(params.num_vfs)
    dut = CapMirror(p)
    checked = []

    async def bench(ctx):
        for trial in range(300):
            # Zero fields often: they are the refusals (no slice, no CSA).
            def field(bits):
                return 0 if rng.random() < 0.25 else rng.getrandbits(bits)
            cntxt = (field(7), rng.getrandbits(1), field(22))
            vf_fb = [(field(16), field(16)) for _ in range(p.num_vfs)]
            consumed = rng.getrandbits(p.granule_width)
            owner, owner_valid = rng.randrange(p.num_fns), rng.getrandbits(1)
            csa = (rng.getrandbits(p.granule_width), rng.getrandbits(p.granule_width),
                   rng.getrandbits(1))
            ctx.set(dut.cntxt.size, cntxt[0])
            ctx.set(dut.cntxt.loc, cntxt[1])
            ctx.set(dut.cntxt.offset, cntxt[2])
            for n, (size, offset) in enumerate(vf_fb):
                ctx.set(dut.vf_fb[n].size, size)
                ctx.set(dut.vf_fb[n].offset, offset)
            ctx.set(dut.consumed, consumed)
            for name, v in zip(("base", "size", "valid"), csa):
                ctx.set(getattr(dut.active_csa, name), v)
            ctx.set(dut.owner, owner)
            ctx.set(dut.owner_valid, owner_valid)
            layout, fb_consumed, serve = expected(p, cntxt, vf_fb, consumed, owner, owner_valid)
            got = [(ctx.get(dut.layout[n].base), ctx.get(dut.layout[n].size),
                    ctx.get(dut.layout[n].valid)) for n in range(p.num_fns)]
            assert got == layout, (trial, cntxt, vf_fb)
            assert ctx.get(dut.fb_consumed) == fb_consumed
            assert ctx.get(dut.serve) == serve
            assert (ctx.get(dut.csa.base), ctx.get(dut.csa.size), ctx.get(dut.csa.valid)) == csa
            checked.append(trial)

    simulate(dut, bench, clock=False)
    assert len(checked) == 300


def test_a_csa_in_system_memory_or_of_size_zero_is_no_region():
    p = GpuParams()
    dut = CapMirror(p)

    async def bench(ctx):
        ctx.set(dut.cntxt.offset, 5)
        for size, loc, valid in ((0, 0, 0), (3, 1, 0), (0, 1, 0), (3, 0, 1)):
            ctx.set(dut.cntxt.size, size)
            ctx.set(dut.cntxt.loc, loc)
            assert ctx.get(dut.layout[0].valid) == valid, (size, loc)

    simulate(dut, bench, clock=False)
