"""The host port's completion path (rtl/top/host_answer.py): exact cycles of the two
sources' merge and of the credits, and a random run against a Python reference."""

from random import Random

from rtl.common.interfaces import Status
from rtl.memory.fb_port import HOST_TAG_WIDTH
from rtl.top.host_answer import HostAnswer
from tests import simulate


class Reference:
    """The completion path in Python: what each cycle's outputs are and what is held."""

    def __init__(self, credits):
        self.credits, self.held = credits, 0

    def outputs(self, fixed, done):
        """fixed, done: None or (tag, data[, status]). Returns resp, done_ready, ready."""
        if fixed is not None:
            resp = fixed
        elif done is not None:
            resp = (done[0], done[1], Status.OK.value)
        else:
            resp = None
        ready = self.held < self.credits and not (fixed is not None and done is not None)
        return resp, fixed is None, ready

    def step(self, resp, fixed, posted, accept, retired):
        freed = resp is not None and not (fixed is not None and posted)
        self.held += accept - freed - retired
        assert 0 <= self.held <= self.credits


def _drive(ctx, dut, fixed, posted, done, accept, retired):
    ctx.set(dut.fixed.valid, fixed is not None)
    if fixed is not None:
        ctx.set(dut.fixed.payload.tag, fixed[0])
        ctx.set(dut.fixed.payload.data, fixed[1])
        ctx.set(dut.fixed.payload.status, fixed[2])
    ctx.set(dut.posted, posted)
    ctx.set(dut.fb_done.valid, done is not None)
    if done is not None:
        ctx.set(dut.fb_done.payload.tag, done[0])
        ctx.set(dut.fb_done.payload.data, done[1])
    ctx.set(dut.accept, accept)
    ctx.set(dut.retired, retired)


def _resp(ctx, dut):
    if not ctx.get(dut.resp.valid):
        return None
    return (ctx.get(dut.resp.payload.tag), ctx.get(dut.resp.payload.data),
            ctx.get(dut.resp.payload.status.as_value()))


def test_read_data_waits_for_a_cycle_without_a_fixed_answer_and_stops_new_requests():
    dut = HostAnswer(4)
    seen = []

    async def bench(ctx):
        for _ in range(2):                          # two requests in the pipeline
            _drive(ctx, dut, None, 0, None, 1, 0)
            await ctx.tick()
        # Then a fixed answer and read data at once: the fixed one goes, the read waits
        # and the port takes nothing new.
        _drive(ctx, dut, (1, 0x11, Status.UR.value), 0, (2, 0x22), 0, 0)
        seen.append((_resp(ctx, dut), ctx.get(dut.fb_done.ready), ctx.get(dut.ready)))
        await ctx.tick()
        # The next cycle, no fixed answer: the read data goes.
        _drive(ctx, dut, None, 0, (2, 0x22), 0, 0)
        seen.append((_resp(ctx, dut), ctx.get(dut.fb_done.ready), ctx.get(dut.ready)))

    simulate(dut, bench)
    assert seen == [((1, 0x11, Status.UR.value), 0, 0), ((2, 0x22, Status.OK.value), 1, 1)]


def test_credits_run_out_after_exactly_credits_requests_and_a_posted_write_holds_its_own():
    credits = 3
    dut = HostAnswer(credits)
    ready = []

    async def bench(ctx):
        for _ in range(credits):                    # take every credit
            _drive(ctx, dut, None, 0, None, 1, 0)
            ready.append(ctx.get(dut.ready))
            await ctx.tick()
        _drive(ctx, dut, None, 0, None, 0, 0)
        ready.append(ctx.get(dut.ready))            # none left
        # A granted FB write's answer frees nothing ...
        _drive(ctx, dut, (7, 0, Status.OK.value), 1, None, 0, 0)
        await ctx.tick()
        _drive(ctx, dut, None, 0, None, 0, 0)
        ready.append(ctx.get(dut.ready))
        # ... until it leaves for FB; then one request fits, the next cycle.
        _drive(ctx, dut, None, 0, None, 0, 1)
        ready.append(ctx.get(dut.ready))
        await ctx.tick()
        _drive(ctx, dut, None, 0, None, 0, 0)
        ready.append(ctx.get(dut.ready))
        assert ctx.get(dut.outstanding) == credits - 1

    simulate(dut, bench)
    assert ready == [1, 1, 1, 0, 0, 0, 1]


def test_random_traffic_matches_the_reference_cycle_by_cycle():
    credits, rng = 16, Random(5)
    dut = HostAnswer(credits)
    ref = Reference(credits)
    cycles, seen = [], {"read waits": 0, "credits out": 0, "posted": 0, "read answered": 0}

    async def bench(ctx):
        posted_out = 0                              # granted writes answered, not yet retired
        reads = []                                  # read data the FB port holds (a queue)
        for cycle in range(3000):
            # What may answer this cycle: never more than the credits held.
            # (a granted write's answer keeps its credit until it retires).
            budget = ref.held - posted_out
            retired = int(posted_out > 0 and rng.random() < 0.3)
            fixed = posted = None
            # Phases of few answers fill the credits.
            rate = 0.5 if (cycle // 300) % 2 else 0.05
            if budget > 0 and rng.random() < rate:
                posted = int(rng.random() < 0.3)
                fixed = (rng.getrandbits(HOST_TAG_WIDTH), rng.getrandbits(32),
                         rng.choice([s.value for s in Status]))
                budget -= 1
            done = reads[0] if reads and budget > 0 else None
            want = rng.random() < 0.6
            resp, done_ready, ready = ref.outputs(fixed, done)
            accept = int(want and ready)
            _drive(ctx, dut, fixed, posted or 0, done, accept, retired)
            assert (_resp(ctx, dut), ctx.get(dut.fb_done.ready), ctx.get(dut.ready)) == \
                (resp, done_ready, ready), cycle
            assert ctx.get(dut.outstanding) == ref.held, cycle
            ref.step(resp, fixed, posted, accept, retired)
            seen["read waits"] += fixed is not None and done is not None
            seen["credits out"] += ref.held == credits
            seen["posted"] += bool(fixed is not None and posted)
            seen["read answered"] += fixed is None and done is not None
            if done is not None and done_ready:
                reads.pop(0)
            if fixed is not None and posted:
                posted_out += 1
            posted_out -= retired
            # Some accepted requests become read data later (they hold their credit).
            if accept and rng.random() < 0.3 and len(reads) + posted_out < ref.held:
                reads.append((rng.getrandbits(HOST_TAG_WIDTH), rng.getrandbits(32)))
            cycles.append(cycle)
            await ctx.tick()

    simulate(dut, bench)
    assert len(cycles) == 3000
    assert all(seen.values()), seen                 # every case was exercised
