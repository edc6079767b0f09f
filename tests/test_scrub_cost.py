"""The scrubber's cost (rtl/memory/fb_port.py) is exactly the analytic model's
(sim/models/cost_model.py, scrub_cycles): SCRUB_LAST of regions activated on the whole GPU, clean
and dirty, on Amaranth's simulator."""

import pytest

from sim.models import cost_model
from sim.runners.backend import run_amaranth

from tests.benches.gpu_isolation import SCRUB_STEPS, SMALL


def expected_scrubs(params):
    """(granules, dirty) of each step's activation: the FB's history, kept here."""
    unit = params.iov_fb_unit // params.fb_granule
    where, dirty, out = {}, set(), []
    for layout, writes in SCRUB_STEPS:
        for vf, granules in writes.items():
            dirty |= {where[vf][0] + g for g in granules}
        for region, (base, size) in layout.items():
            where[region] = (base * unit, size * unit)
        base, size = where[list(layout)[-1]]
        region = set(range(base, base + size))
        out.append((size, len(region & dirty)))
        dirty -= region
    return out


def test_scrub_step_expectations_cover_clean_and_dirty_regions():
    scrubs = expected_scrubs(SMALL)
    assert any(d == 0 for _, d in scrubs) and any(0 < d < g for g, d in scrubs)
    assert any(d == g for g, d in scrubs)


@pytest.mark.parametrize("mem_width", [128, 256])
def test_scrub_cycles_are_exactly_the_analytic_model(mem_width):
    params = SMALL.with_(mem_width=mem_width)
    seen = run_amaranth("gpu", params, "tests.benches.gpu_isolation:scrub_cost")
    got = [(s["scrub_last"], s["filled"]) for s in seen["steps"]]
    want = [(cost_model.scrub_cycles(params, g, d), d) for g, d in expected_scrubs(params)]
    assert got == want


def test_scrub_model_names_its_parts():
    p = SMALL
    beats = cost_model.scrub_fill_beats(p)
    assert beats == p.fb_granule * 8 // p.mem_width == 256
    assert cost_model.scrub_cycles(p, 0) == cost_model.SCRUB_START + cost_model.SCRUB_END
    assert cost_model.scrub_cycles(p, 4, 2) - cost_model.scrub_cycles(p, 4) == 2 * (beats + 1)
    with pytest.raises(ValueError):
        cost_model.scrub_cycles(p, 1, 2)
