"""The one parameter object of the model.

Every block, the simulation layer, the docs generator and the CLI take a :class:`GpuParams`.
It is frozen and validated on construction: a bad value raises :class:`ParamError`, whose message
names the parameter, the value given and what is allowed, in one line.
"""

from dataclasses import dataclass, fields, replace

__all__ = ["GpuParams", "ParamError", "KiB", "MiB", "GiB", "TiB", "MAX_VFS", "FN_WIDTH",
           "IOV_FB_UNIT", "MAX_MEM_CHANNELS", "MEM_INTERLEAVE", "MAX_TIMER_CYCLES",
           "TIMER_WIDTH", "MIN_BAR_SIZE", "MAX_BAR_SIZE", "size_text"]

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

#: The design note's next generation asks for 64 VFs.
MAX_VFS = 64

#: Width of a function number (0 = PF, 1..MAX_VFS = VFs) in every register field and port.
FN_WIDTH = MAX_VFS.bit_length()

#: The GPU-IOV capability's FB unit: TOTAL_FB_*, VF FB offsets and sizes count 16 MiB (as GIM).
IOV_FB_UNIT = 16 * MiB

#: Longest programmable wait, cycles (drain timeout, time slice); counters for it take
#: TIMER_WIDTH bits so that the value 1 << 24 itself fits.
MAX_TIMER_CYCLES = 1 << 24
TIMER_WIDTH = MAX_TIMER_CYCLES.bit_length()

#: FB memory channels the model builds at most (``mem_channels``).
MAX_MEM_CHANNELS = 4

#: Host FB accesses and the scrubber's fill go to channel (address / MEM_INTERLEAVE) mod
#: ``mem_channels``: 4 KiB, a page, so that one page's accesses stay on one channel.
MEM_INTERLEAVE = 4 * KiB

#: BAR sizes the model builds: one 4 KiB page (the smallest system page SR-IOV allows)
#: up to 1 TiB, which keeps a VF BAR window of MAX_VFS apertures far inside 64 bits.
MIN_BAR_SIZE = 4 * KiB
MAX_BAR_SIZE = TiB


class ParamError(ValueError):
    """A model parameter is out of its allowed range. The message is one line naming it."""


def _is_pow2(value):
    return value > 0 and value & (value - 1) == 0


