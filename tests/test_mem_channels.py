"""FB memory channels (``mem_channels``): independent ports to the one FB. An overlapped
switch's save and load each get one, so the switch costs the larger of the two instead of
their sum; host FB accesses and the scrubber go by address and still answer in order;
the harness's RAM is one memory behind every channel. Checked against the cost model's
formulas, an FB memory model and a loop that looks at every cycle."""

from collections import deque
from random import Random

import pytest

from rtl.common.interfaces import mem_channel_of
from rtl.common.iov_codes import SeqState
from rtl.memory.fb_port import HOST_TAG_WIDTH, FbPort
from rtl.memory.fb_ram import FbRam
from rtl.params import MEM_INTERLEAVE, GpuParams, ParamError
from sim.bench.report import summarize
from sim.models import cost_model
from sim.models.fbmem import FbMemoryModel
from sim.runners.backend import Fields
from sim.system.run import run
from sim.system.scenario import with_
from tests import simulate
from tests.test_scenario import SMALL, _without_backend

#: Save and load of 260 beats each: large enough that the overlap's fixed cycles are small.
TWO = with_(SMALL, name="two-channels", mode="overlapped", mem_channels=2, ctx_words=256)


@pytest.fixture(scope="module")
def overlapped_run():
    return run(TWO)


@pytest.fixture(scope="module")
def serial_run():
    return run(with_(TWO, name="two-channels-serial", mode="host"))


def _hardware_switch(raw):
    """Each switch's cycles as the hardware counts them (every phase)."""
    s = summarize(raw)
    return s["phases"]["switch (hardware)"], s


def test_an_overlapped_switch_on_two_channels_costs_the_larger_of_save_and_load(
        overlapped_run):
    hw, s = _hardware_switch(overlapped_run)
    assert s["errors"] == [] and s["switches"] >= 3 and s["context_checks"] >= s["switches"]
    params = TWO.params()
    phases = cost_model.phase_cycles(params, TWO.engine_drain)
    want = cost_model.gpu_overlapped_phase_cycles(params, TWO.engine_drain)
    assert want["overlap"] == max(phases["save"], phases["load"])
    for phase in ("idle", "overlap", "run"):
        assert s["phases"][phase]["min"] == s["phases"][phase]["max"] == want[phase]
    assert hw["min"] == hw["max"] == want["switch"]


def test_two_channels_make_an_overlapped_switch_at_least_1_8_times_faster_than_serial(
        overlapped_run, serial_run):
    overlapped, _ = _hardware_switch(overlapped_run)
    serial, s = _hardware_switch(serial_run)
    assert s["errors"] == []
    assert serial["max"] == cost_model.switch_cycles(TWO.params(), TWO.engine_drain)
    assert serial["min"] / overlapped["max"] >= 1.8
    # One channel: the two movers take turns on it, and overlapping gains nothing.
    one = TWO.params().with_(mem_channels=1)
    alone = cost_model.gpu_overlapped_phase_cycles(one, TWO.engine_drain)["switch"]
    assert alone >= cost_model.switch_cycles(one, TWO.engine_drain) - 1


def test_a_two_channel_run_is_the_run_of_the_bare_top_looked_at_every_cycle(overlapped_run):
    every_cycle = run(TWO, top="gpu")
    assert _without_backend(every_cycle) == _without_backend(overlapped_run)


def test_a_two_channel_run_gives_identical_cycles_on_every_backend(overlapped_run,
                                                                   simulator):
    assert _without_backend(run(TWO, simulator)) == _without_backend(overlapped_run)


def test_mem_channels_out_of_range_is_refused_naming_it():
    for bad in (0, 5):
        with pytest.raises(ParamError, match="mem_channels"):
            GpuParams(mem_channels=bad)


def test_host_accesses_go_to_the_channel_of_their_page():
    params = GpuParams(mem_channels=3)
    assert [mem_channel_of(params, page * MEM_INTERLEAVE + 4) for page in range(7)] == \
        [0, 1, 2, 0, 1, 2, 0]
    assert mem_channel_of(params.with_(mem_channels=1), 5 * MEM_INTERLEAVE) == 0


class _Channel:
    """One FB channel's memory for :class:`FbPort` alone: a latency, random back-pressure,
    the words it shares with the other channels."""

    def __init__(self, latency, words, rng):
        self.latency, self.words, self.rng = latency, words, rng
        self.pending = deque()
        self.accepted = 0


