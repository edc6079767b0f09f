"""docs/generated is what the tables generate today (regenerate with `sriov-gpu docs`)."""

from sim.tooling.docgen import generated_docs
from sim.tooling.toolchain import REPO_ROOT


def test_generated_docs_are_up_to_date():
    for name, text in generated_docs().items():
        path = REPO_ROOT / "docs" / "generated" / name
        assert path.exists(), f"{path} is missing: run `sriov-gpu docs`"
        assert path.read_text() == text, f"{path} is stale: run `sriov-gpu docs`"
