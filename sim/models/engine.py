"""The GPU engine as the world switch sees it: :class:`EngineModel`, the one model of its
``engine_busy`` line (work, drain, hang), for the world-switch benches
(sim/drivers/world_switch_host.py) and, as :class:`Engine` with the command processor in
front and a check of every function's engine state, for the whole GPU's system loop
(sim/system/system.py): both drain the same way because they are the same code."""

from random import Random

__all__ = ["EngineModel", "Engine"]


class EngineModel:
    """An engine that runs the owner's work and needs ``drain`` cycles to go idle once told
    to stop.

    Cycle behaviour, one :meth:`advance` a cycle (before the edge), its answer driven on
    ``engine_busy`` that cycle:

    - ``engine_stop`` low: busy while the running function has work (:meth:`has_work`); a
      busy cycle is one cycle of that function's work (:meth:`ran`). With no ``work`` the
      engine is always busy, owner or not (a bench that does not model work).
    - ``engine_stop`` high: first the running work goes on to its next preemption point
      (:meth:`to_boundary` cycles, counted as work: 0 in this model, which can stop at any
      cycle; None: never, a hung workload), then busy ``drain`` cycles more, counting the
      cycle the stop is first seen, idle from then on (``drain=0``: idle at once). Work
      left over stays for the function's next turn; ``engine_stop`` low again re-arms the
      count.
    - ``hung``: busy whatever happens (an engine that never drains, for the drain timeout).

    Parameters
    ----------
    drain : int
        Cycles from ``engine_stop`` to idle.
    work : callable, optional
        ``work(fn)`` -> whether function ``fn`` has work now; None: always.
    """

    def __init__(self, drain, work=None):
        self.drain = drain
        self.work = work
        self.hung = False
        self.drain_left = None       # cycles of the current stop still busy; None: no stop
        self.finish_left = 0         # work cycles to the preemption point (None: never)
        self._stopped = None         # the function the current stop stops
        self.busy = False            # the answer of the last advance
        self._inputs = (False, None)  # its stop and owner

    def has_work(self, fn):
        """Whether function ``fn`` (None: nobody owns the GPU) has work now; with no
        ``work``, always."""
        if self.work is None:
            return True
        return fn is not None and bool(self.work(fn))

    def ran(self, fn, cycles=1):
        """``cycles`` busy cycles of ``fn``'s work went by; a model that counts work
        overrides it."""

    def to_boundary(self, fn):
        """Cycles of ``fn``'s work from now to the point where it can be preempted (None:
        never); this model stops at any cycle. A model with work items overrides it."""
        return 0

    def advance(self, stop, owner):
        """One cycle: ``stop`` is ``engine_stop``, ``owner`` the running function (None: no
        function owns the GPU). Returns whether the engine is busy this cycle."""
        self._inputs = (stop, owner)
        if stop:
            if self.drain_left is None:
                self.drain_left = self.drain
                self.finish_left = 0 if owner is None else self.to_boundary(owner)
                self._stopped = owner
            elif owner != self._stopped:
                # The function being stopped lost the GPU (an FLR): nothing runs to a
                # preemption point any more, only the drain is left.
                self.finish_left = 0
            if self.finish_left is None:
                busy = True                      # a workload that never reaches one
            elif self.finish_left:
                busy = True
                self.finish_left -= 1
                self.ran(owner)
            else:
                busy = self.drain_left > 0
                if self.drain_left:
                    self.drain_left -= 1
        else:
            self.drain_left = None
            busy = self.has_work(owner)
            if busy and owner is not None:
                self.ran(owner)
        self.busy = busy or self.hung
        return self.busy

    def steady(self):
        """Cycles after the last :meth:`advance` for which advancing with the same inputs
        gives the same answer (None: for ever)."""
        if self.hung or not self.busy:
            return None
        stop, owner = self._inputs
        if stop:
            return self.finish_left if self.finish_left != 0 else self.drain_left
        if self.work is None or owner is None:
            return None
        return self.remaining(owner)

    def remaining(self, fn):
        """Busy cycles of work ``fn`` has left; a model that counts work overrides it."""
        return None

    def skip(self, cycles):
        """``cycles`` of :meth:`advance` with the last inputs, within :meth:`steady`: what
        many calls would do, at once."""
        stop, owner = self._inputs
        steady = self.steady()
        assert steady is None or cycles <= steady, f"skip({cycles}) past a change at {steady}"
        if stop:
            if self.finish_left:
                self.finish_left -= cycles
                self.ran(owner, cycles)
            elif self.finish_left == 0:
                self.drain_left = max(self.drain_left - cycles, 0)
        elif owner is not None and self.has_work(owner):
            left = self.remaining(owner)     # a hung engine may outlast the work
            self.ran(owner, cycles if left is None else min(cycles, left))


