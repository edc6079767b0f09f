"""Completion by interrupt: CMD_CONTROL's IRQ_EN (0x20) makes the PF's ``irq.cmd_done``
pulse once when EXECUTE clears, and a hypervisor that waits for it instead of polling sees
each switch a fixed handful of cycles after the hardware ends it, however rarely it would
have polled."""

import pytest

from sim.bench.report import summarize
from sim.system.run import run
from sim.drivers.iov import CommandTimeout
from sim.system.scenario import ScenarioError, with_
from tests.test_scenario import SMALL, _without_backend


def _run(**changes):
    raw = run(with_(SMALL, name="irq", **changes))
    s = summarize(raw)
    assert s["errors"] == [] and s["switches"] >= 3
    return raw, s


def _host_overhead(s):
    """Cycles the host adds to a switch, as it sees it, to the hardware's: (least, most)."""
    host = s["phases"]["switch (as the host sees it)"]
    hw = s["phases"]["switch (hardware)"]
    assert hw["min"] == hw["max"]
    return host["min"] - hw["max"], host["max"] - hw["max"]


@pytest.fixture(scope="module")
def by_interrupt():
    return _run(completion="interrupt", poll_every=50)


def test_every_command_written_with_irq_en_raises_exactly_one_interrupt(by_interrupt):
    raw, _ = by_interrupt
    commands = raw["hv"]["commands"]
    assert len(commands) > 10 and raw["interrupts"] == len(commands)


def test_commands_written_without_irq_en_raise_none():
    raw, _ = _run(completion="poll")
    assert raw["interrupts"] == 0 and len(raw["hv"]["commands"]) > 10


def test_a_hypervisor_waiting_for_the_interrupt_sees_a_switch_independent_of_polling(
        by_interrupt):
    _, slow = by_interrupt
    _, fast = _run(completion="interrupt", poll_every=8, ctx_words=128)
    _, polled = _run(completion="poll", poll_every=50)
    # The gaps between the four commands (interrupt, status read, next write) cost the
    # same whatever the poll interval and the context size; polling every 50 cycles costs
    # more than all of them.
    least, most = _host_overhead(slow)
    assert least == most > 0 and _host_overhead(fast) == (least, most)
    assert _host_overhead(polled)[0] > most


def test_the_interrupt_run_is_the_run_of_a_loop_that_looks_at_every_cycle(by_interrupt):
    raw, _ = by_interrupt
    every_cycle = run(with_(SMALL, name="irq", completion="interrupt", poll_every=50),
                      top="gpu")
    assert _without_backend(every_cycle) == _without_backend(raw)


def test_an_unknown_completion_is_refused_naming_the_field():
    with pytest.raises(ScenarioError, match="completion"):
        with_(SMALL, completion="msi")


def test_the_interrupt_run_gives_identical_cycles_on_every_backend(by_interrupt, simulator):
    raw, _ = by_interrupt
    again = run(with_(SMALL, name="irq", completion="interrupt", poll_every=50), simulator)
    assert _without_backend(again) == _without_backend(raw)


@pytest.mark.parametrize("completion", ["poll", "interrupt"])
def test_a_command_longer_than_the_driver_s_timeout_fails_the_run_naming_it(completion):
    # 1 us at 50 MHz: 50 cycles, less than moving a 1 KiB context (68 beats) takes.
    sc = with_(SMALL, name="timeout", completion=completion, clock_mhz=50.0,
               command_timeout_us=1)
    with pytest.raises(CommandTimeout, match=r"(INIT_GPU|LOAD_GPU_STATE)\(1, 0\)"):
        run(sc)


def test_a_timeout_of_nothing_is_refused_naming_the_field():
    with pytest.raises(ScenarioError, match="command_timeout_us"):
        with_(SMALL, command_timeout_us=0)
