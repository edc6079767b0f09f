"""Formal harnesses and the planted bugs their proofs must catch."""


def assert_counterexample(result, bug):
    """A BMC run on planted bug ``bug`` (a class) must end with a failed assertion: a trace
    from reset, not merely a run that did not pass."""
    assert not result, f"no counterexample with {bug.__name__}: {bug.__doc__}"
    assert "Assert failed" in result.log, result.log[-2000:]
