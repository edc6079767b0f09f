"""An FB memory behind the FB memory port, for tests and scenarios."""

from collections import deque
from random import Random

__all__ = ["FbMemoryModel"]


class FbMemoryModel:
    """Word-addressed memory with a fixed read latency and optional random back-pressure.

    A request accepted at the clock edge that ends cycle c is, for a read, answered in cycle
    c + ``latency`` (so latency 1 answers in the very next cycle); reads answer in order.
    Writes complete when accepted and change
    only the bytes their byte enables name. ``ready_prob`` < 1 drops ``req.ready`` at random.

    Call :meth:`step` once per cycle, after the previous tick and before the next one: it
    reads the request the design presents, then drives ``ready`` and the response.
    """

    def __init__(self, params, latency=None, *, ready_prob=1.0, seed=0, prefix="mem",
                 words=None):
        self.p = params
        self.latency = params.mem_latency if latency is None else latency
        self.ready_prob = ready_prob
        self.rng = Random(seed)
        #: byte address of a beat -> its value; ``words`` shares one with other models (the
        #: channels of one FB).
        self.words = {} if words is None else words
        self.pending = deque()
        self.cycle = 0
        self.prefix = prefix
        self.reads = self.writes = 0

    def step(self, tb):
        pre = self.prefix
        valid = tb.get(f"{pre}__req__valid")
        payload = tb.get(f"{pre}__req__payload") if valid else None
        if self.pending and self.pending[0][0] <= self.cycle:
            _, value = self.pending.popleft()
            tb.set(f"{pre}__resp__payload", {"data": value})
            tb.set(f"{pre}__resp__valid", 1)
        else:
            tb.set(f"{pre}__resp__valid", 0)
        ready = self.ready_prob >= 1 or self.rng.random() < self.ready_prob
        tb.set(f"{pre}__req__ready", int(ready))
        if valid and ready:
            value = self.access(payload)
            if value is not None:
                self.pending.append((self.cycle + self.latency, value))
        self.cycle += 1

    def access(self, request):
        """Carry out one accepted request (an fb_mem_request_layout view); return the data
        a read reads, None for a write."""
        addr = int(request.addr)
        assert addr % (self.p.mem_width // 8) == 0, f"unaligned FB access {addr:#x}"
        if request.write:
            mask = sum(0xFF << (8 * k) for k in range(self.p.mem_width // 8)
                       if int(request.be) >> k & 1)
            self.words[addr] = self.words.get(addr, 0) & ~mask | int(request.data) & mask
            self.writes += 1
            return None
        self.reads += 1
        return self.words.get(addr, 0)