def test_host_reads_answer_in_the_order_they_left_across_channels_of_unequal_latency():
    params = GpuParams(num_vfs=2, mem_width=64, mem_channels=2)
    depth = 8
    dut = FbPort(params, depth)
    rng = Random(3)
    words = {}
    channels = [_Channel(latency, words, rng) for latency in (9, 1)]
    reference = {}                 # dword address -> value, in the order accesses left
    expected = deque()             # (tag, data) of each read, in the order it was queued
    got = []
    counts = {"pushed": 0, "answered": 0, "retired": 0}

    def next_entry(tag):
        addr = rng.randrange(4) * MEM_INTERLEAVE + rng.randrange(8) * 4
        write = rng.random() < 0.4
        value = rng.getrandbits(32)
        be = rng.choice([0xF, 0x3, 0xC, 0x1])
        if write:
            mask = sum(0xFF << (8 * k) for k in range(4) if be >> k & 1)
            reference[addr] = reference.get(addr, 0) & ~mask | value & mask
        else:
            expected.append((tag, reference.get(addr, 0)))
        return {"addr": addr, "write": write, "data": value, "be": be, "tag": tag, "fn": 1}

    def serve(ctx, c, fb, cycle):
        ch = channels[c]
        due = ch.pending and ch.pending[0][0] == cycle
        ctx.set(fb.resp.valid, bool(due))
        if due:
            ctx.set(fb.resp.payload.data, ch.pending.popleft()[1])
        ready = ch.rng.random() < 0.6
        ctx.set(fb.req.ready, ready)
        if ready and ctx.get(fb.req.valid):
            req = ctx.get(fb.req.payload)
            assert mem_channel_of(params, int(req.addr)) == c, "access on the wrong channel"
            value = FbMemoryModel(params, words=ch.words).access(req)
            ch.accepted += 1
            if value is not None:
                ch.pending.append((cycle + ch.latency, value))

    async def bench(ctx):
        ctx.set(dut.seq, SeqState.READY)
        tag = 0
        for cycle in range(3000):
            for c, fb in enumerate(dut.channels):
                serve(ctx, c, fb, cycle)
            held = counts["pushed"] - counts["answered"] - counts["retired"]
            push = cycle < 2500 and held < depth and rng.random() < 0.5
            ctx.set(dut.host.valid, push)
            if push:
                entry = next_entry(tag)
                ctx.set(dut.host.payload, dut.host.payload.shape().const(entry))
                tag = (tag + 1) % (1 << HOST_TAG_WIDTH)
                counts["pushed"] += 1
            take = rng.random() < 0.7
            ctx.set(dut.host_done.ready, take)
            if take and ctx.get(dut.host_done.valid):
                done = ctx.get(dut.host_done.payload)
                got.append((int(done.tag), int(done.data)))
                counts["answered"] += 1
            counts["retired"] += ctx.get(dut.host_retired)
            await ctx.tick()

    simulate(dut, bench)
    assert got == list(expected) and len(got) > 300
    assert all(ch.accepted > 300 for ch in channels)       # both channels carried traffic


@pytest.mark.parametrize("latency", [1, 3])
def test_fb_ram_channels_are_ports_to_one_memory(latency):
    params = GpuParams(num_vfs=2, mem_width=64, mem_channels=2)
    beat = params.mem_width // 8
    base, size = 64 * beat, 32 * beat
    dut = FbRam(params, base, size, latency)
    shared = {}
    model = FbMemoryModel(params, latency, words=shared)
    outside = FbMemoryModel(params, 1)          # what the testbench keeps for ``ext``
    rng = Random(latency)
    cycles = [[None if rng.random() < 0.2 else
               {"addr": base + rng.randrange(size // beat) * beat if rng.random() < 0.8
                else rng.randrange(200) * beat,
                "write": rng.random() < 0.5, "data": rng.getrandbits(params.mem_width),
                "be": rng.getrandbits(beat)} for _ in range(2)] for _ in range(300)]
    # The two channels never write one word in the same cycle (which one wins is not
    # defined); a read of a word the other channel writes then sees the old data.
    for reqs in cycles:
        if all(reqs) and reqs[0]["addr"] == reqs[1]["addr"]:
            reqs[1] = None
    got, want = [[], []], [[], []]
    pending = [deque(), deque()]

    async def bench(ctx):
        for cycle, reqs in enumerate(cycles + [[None, None]] * (latency + 2)):
            reads = [model.words.get(int(r["addr"]), 0) if r and not r["write"] else None
                     for r in reqs]
            for c, req in enumerate(reqs):
                mem = dut.channels[c]
                ctx.set(mem.req.valid, req is not None)
                if req is None:
                    continue
                ctx.set(mem.req.payload, mem.req.payload.shape().const(req))
                inside = base <= req["addr"] < base + size
                if req["write"]:
                    (model if inside else outside).access(Fields(req))
                elif inside:
                    pending[c].append((cycle + latency, reads[c]))
                else:
                    value = outside.access(Fields(req))
                    pending[c].append((cycle + latency, value))
                if ctx.get(dut.port("ext", c).valid):
                    value = outside.words.get(int(req["addr"]), 0)
                    ctx.set(dut.port("ext_rdata", c), value)
            for c, mem in enumerate(dut.channels):
                if pending[c] and pending[c][0][0] == cycle:
                    want[c].append((cycle, pending[c].popleft()[1]))
                if ctx.get(mem.resp.valid):
                    got[c].append((cycle, ctx.get(mem.resp.payload.data)))
            await ctx.tick()

    simulate(dut, bench)
    assert got == want and all(len(g) > 50 for g in got)


def test_the_cost_plot_of_two_channels_has_the_block_s_overlapped_switches_on_its_line():
    from sim.bench.report import cost_points
    points = cost_points(with_(TWO, ctx_words=64))
    line = dict(points["curves"][TWO.mem_width])
    assert points["measured"] and all(line[size] == cycles
                                      for size, _, cycles in points["measured"])
