"""The event-driven system loop (sim/system/system.py on rtl/top/harness.py): it looks only
at the cycles where something happens, and must give the run a loop that looks at every
cycle gives. Its parts are checked against per-cycle references: the engine model's skip,
the monitor's spans, the FB RAM against the FB memory model."""

from random import Random

import pytest

from rtl.common.iov_codes import SeqState
from rtl.memory.fb_ram import FbRam
from rtl.params import GpuParams
from rtl.top.harness import GpuHarness
from sim.models.engine import Engine, EngineModel
from sim.models.fbmem import FbMemoryModel
from sim.runners.backend import Fields, run_amaranth
from sim.system.run import PROGRESS_EVERY, run
from sim.system.scenario import with_
from sim.system.system import Monitor
from tests import simulate
from tests.test_scenario import SMALL, _without_backend as _comparable


@pytest.fixture(scope="module")
def every_cycle():
    return run(SMALL, top="gpu")


def test_the_event_driven_loop_gives_the_run_of_one_that_looks_at_every_cycle(every_cycle):
    sleeping = run(SMALL, top="gpu_harness")
    assert _comparable(sleeping) == _comparable(every_cycle)
    assert every_cycle["looked"] == every_cycle["cycles"]
    # It does sleep: most cycles of this busy scenario run without the loop.
    assert sleeping["looked"] < every_cycle["cycles"] // 2


class _DeafToDoorbells(GpuHarness):
    """A planted bug: ``wake`` misses the doorbells the CP port delivers."""

    def _event(self, m):
        ignored = super()._event(m)        # the rest stays as it is
        del ignored
        gpu = self.gpu
        return gpu.host.resp.valid | self.ram.ext.valid


def test_a_harness_that_does_not_wake_for_doorbells_changes_the_run(every_cycle):
    try:
        raw = run_amaranth(_DeafToDoorbells(SMALL.params()), SMALL.params(),
                           "sim.system.run:run_body", scenario=SMALL.to_dict())
    except AssertionError:          # or the loop notices on its own
        return
    raw = dict(raw, scenario=every_cycle["scenario"], backend=every_cycle["backend"])
    assert _comparable(raw) != _comparable(every_cycle)


class _Tb:
    """What the engine model drives and reads, without a simulator."""

    def __init__(self):
        self.driven = {}

    def set(self, name, value):
        self.driven[name] = value

    def get(self, name):
        return 0


def _engine(work=9, drain=3, preempt_every=1):
    return Engine(GpuParams(num_vfs=3), drain=drain, work_per_doorbell=work, check_words=0,
                  seed=1, preempt_every=preempt_every)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("preempt_every", [1, 0, 4])
def test_an_engine_that_skips_steady_cycles_drives_what_one_stepped_each_cycle_drives(
        seed, preempt_every):
    rng = Random(seed)
    inputs, stop, owner = [], 0, 1
    for _ in range(400):                  # inputs that hold for a while, as the GPU's do
        if rng.random() < 0.1:
            stop = rng.randrange(2)
        if rng.random() < 0.05:
            owner = rng.randrange(4)
        deliveries = [(rng.randrange(1, 4), 0, 0)] if rng.random() < 0.05 else []
        inputs.append((stop, owner, deliveries))
    each, tb_each = _engine(preempt_every=preempt_every), _Tb()
    busy_each = []
    for cycle, (stop, owner, deliveries) in enumerate(inputs):
        each.step(tb_each, cycle, stop, owner > 0, owner, deliveries)
        busy_each.append(tb_each.driven["engine_busy"])
    # The skipping engine is stepped only where an input changes or it says its answer
    # changes; in between, what it drove stays.
    skip, tb_skip = _engine(preempt_every=preempt_every), _Tb()
    busy_skip, wake = [], 0
    for cycle, (stop, owner, deliveries) in enumerate(inputs):
        changed = cycle == 0 or inputs[cycle - 1][:2] != (stop, owner) or deliveries
        if changed or cycle >= wake:
            skip.step(tb_skip, cycle, stop, owner > 0, owner, deliveries)
            wake = skip.next_change() or len(inputs)
        busy_skip.append(tb_skip.driven["engine_busy"])
    assert busy_skip == busy_each
    skip.catch_up(len(inputs))
    assert skip.pending == each.pending and skip.done == each.done