def size_text(value):
    """Human form of a byte count, for error messages and summaries."""
    for unit, name in ((TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if value >= unit and value % unit == 0:
            return f"{value // unit} {name}"
    return f"{value} B"


@dataclass(frozen=True)
class GpuParams:
    """Parameters of the whole SR-IOV GPU model.

    Attributes
    ----------
    num_vfs : int
        Number of Virtual Functions, 1..64 (default 16, the design note's generation).
        Function 0 is the PF; VF ``n`` is function ``n``.
    fb_size : int
        Framebuffer size in bytes; a multiple of ``fb_granule`` (default 8 GiB).
    fb_granule : int
        Allocation unit of FB slices in bytes, a power of two (default 16 MiB, the GPU-IOV unit).
    vf_fb_aperture : int
        Size of a VF's FB BAR in bytes, a power of two from ``fb_granule`` to 1 TiB (default
        256 MiB, as GIM). The BAR is 64-bit: 4 GiB and more put its base in the upper dword.
    iov_fb_unit : int
        The unit of the GPU-IOV capability's FB fields (VFn_FB_SIZE / OFFSET, CNTXT,
        TOTAL_FB_*): 16 MiB, as GIM (the default). A power of two from ``fb_granule`` up;
        smaller units only make small test configurations (a whole GPU with a few KiB of FB).
    counter_width : int
        Width of the per-function violation counters, 8..32 bits; they saturate.
    tag_width : int
        Width of the opaque tag an FB access carries through the partition unit, 0..64 bits.
    vendor_id, device_id, vf_device_id, subsystem_id, class_code : int
        PCI identity (defaults: AMD FirePro S7150, the GIM driver's device, with VF device ID
        0x692F; class 0x030000, display controller).
    first_vf_offset, vf_stride : int
        SR-IOV routing: VF n's Routing ID = PF RID + first_vf_offset + (n - 1) * vf_stride
        (defaults 1 and 1: VF n is function n). The last VF must stay within 255 (ARI).
    pf_fb_aperture : int
        The PF's FB BAR size (64-bit), a power of two from 4 KiB to 1 TiB (default 256 MiB).
    doorbell_bar_size : int
        Doorbell BAR size of every function, a power of two, at least 4 KiB (default 4 KiB).
    pf_mmio_size, vf_mmio_size : int
        Register BAR sizes, powers of two, at least 4 KiB (defaults 256 KiB and 64 KiB). These
        BARs are 32-bit: at most 2 GiB.
    shared_regs : int
        Owner-shared engine state registers (the one physical set all VFs share), 1..256.
    ctx_words : int
        Engine-state memory of the modeled GPU engine, in ``mem_width``-bit words, 1..2**20
        (default 64: 1 KiB at 128 bits). Saved and restored with the shared registers.
    mem_width : int
        FB memory port data width in bits: 64, 128, 256 or 512 (default 128).
    mem_latency : int
        Read latency of the FB memory, cycles, 1..1000 (default 10): used by the memory model
        in sim/ and the analytic cost model; the RTL works with any latency.
    mem_outstanding : int
        Reads the save/restore engine keeps in flight, 1..1024 (default 32).
    mem_channels : int
        FB memory channels, 1..4 (default 1): independent ports to the one FB, each taking
        a request a cycle with its own answers (rtl/memory/fb_port.py says who uses which:
        the two context movers of an overlapped switch use different channels; host FB
        accesses and the scrubber go by address, :data:`MEM_INTERLEAVE` bytes a channel).
    doorbells_per_fn : int
        Doorbells of each function (dwords at the start of its doorbell BAR), 1..64 (default 8).
    doorbell_ports : int
        Doorbell writes the arbiter accepts per cycle (ingress ports), 1..4 (default 1).
    doorbell_value_width : int
        Bits of a doorbell value (a ring write pointer), 8..32 (default 32).
    drain_timeout : int
        Reset value of the world switch's drain timeout: cycles IDLE_GPU waits for the engine
        before it reports GFX_HANG, 1..2**24 (default 4096).
    time_slice : int
        Reset value of every function's time slice in auto mode, cycles, 1..2**24
        (default 10000).
    """

    num_vfs: int = 16
    fb_size: int = 8 * GiB
    fb_granule: int = 16 * MiB
    vf_fb_aperture: int = 256 * MiB
    iov_fb_unit: int = IOV_FB_UNIT
    counter_width: int = 16
    tag_width: int = 8
    vendor_id: int = 0x1002
    device_id: int = 0x6929
    vf_device_id: int = 0x692F
    subsystem_id: int = 0x0335
    class_code: int = 0x030000
    first_vf_offset: int = 1
    vf_stride: int = 1
    pf_fb_aperture: int = 256 * MiB
    doorbell_bar_size: int = 4 * KiB
    pf_mmio_size: int = 256 * KiB
    vf_mmio_size: int = 64 * KiB
    shared_regs: int = 16
    ctx_words: int = 64
    mem_width: int = 128
    mem_latency: int = 10
    mem_outstanding: int = 32
    mem_channels: int = 1
    doorbells_per_fn: int = 8
    doorbell_ports: int = 1
    doorbell_value_width: int = 32
    drain_timeout: int = 4096
    time_slice: int = 10000

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ParamError(f"{f.name}={value!r} must be an integer")
        self._check_range("num_vfs", 1, MAX_VFS)
        if not _is_pow2(self.fb_granule) or not 4 * KiB <= self.fb_granule <= 4 * GiB:
            raise ParamError(f"fb_granule={self.fb_granule} must be a power of two "
                             f"from 4 KiB to 4 GiB")
        if self.fb_size % self.fb_granule or not self.fb_size:
            raise ParamError(f"fb_size={self.fb_size} must be a non-zero multiple of "
                             f"fb_granule ({size_text(self.fb_granule)})")
        if self.fb_size > 1 << 48:
            raise ParamError(f"fb_size={self.fb_size} is too large: at most 256 TiB")
        if self.fb_granules > 0xFFFF:
            raise ParamError(f"fb_size={self.fb_size} is {self.fb_granules} granules: at most "
                             f"65535 fit the 16-bit GPU-IOV size fields; raise fb_granule")
        if not _is_pow2(self.vf_fb_aperture) or \
                not self.fb_granule <= self.vf_fb_aperture <= MAX_BAR_SIZE:
            raise ParamError(f"vf_fb_aperture={self.vf_fb_aperture} must be a power of two "
                             f"from fb_granule ({size_text(self.fb_granule)}) to "
                             f"{size_text(MAX_BAR_SIZE)}")
        if not _is_pow2(self.iov_fb_unit) or self.iov_fb_unit < self.fb_granule:
            raise ParamError(f"iov_fb_unit={self.iov_fb_unit} must be a power of two of at "
                             f"least fb_granule ({size_text(self.fb_granule)}): a capability "
                             f"unit must be whole granules")
        if self.fb_size // self.iov_fb_unit > 0xFFFF:
            raise ParamError(f"iov_fb_unit={self.iov_fb_unit} makes fb_size "
                             f"{self.fb_size // self.iov_fb_unit} units: at most 65535 fit "
                             f"TOTAL_FB_AVAILABLE (16 bits)")
        self._check_range("counter_width", 8, 32)
        self._check_range("tag_width", 0, 64)
        for name in ("vendor_id", "device_id", "vf_device_id", "subsystem_id"):
            self._check_range(name, 0, 0xFFFF)
        self._check_range("class_code", 0, 0xFFFFFF)
        self._check_range("first_vf_offset", 1, 255)
        if self.vf_stride not in (1, 2, 4, 8):
            raise ParamError(f"vf_stride={self.vf_stride} must be 1, 2, 4 or 8")
        last = self.first_vf_offset + (self.num_vfs - 1) * self.vf_stride
        if last > 255:
            raise ParamError(f"first_vf_offset={self.first_vf_offset} with vf_stride="
                             f"{self.vf_stride} puts VF {self.num_vfs} at function {last}: "
                             f"at most 255")
        self._check_range("shared_regs", 1, 256)
        self._check_range("ctx_words", 1, 1 << 20)
        if self.mem_width not in (64, 128, 256, 512):
            raise ParamError(f"mem_width={self.mem_width} must be 64, 128, 256 or 512")
        self._check_range("mem_latency", 1, 1000)
        self._check_range("mem_outstanding", 1, 1024)
        self._check_range("mem_channels", 1, MAX_MEM_CHANNELS)
        self._check_range("doorbells_per_fn", 1, 64)
        self._check_range("doorbell_ports", 1, 4)
        self._check_range("doorbell_value_width", 8, 32)
        self._check_range("drain_timeout", 1, MAX_TIMER_CYCLES)
        self._check_range("time_slice", 1, MAX_TIMER_CYCLES)
        if self.doorbells_per_fn * 4 > self.doorbell_bar_size:
            raise ParamError(f"doorbells_per_fn={self.doorbells_per_fn} does not fit the "
                             f"{self.doorbell_bar_size}-byte doorbell BAR")
        if self.pf_mmio_size < 32 * KiB or self.vf_mmio_size < 4 * KiB:
            raise ParamError(f"pf_mmio_size={self.pf_mmio_size} must be at least 32 KiB "
                             f"(the PF-only registers start at byte 0x4000)")
        for name in ("pf_fb_aperture", "doorbell_bar_size", "pf_mmio_size", "vf_mmio_size"):
            value = getattr(self, name)
            if not _is_pow2(value) or not MIN_BAR_SIZE <= value <= MAX_BAR_SIZE:
                raise ParamError(f"{name}={value} must be a power of two from "
                                 f"{size_text(MIN_BAR_SIZE)} to {size_text(MAX_BAR_SIZE)}")
        self._check_bars()

    def _check_bars(self):
        # What a BAR can hold (32- or 64-bit, the type bits) is the config space's to say;
        # imported here, as config_space itself builds on this module.
        from rtl.pcie.config_space import bar_specs
        pf, vf = bar_specs(self)
        for bar in pf + vf:
            problem = bar.problem()
            if problem:
                raise ParamError(f"{bar.param}={bar.size} ({size_text(bar.size)}) {problem}")

    def _check_range(self, name, low, high):
        value = getattr(self, name)
        if not low <= value <= high:
            raise ParamError(f"{name}={value} is out of range: allowed {low}..{high}")

    # Derived quantities. Blocks use these rather than recomputing them.
    @property
    def num_fns(self):
        """PF plus VFs."""
        return self.num_vfs + 1

    @property
    def fn_width(self):
        """Bits of a function number (0 = PF .. num_vfs)."""
        return self.num_vfs.bit_length()

    @property
    def granule_bits(self):
        return self.fb_granule.bit_length() - 1

    @property
    def fb_granules(self):
        return self.fb_size // self.fb_granule

    @property
    def granule_width(self):
        """Bits of a granule count that can hold ``fb_granules`` itself (a limit)."""
        return self.fb_granules.bit_length()

    @property
    def iov_unit_shift(self):
        """log2 of granules per GPU-IOV capability FB unit."""
        return (self.iov_fb_unit // self.fb_granule).bit_length() - 1

    @property
    def layout_width(self):
        """Bits of a programmed region's base and size in granules: the capability's 16-bit
        fields in iov_fb_unit, plus one (size is stored - 1), never cut to FB's width."""
        return max(self.granule_width, 17 + self.iov_unit_shift)

    @property
    def fb_addr_width(self):
        """Bits of a byte address into FB."""
        return (self.fb_size - 1).bit_length()

    @property
    def shared_beats(self):
        """Memory beats holding the owner-shared registers (32 bits each, packed)."""
        return -(-self.shared_regs * 32 // self.mem_width)

    @property
    def ctx_beats(self):
        """Memory beats of one function's whole context: shared registers, engine state."""
        return self.shared_beats + self.ctx_words

    @property
    def ctx_bytes(self):
        return self.ctx_beats * self.mem_width // 8

    def with_(self, **changes):
        """A copy with some parameters changed (validated again)."""
        return replace(self, **changes)

    def describe(self):
        """One line per parameter, for summaries."""
        rows = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_size", "_granule", "_aperture", "_unit")):
                shown = size_text(value)
            elif f.name.endswith(("_id", "_code")):
                shown = f"{value:#06x}"
            else:
                shown = value
            rows.append((f.name, shown))
        return rows
