"""The host port's completion path: fixed-latency answers and FB read data merged onto the
one answer port, and the credits that bound what the host port holds."""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.common.interfaces import Status, ValidSignature
from rtl.memory.fb_port import HOST_TAG_WIDTH, host_fb_done_layout

__all__ = ["HostAnswer", "host_response_layout"]


def host_response_layout():
    """An answer on the host port: the request's tag, read data, status."""
    return data.StructLayout({"tag": unsigned(HOST_TAG_WIDTH), "data": unsigned(32),
                              "status": Status})


class HostAnswer(wiring.Component):
    """Merges the answers of a request pipeline onto the host port and keeps its credits.

    Two sources answer: ``fixed``, the pipeline's last stage (configuration, register,
    doorbell, refused FB accesses and granted FB writes), which cannot wait; and
    ``fb_done``, FB read data from the FB port's completion queue, which can. ``fixed``
    always wins; read data waits in its queue for a cycle without a fixed answer. While read
    data waits (``fb_done.valid`` and ``fixed.valid`` in the same cycle) ``ready`` drops, so
    that at most the requests already in the pipeline can go before it: every read is
    answered a bounded time after its data returns, whatever the host sends meanwhile.

    Credits: ``credits`` requests at most are held at once. ``accept`` takes one; an answer
    frees it, except the answer of a granted FB write (``posted``), whose credit is freed
    when the write leaves for FB (``retired``): the FB queue never overflows.

    Latency: 0 (an answer presented is on ``resp`` in the same cycle; read data waits as
    said). Refuses: nothing (a request beyond the credits is not taken: ``ready`` is low).

    Attributes
    ----------
    fixed : flow of host_response_layout, in
        A fixed-latency answer (must go out this cycle).
    posted : in
        ``fixed`` is a granted FB write's answer (its credit stays until ``retired``).
    fb_done : stream of host_fb_done_layout, in
        FB read data (status OK); ``ready`` in every cycle without a fixed answer.
    resp : flow of host_response_layout, out
        The host port's answers.
    accept : in
        The host port took a request this cycle (holds a credit).
    retired : in
        A granted FB write left for FB (frees its credit).
    ready : out
        A request may be taken: a credit is free and no read data waits.
    outstanding : out
        Credits held.
    """

    def __init__(self, credits):
        self.credits = credits
        super().__init__({
            "fixed": In(ValidSignature(host_response_layout())),
            "posted": In(1),
            "fb_done": In(stream.Signature(host_fb_done_layout())),
            "resp": Out(ValidSignature(host_response_layout())),
            "accept": In(1),
            "retired": In(1),
            "ready": Out(1),
            "outstanding": Out(range(credits + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        fixed, done, resp = self.fixed, self.fb_done, self.resp
        read_waits = Signal()
        m.d.comb += [done.ready.eq(~fixed.valid), read_waits.eq(done.valid & fixed.valid),
                     self.ready.eq((self.outstanding < self.credits) & ~read_waits)]
        with m.If(fixed.valid):
            m.d.comb += [resp.valid.eq(1), resp.payload.eq(fixed.payload)]
        with m.Else():
            m.d.comb += [resp.valid.eq(done.valid), resp.payload.tag.eq(done.payload.tag),
                         resp.payload.data.eq(done.payload.data),
                         resp.payload.status.eq(Status.OK)]
        freed = resp.valid & ~(fixed.valid & self.posted)
        m.d.sync += self.outstanding.eq(self.outstanding + self.accept - freed - self.retired)
        return m