class Engine(EngineModel):
    """The command processor and the GPU engine behind it, for the whole GPU's system loop.

    Takes every doorbell the CP port offers; each adds a work item of ``work_per_doorbell``
    cycles for its function, counted down a cycle a busy cycle; busy and drain as
    :class:`EngineModel` says, the rest of the work kept for the function's next turn. Told
    to stop, the item that runs goes on to its next preemption point: one every
    ``preempt_every`` cycles of the item (1: any cycle; 0: none, the item runs to its end),
    then ``drain`` cycles more; so IDLE's cost depends on where the work is. A function
    whose doorbell is delivered at or after its :meth:`hang_at` cycle hangs: its item never
    ends, the engine never drains while it runs (IDLE_GPU ends with GFX_HANG), until an
    FLR (:meth:`forget`) or INIT (:meth:`reset_fn`) of it. When a function starts a turn
    the engine reads the first ``check_words`` words of its state, which must be what it
    left there at its last turn (zeros after INIT_GPU), then writes fresh ones: the world
    switch must carry every function's context across everyone else's turns.
    """

    def __init__(self, params, *, drain, work_per_doorbell, check_words, seed,
                 preempt_every=1):
        super().__init__(drain, work=lambda fn: self.pending[fn] > 0 or fn in self.hung_fns)
        self.p = params
        self.work_per_doorbell = work_per_doorbell
        self.preempt_every = preempt_every
        self.hangs = {}              # fn -> the cycle from which its next doorbell hangs
        self.hung_fns = set()        # functions whose work item never ends
        self.check_words = min(check_words, params.ctx_words)
        self.rng = Random(seed)
        self.pending = [0] * params.num_fns     # fn -> cycles of work it has left
        self.done = [0] * params.num_fns        # fn -> busy cycles spent on its work
        self.expected = {}           # fn -> words its state must hold at its next turn
        self.errors = []
        self.checked = 0
        self._job = None             # (fn, phase, index, words read)
        self._port_busy = True       # the state port may have a valid to take down
        self._last_owner = None
        self._cycle = None           # the cycle of the last step

    def catch_up(self, cycle):
        """The cycles since the last :meth:`step` up to ``cycle`` (not included) went by
        with the inputs of that step (a system loop that sleeps calls this first)."""
        if self._cycle is not None and cycle > self._cycle + 1:
            self.skip(cycle - self._cycle - 1)
            self._cycle = cycle - 1

    def next_change(self):
        """The cycle at which ``engine_busy`` would next change with the inputs of the last
        step, or must be driven (a state check in progress); None: never."""
        if self._job is not None:
            return self._cycle + 1
        steady = self.steady()
        return None if steady is None else self._cycle + steady + 1

    def fresh_word(self):
        """A new engine-state word, written at the start of a turn."""
        return self.rng.getrandbits(self.p.mem_width)

    def reset_fn(self, fn):
        """INIT_GPU or FLR: the next turn of ``fn`` starts from zeros."""
        self.expected[fn] = [0] * self.check_words
        self.pending[fn] = 0
        self.hung_fns.discard(fn)

    def hang_at(self, fn, cycle):
        """``fn``'s first doorbell delivered at or after ``cycle`` brings work that hangs."""
        self.hangs[fn] = cycle

    def ran(self, fn, cycles=1):
        """Busy cycles: that much less of ``fn``'s work, and that much more done (a hung
        item does nothing)."""
        if fn in self.hung_fns:
            return
        self.pending[fn] -= cycles
        self.done[fn] += cycles

    def remaining(self, fn):
        return None if fn in self.hung_fns else self.pending[fn]

    def to_boundary(self, fn):
        """Work cycles from now to the next preemption point of ``fn``'s running item: 0 at
        an item's start or on a point, at most ``preempt_every`` - 1 (or to the item's end);
        None for a hung item."""
        if fn in self.hung_fns:
            return None
        item, every = self.work_per_doorbell, self.preempt_every
        left = self.pending[fn] % item if item else 0     # 0: between two items
        if not left or every == 1:
            return 0
        if every == 0:
            return left
        return min(left, -(item - left) % every)

    def forget(self, fn):
        """FLR: ``fn``'s work and what its state must hold are gone."""
        self.expected.pop(fn, None)
        self.pending[fn] = 0
        self.hung_fns.discard(fn)

    def step(self, tb, cycle, stop, owner_valid, owner, deliveries):
        """Cycle ``cycle``: take ``deliveries`` (the CP's doorbells), drive ``engine_busy``
        given ``engine_stop`` (``stop``), run the state check of a turn that starts."""
        self.catch_up(cycle)
        self._cycle = cycle
        for event in deliveries:
            fn = event[0]
            if fn in self.hangs and self.hangs[fn] <= cycle:
                del self.hangs[fn]
                self.hung_fns.add(fn)
            else:
                self.pending[fn] += self.work_per_doorbell
        busy = self.advance(bool(stop), owner if owner_valid else None)
        tb.set("engine_busy", int(busy))
        # A new turn: check, then scribble, the owner's engine state.
        if owner_valid and owner != self._last_owner and self.check_words and \
                owner in self.expected:
            self._job = [owner, "read", 0, []]
        self._last_owner = owner if owner_valid else None
        if self._job is not None or self._port_busy:
            self._state_port(tb)

    def _state_port(self, tb):
        job = self._job
        tb.set("state_rd__valid", 0)
        tb.set("state_wr__valid", 0)
        # Between checks the port rests (a look a cycle is the loop's hot path).
        self._port_busy = job is not None
        if job is None:
            return
        fn, phase, index, got = job
        if phase == "read":
            if index > 0:                       # the data of the read issued last cycle
                got.append(int(tb.get("state_rdata")))
            if index < self.check_words:
                tb.set("state_rd__payload", {"addr": index})
                tb.set("state_rd__valid", 1)
                job[2] += 1
            else:
                self.checked += 1
                if got != self.expected[fn]:
                    self.errors.append(f"function {fn}: engine state {got} at the start of "
                                       f"its turn, expected {self.expected[fn]}")
                words = [self.fresh_word() for _ in range(self.check_words)]
                self.expected[fn] = words
                job[1], job[2], job[3] = "write", 0, words
                self._state_port(tb)
        else:
            if index < self.check_words:
                tb.set("state_wr__payload", {"addr": index, "data": got[index]})
                tb.set("state_wr__valid", 1)
                job[2] += 1
            else:
                self._job = None