def test_a_hung_engine_skipped_past_its_work_keeps_no_negative_work():
    engine = EngineModel(drain=2, work=lambda fn: True)
    engine.hung = True
    assert engine.advance(False, 1) and engine.steady() is None
    engine.skip(10_000)
    assert engine.advance(True, 1)


def _monitor_values(seed, cycles=600):
    rng = Random(seed)
    states = list(SeqState)
    values, v = [], (False, 0, SeqState.READY)
    for _ in range(cycles):
        if rng.random() < 0.08:
            v = (rng.random() < 0.7, rng.randrange(3), rng.choice(states))
        values.append(v)
    return values


@pytest.mark.parametrize("seed", range(4))
def test_a_monitor_stepped_at_changes_records_what_one_stepped_each_cycle_records(seed):
    values = _monitor_values(seed)
    each, changes = Monitor(), Monitor()
    for cycle, v in enumerate(values):
        each.step(cycle, *v)
        if cycle == 0 or values[cycle - 1] != v:
            changes.step(cycle, *v)
    changes.finish(len(values))
    for name in ("segments", "switches", "owned"):
        assert getattr(changes, name) == getattr(each, name), name


@pytest.mark.parametrize("latency", [1, 4])
def test_fb_ram_answers_as_the_fb_memory_model_inside_and_outside_its_window(latency):
    params = GpuParams(num_vfs=2, mem_width=64)
    beat = params.mem_width // 8
    base, size = 64 * beat, 32 * beat
    dut = FbRam(params, base, size, latency)
    model = FbMemoryModel(params, latency)
    outside = FbMemoryModel(params, 1)         # what the testbench keeps for ``ext``
    rng = Random(latency)
    requests = []
    for _ in range(300):
        addr = rng.choice([base + rng.randrange(size // beat) * beat,
                           rng.randrange(200) * beat])
        requests.append(None if rng.random() < 0.2 else
                        {"addr": addr, "write": rng.random() < 0.5,
                         "data": rng.getrandbits(params.mem_width),
                         "be": rng.getrandbits(beat)})
    got, want = [], []

    async def bench(ctx):
        for cycle, req in enumerate(requests + [None] * (latency + 2)):
            if req is not None:
                ctx.set(dut.mem.req.valid, 1)
                ctx.set(dut.mem.req.payload, dut.mem.req.payload.shape().const(req))
                value = model.access(Fields(req))
                if value is not None:
                    model.pending.append((cycle + latency, value))
            else:
                ctx.set(dut.mem.req.valid, 0)
            if ctx.get(dut.ext.valid):
                value = outside.access(Fields(req))
                ctx.set(dut.ext_rdata, value or 0)
            if model.pending and model.pending[0][0] == cycle:
                want.append((cycle, model.pending.popleft()[1]))
            if ctx.get(dut.mem.resp.valid):
                got.append((cycle, ctx.get(dut.mem.resp.payload.data)))
            await ctx.tick()

    simulate(dut, bench)
    assert got == want and len(got) > 50
    assert outside.reads + outside.writes > 50      # both sides were exercised


def test_a_cocotb_run_reports_its_progress_to_the_calling_process(simulator):
    seen = []
    raw = run(with_(SMALL, name="progress", run_cycles=20_000), simulator,
              progress=seen.append)
    assert seen and seen == sorted(seen) and seen[-1] <= raw["cycles"]
    assert seen[-1] >= raw["cycles"] - max(PROGRESS_EVERY, 20_000 // 100)
