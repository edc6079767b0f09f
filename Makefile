# The two README commands: `make run` (the main job) and `make test` (every test).
# Both create .venv and install the pinned dependencies on first use; nothing else is needed
# but Python 3.11+, g++, make and perl. Icarus (iverilog) is used when installed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Tests run on both cores; set JOBS=1 to run serially.
JOBS   ?= auto

.PHONY: run test test-slow test-all synth docs verilog bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job: the default scenario on the whole GPU, and its world-switch timing report
# (a table here; JSON and PNG plots in build/report).
run: $(STAMP)
	$(BIN)/sriov-gpu report

# Every test except the slow ones (place and route, long soaks).
test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -m "not slow" --durations=15 $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -m slow $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) $(PYTEST_ARGS)

# Synthesis and place-and-route at 16 and 64 VFs (slow: minutes).
synth: $(STAMP)
	$(BIN)/sriov-gpu synth --vfs 16
	$(BIN)/sriov-gpu synth --vfs 64

docs: $(STAMP)
	$(BIN)/sriov-gpu docs

# Verilog of every block (the whole GPU is `gpu`) into build/verilog, and a summary.
verilog: $(STAMP)
	$(BIN)/sriov-gpu summary

# Benchmarks (numbers, not tests): simulation speed, world-switch cost, doorbell fairness.
bench: $(STAMP)
	$(BIN)/sriov-gpu bench-sim
	$(BIN)/sriov-gpu bench-switch
	$(BIN)/sriov-gpu bench-doorbell

clean:
	rm -rf build
