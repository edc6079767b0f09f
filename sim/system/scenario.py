"""Scenarios: a whole GPU, a hypervisor and guest VMs, as data (and loading them).

A :class:`Scenario` names the GPU (VFs, context size, memory width and latency), how the
hypervisor schedules it (time slice, mode), what each VM does (:class:`Workload`), FLRs and
the run length. It loads from TOML or JSON (docs/scenarios.md); :func:`sim.system.run.run` simulates it
on Amaranth's simulator or through cocotb (Verilator, Icarus) with the agents of
:mod:`sim.system.agents` and returns plain data that :mod:`sim.bench.report` turns into
tables, JSON and plots.
"""

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from rtl.params import IOV_FB_UNIT, MAX_VFS, GpuParams, MiB, ParamError
from rtl.common.iov_codes import csa_bytes

__all__ = ["Scenario", "Workload", "ScenarioError", "MODES", "COMPLETIONS", "EVENT_FIELDS",
           "DEFAULT", "load",
           "from_dict", "with_", "VIOLATION_KINDS"]

MODES = ("host", "auto-solid", "auto-liquid", "overlapped")
#: How the hypervisor learns that a GPU-IOV command ended: it polls EXECUTE every
#: ``poll_every`` cycles, or sets IRQ_EN and waits for the command-done interrupt.
COMPLETIONS = ("poll", "interrupt")
#: Scenario fields that are lists of (cycle after set-up, vf) events.
EVENT_FIELDS = ("flr", "hang")
VIOLATION_KINDS = ("fb_outside_slice", "pf_only_register", "other_vf_doorbell")


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the field and what to fix."""


@dataclass(frozen=True)
class Workload:
    """What one VM's driver does; ``*_every`` are mean cycles between actions (0: never)."""
    doorbell_every: int = 150
    fb_every: int = 250
    reg_every: int = 300
    misbehave: float = 0.0       #: probability that an action is a violation instead
    init_access: bool = True     #: start with REQ_GPU_INIT_ACCESS ... REL_GPU_INIT_ACCESS


@dataclass(frozen=True)
class Scenario:
    """A whole-GPU run. Fields are documented in docs/scenarios.md."""
    name: str = "default"
    num_vfs: int = 16            #: VFs the GPU is built and enumerated with
    active_vfs: int = 4          #: VMs running, on VFs 1..active_vfs
    ctx_words: int = 64          #: engine-state words per context (mem_width bits each)
    mem_width: int = 128
    mem_latency: int = 10
    mem_channels: int = 1        #: FB memory channels (1..4)
    mode: str = "host"
    time_slice: int = 1500       #: cycles each VM owns the GPU per turn
    run_cycles: int = 6000       #: cycles of guest requests, counted from the end of set-up
    drain_limit: int = 20_000    #: cycles after run_cycles to deliver every doorbell
    engine_drain: int = 4        #: cycles the engine needs to stop
    work_per_doorbell: int = 40  #: engine cycles of work each doorbell brings (a work item)
    preempt_every: int = 1       #: work cycles between preemption points (0: item's end)
    fb_slice_mib: int = 0        #: FB slice per VF (multiple of 16; 0: equal shares, <= 128)
    clock_mhz: float = 125.0     #: to turn cycles into time in the report
    poll_every: int = 8          #: cycles between the hypervisor's status polls
    completion: str = "poll"     #: "poll" (EXECUTE every poll_every) or "interrupt"
    command_timeout_us: int = 2_000_000   #: a command not done by then fails the run (GIM: 2 s)
    seed: int = 1
    workload: Workload = field(default_factory=Workload)
    per_vf: dict = field(default_factory=dict)    #: {vf: Workload} overriding ``workload``
    flr: tuple = ()              #: ((cycle after set-up, vf), ...): FLRs the hypervisor performs
    hang: tuple = ()             #: ((cycle after set-up, vf), ...): VF's next work item hangs

    # --- checks ---------------------------------------------------------------------------
    def __post_init__(self):
        def bad(name, why):
            raise ScenarioError(f"scenario {self.name!r}: {name}={getattr(self, name)!r} {why}")
        if self.mode not in MODES:
            bad("mode", f"must be one of {', '.join(MODES)}")
        if self.completion not in COMPLETIONS:
            bad("completion", f"must be one of {', '.join(COMPLETIONS)}")
        for name in ("num_vfs", "active_vfs", "ctx_words", "mem_latency", "time_slice",
                     "run_cycles", "poll_every", "command_timeout_us"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad(name, "must be a positive integer")
        if self.time_slice >= 1 << 25:
            bad("time_slice", "must fit TIME_SLICE.CYCLES (below 2**25)")
        if not 1 <= self.num_vfs <= MAX_VFS:
            bad("num_vfs", f"must be 1..{MAX_VFS}")
        if self.active_vfs > self.num_vfs:
            bad("active_vfs", f"must be at most num_vfs ({self.num_vfs})")
        if not isinstance(self.fb_slice_mib, int) or self.fb_slice_mib < 0 or \
                self.fb_slice_mib % 16:
            bad("fb_slice_mib", "must be 0 (equal shares) or a multiple of 16 "
                "(GPU-IOV counts FB in 16 MiB units)")
        if not self.clock_mhz > 0:
            bad("clock_mhz", "must be positive")
        for name in ("engine_drain", "work_per_doorbell", "drain_limit", "preempt_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                bad(name, "must be a non-negative integer")
        for vf in self.per_vf:
            if not isinstance(vf, int) or not 1 <= vf <= self.active_vfs:
                raise ScenarioError(f"scenario {self.name!r}: per_vf key {vf!r} must be a VF "
                                    f"number 1..active_vfs ({self.active_vfs})")
        for name in EVENT_FIELDS:
            for event in getattr(self, name):
                if len(event) != 2 or not 1 <= event[1] <= self.active_vfs or event[0] < 0:
                    raise ScenarioError(f"scenario {self.name!r}: {name} entry {event!r} "
                                        f"must be [cycle, vf] with vf in 1..active_vfs")
        if self.hang and self.mode != "host":
            bad("hang", "needs mode = \"host\": the hypervisor recovers a hung VF (FLR) "
                "between its own commands; the hardware scheduler stops on a hang")
        for wl in [self.workload, *self.per_vf.values()]:
            if not 0 <= wl.misbehave <= 1:
                raise ScenarioError(f"scenario {self.name!r}: misbehave={wl.misbehave} must "
                                    f"be a probability 0..1")
        try:
            params = self.params()
        except ParamError as err:
            raise ScenarioError(f"scenario {self.name!r}: {err}") from None
        need = self._fb_units(params)[3]
        if need > params.fb_size // IOV_FB_UNIT:
            bad("fb_slice_mib", f"leaves no room: the PF, the CSA and {self.num_vfs} slices "
                f"need {need * 16} MiB of {params.fb_size // MiB} MiB")
        if self.slice_mib(params) * MiB > params.vf_fb_aperture:
            bad("fb_slice_mib", f"is larger than the VF FB aperture "
                f"({params.vf_fb_aperture // MiB} MiB)")
        if self.slice_mib(params) == 0:
            bad("num_vfs", f"leaves no FB for the slices ({params.fb_size // MiB} MiB in all)")

    def params(self):
        """The GPU's build parameters (the time slice is programmed, not built in)."""
        return GpuParams(num_vfs=self.num_vfs, ctx_words=self.ctx_words,
                         mem_width=self.mem_width, mem_latency=self.mem_latency,
                         mem_channels=self.mem_channels)

    def command_timeout_cycles(self):
        """``command_timeout_us`` at ``clock_mhz``, cycles (at least one)."""
        return max(1, round(self.command_timeout_us * self.clock_mhz))

    def workload_of(self, vf):
        return self.per_vf.get(vf, self.workload)

    def _fb_units(self, params):
        """(PF units, CSA units, slice units, total units) of the FB layout GIM uses: the
        PF's FB from 0, the context save area, then the VF slices (equal shares by
        default, at most 128 MiB each)."""
        pf = params.pf_fb_aperture // IOV_FB_UNIT
        csa = -(-csa_bytes(params) // IOV_FB_UNIT)
        if self.fb_slice_mib:
            slice_units = self.fb_slice_mib // 16
        else:
            slice_units = min(8, (params.fb_size // IOV_FB_UNIT - pf - csa) // self.num_vfs)
        return pf, csa, slice_units, pf + csa + self.num_vfs * slice_units

    def slice_mib(self, params=None):
        """Each VF's FB slice, MiB."""
        return self._fb_units(params or self.params())[2] * 16

    def to_dict(self):
        out = asdict(self)
        out["per_vf"] = {str(k): asdict(v) for k, v in self.per_vf.items()}
        for name in EVENT_FIELDS:
            out[name] = [list(e) for e in getattr(self, name)]
        return out


DEFAULT = Scenario(per_vf={3: Workload(misbehave=0.25)})


def from_dict(raw, name=None):
    """A Scenario from plain data (TOML/JSON); unknown keys are errors."""
    raw = dict(raw)
    known = {f.name for f in fields(Scenario)}
    wl_known = {f.name for f in fields(Workload)}
    label = raw.get("name", name or "scenario")
    for key in raw:
        if key not in known:
            raise ScenarioError(f"scenario {label!r}: unknown field {key!r} (fields: "
                                f"{', '.join(sorted(known))})")

    def workload(data, where, base=Workload()):
        if not isinstance(data, dict):
            raise ScenarioError(f"scenario {label!r}: {where} must be a table of workload "
                                f"fields")
        for key in data:
            if key not in wl_known:
                raise ScenarioError(f"scenario {label!r}: unknown workload field {key!r} in "
                                    f"{where} (fields: {', '.join(sorted(wl_known))})")
        return replace(base, **data)

    if "workload" in raw:
        raw["workload"] = workload(raw["workload"], "workload")
    if "per_vf" in raw:
        # A VF's entry changes only the fields it names of the common workload.
        common = raw.get("workload", Workload())
        try:
            raw["per_vf"] = {int(k): workload(v, f"per_vf.{k}", common)
                             for k, v in raw["per_vf"].items()}
        except ValueError:
            raise ScenarioError(f"scenario {label!r}: per_vf keys must be VF numbers") from None
    for key in EVENT_FIELDS:
        if key in raw:
            raw[key] = tuple(tuple(e) for e in raw[key])
    if name and "name" not in raw:
        raw["name"] = name
    try:
        return Scenario(**raw)
    except TypeError as err:
        raise ScenarioError(f"scenario {label!r}: {err}") from None


def load(path):
    """A Scenario from a ``.toml`` or ``.json`` file."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"scenario file {path} not found")
    try:
        if path.suffix == ".toml":
            raw = tomllib.loads(path.read_text())
        elif path.suffix == ".json":
            raw = json.loads(path.read_text())
        else:
            raise ScenarioError(f"scenario file {path}: use .toml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ScenarioError(f"scenario file {path}: {err}") from None
    return from_dict(raw, name=path.stem)


def with_(sc, **changes):
    """A copy of ``sc`` with fields changed (checked again)."""
    return replace(sc, **changes)
