"""PCIe configuration space of the GPU: the PF's and every VF's, with SR-IOV and GPU-IOV.

The layouts are declarative tables (:func:`pf_config_map`, :func:`vf_config_map`) from which
the decoder hardware, the docs and the enumeration driver's offsets all come. Byte offsets of
docs/sources.md#gpu-iov-capability are dword offsets here (byte offset / 4); fields keep
their bit positions within the dword.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.common.interfaces import REG_DATA_WIDTH, RegBusSignature, Status, ValidSignature
from rtl.params import size_text
from rtl.common.regmap import Access, Field, Register, RegisterFile, RegisterMap
from rtl.common.iov_codes import IovStatus, iov_command_layout

__all__ = ["ConfigSpace", "pf_config_map", "vf_config_map", "BarSpec", "bar_specs", "BAR_INDICES",
           "FB_BAR", "DOORBELL_BAR", "REG_BAR",
           "CAP_PCIE", "EXT_ARI", "EXT_SRIOV", "EXT_VSEC", "GPU_IOV_VSEC_ID"]

# Byte offsets of the capability structures (the chain: header -> PCIe; 0x100 ARI ->
# 0x110 SR-IOV -> 0x200 GPU-IOV VSEC).
CAP_PCIE = 0x40
EXT_ARI = 0x100
EXT_SRIOV = 0x110
EXT_VSEC = 0x200
GPU_IOV_VSEC_ID = 0x02

#: The memory BARs, by what they map (as an AMD GPU: FB aperture, doorbells, registers).
FB_BAR, DOORBELL_BAR, REG_BAR = 0, 2, 5
#: The memory BARs, in the order of the ``pf_bars`` / ``vf_bars`` ports and of routing results.
BAR_INDICES = (FB_BAR, DOORBELL_BAR, REG_BAR)

#: Page sizes the SR-IOV capability supports: 4K, 8K, 64K, 256K, 1M, 4M (bit n = 4 KiB << n).
SUPPORTED_PAGE_SIZES = 0x553

R, RO, RW, RC = Register, Access.RO, Access.RW, Access.RC


class BarSpec:
    """One memory BAR: what it maps, how large, and how its address splits over dwords.

    Parameters
    ----------
    index : int
        BAR number (0..5) of its low dword; a 64-bit BAR also takes ``index + 1``.
    param : str
        The :class:`~rtl.params.GpuParams` field that sizes it, named in errors.
    size : int
        Size in bytes, a power of two.
    is64, prefetch : bool
        Memory BAR type: 64-bit (two dwords) and prefetchable.
    name : str
        What the BAR maps, for the docs.
    """

    #: The low dword's bits 3:0 are the memory BAR type (PCI): no address bit below them.
    TYPE_BITS = 4
    DWORD = REG_DATA_WIDTH

    def __init__(self, index, param, size, is64, prefetch, name):
        self.index, self.param, self.size, self.is64, self.prefetch, self.name = \
            index, param, size, is64, prefetch, name

    @property
    def type_bits(self):
        return (0b10 << 1 if self.is64 else 0) | (int(self.prefetch) << 3)

    @property
    def address_width(self):
        """Bits of a base address: 32 or 64."""
        return self.DWORD * (2 if self.is64 else 1)

    @property
    def size_bits(self):
        """log2(size): the base address's bits from here up are writable, below read 0."""
        return self.size.bit_length() - 1

    @property
    def low_address(self):
        """Whether the low dword holds address bits (RW): only below 4 GiB."""
        return max(self.size_bits, self.TYPE_BITS) < self.DWORD

    def problem(self):
        """Why this BAR cannot be built (the end of a sentence), or None.

        Sizing reads back ~(size - 1) over the BAR's address bits, type bits excluded: the
        size must be a power of two above the type bits, and leave at least one writable
        address bit (a 32-bit BAR of at most 2 GiB, a 64-bit one of at most 2**63 bytes).
        """
        smallest, largest = 1 << self.TYPE_BITS, 1 << (self.address_width - 1)
        where = f"BAR{self.index} ({self.name}) is {self.address_width}-bit"
        if self.size <= 0 or self.size & (self.size - 1):
            return "must be a power of two"
        if self.size < smallest:
            return f"is too small: {where}, its type bits take {size_text(smallest)}"
        if self.size > largest:
            hint = "" if self.is64 else "; a 64-bit BAR holds more"
            return f"is too large: {where}, at most {size_text(largest)}{hint}"
        return None

    def fields(self):
        """The low dword: type bits (RO) and the address bits 31 down to log2(size) (RW).

        A BAR of 4 GiB or more has no writable bit here: its low address bits read 0.
        """
        lsb = max(self.size_bits, self.TYPE_BITS)
        addr = (Field("ADDR", lsb, self.DWORD - lsb, RW,
                      f"base address bits {self.DWORD - 1}:{lsb}"),) if self.low_address else ()
        return (Field("TYPE", 0, self.TYPE_BITS, RO, "memory BAR type",
                      reset=self.type_bits),) + addr

    def high_fields(self):
        """The upper dword of a 64-bit BAR: base address bits 63 down to max(32, log2(size))."""
        lsb = max(self.size_bits - self.DWORD, 0)
        top = 2 * self.DWORD - 1
        return (Field("ADDR_HI", lsb, self.DWORD - lsb, RW,
                      f"base address bits {top}:{self.DWORD + lsb}"),)

    def base(self, low, high=None):
        """The base address (``address_width`` bits) from the ``ADDR`` and ``ADDR_HI``
        field values (``None`` where the BAR has no such field); bits below the size are 0."""
        parts = [Const(0, max(self.size_bits, self.TYPE_BITS))]
        parts += [low] if low is not None else []
        parts += [high] if self.is64 else []
        return Cat(*parts)


def bar_specs(params):
    """(PF BARs, per-VF BARs). FB, doorbells, registers: the layout GIM's driver expects."""
    def bar(index, param, is64, name):
        # Every 64-bit BAR here is prefetchable memory, the 32-bit register BAR is not.
        return BarSpec(index, param, getattr(params, param), is64, is64, name)
    pf = (bar(FB_BAR, "pf_fb_aperture", True, "FB aperture"),
          bar(DOORBELL_BAR, "doorbell_bar_size", True, "doorbells"),
          bar(REG_BAR, "pf_mmio_size", False, "registers"))
    vf = (bar(FB_BAR, "vf_fb_aperture", True, "FB aperture"),
          bar(DOORBELL_BAR, "doorbell_bar_size", True, "doorbells"),
          bar(REG_BAR, "vf_mmio_size", False, "registers"))
    return pf, vf


def _bar_registers(prefix, first_dword, bars, doc):
    regs = []
    for bar in bars:
        regs.append(R(f"{prefix}{bar.index}", first_dword + bar.index, bar.fields(),
                      f"{doc} BAR{bar.index}: {bar.name}, {bar.size:#x} bytes"
                      + (", 64-bit" if bar.is64 else "") + (", prefetchable" if bar.prefetch else "")))
        if bar.is64:
            regs.append(R(f"{prefix}{bar.index + 1}", first_dword + bar.index + 1,
                          bar.high_fields(),
                          f"{doc} BAR{bar.index + 1}: upper half of BAR{bar.index}"))
    return regs


def _header_and_pcie(params, *, vendor, device, cmd_fields, bars, vf):
    """Type-0 header and PCI Express capability, common to the PF and VFs."""
    d = CAP_PCIE // 4
    regs = [
        R("ID", 0x00, (Field("VENDOR_ID", 0, 16, RO, "", reset=vendor),
                       Field("DEVICE_ID", 16, 16, RO, "", reset=device)),
          "VF: all ones; the VF Device ID is in the PF's SR-IOV capability" if vf else
          "Vendor and device"),
        R("CMD_STATUS", 0x01, cmd_fields + (
            Field("CAP_LIST", 20, 1, RO, "a capability list exists", reset=1),),
          "Command and Status"),
        R("CLASS", 0x02, (Field("REVISION", 0, 8, RO, ""),
                          Field("CLASS_CODE", 8, 24, RO, "display controller", reset=params.class_code)),
          "Revision and class code"),
        R("HEADER", 0x03, (Field("CACHE_LINE", 0, 8, RO if vf else RW, ""),
                           Field("HEADER_TYPE", 16, 8, RO, "type 0, single function")),
          "Cache line size and header type"),
        R("SUBSYSTEM", 0x0B, (Field("SUBSYS_VENDOR", 0, 16, RO, "", reset=params.vendor_id),
                              Field("SUBSYS_ID", 16, 16, RO, "", reset=params.subsystem_id)),
          "Subsystem"),
        R("CAP_PTR", 0x0D, (Field("PTR", 0, 8, RO, "first capability", reset=CAP_PCIE),),
          "Capabilities pointer"),
        R("INTERRUPT", 0x0F, (Field("LINE", 0, 8, RO if vf else RW, ""),
                              Field("PIN", 8, 8, RO, "VFs use no INTx" if vf else "INTA",
                                    reset=0 if vf else 1)),
          "Interrupt line and pin"),
        R("PCIE_CAP", d, (Field("ID", 0, 8, RO, "PCI Express", reset=0x10),
                          Field("NEXT", 8, 8, RO, "end of list"),
                          Field("VERSION", 16, 4, RO, "", reset=2),
                          Field("PORT_TYPE", 20, 4, RO, "PCI Express endpoint")),
          "PCI Express capability"),
        R("DEV_CAP", d + 1, (Field("MAX_PAYLOAD", 0, 3, RO, "256 bytes", reset=1),
                             Field("FLR", 28, 1, RO, "function-level reset capable", reset=1)),
          "Device capabilities"),
        R("DEV_CTL", d + 2, (Field("CTL", 0, 15, RO if vf else RW, "device control"),
                             Field("INITIATE_FLR", 15, 1, RC, "write 1: function-level reset; reads 0")),
          "Device control and status"),
        R("LINK_CAP", d + 3, (Field("SPEED", 0, 4, RO, "2.5 GT/s", reset=1),
                              Field("WIDTH", 4, 6, RO, "x1", reset=1)),
          "Link capabilities"),
        R("LINK_STATUS", d + 4, (Field("SPEED", 16, 4, RO, "", reset=1),
                                 Field("WIDTH", 20, 6, RO, "", reset=1)),
          "Link control and status"),
        R("ARI_HDR", EXT_ARI // 4, (Field("ID", 0, 16, RO, "ARI", reset=0x000E),
                                    Field("VERSION", 16, 4, RO, "", reset=1),
                                    Field("NEXT", 20, 12, RO, "", reset=0 if vf else EXT_SRIOV)),
          "ARI extended capability"),
        R("ARI_CAP", EXT_ARI // 4 + 1, (Field("NEXT_FN", 8, 8, RO, "no further function in this chain"),),
          "ARI capability and control"),
    ]
    return regs + _bar_registers("BAR", 0x04, bars, "VF" if vf else "PF")


def pf_config_map(params):
    """The PF's configuration space (dword offsets, 4 KiB)."""
    pf_bars, vf_bars = bar_specs(params)
    s, v = EXT_SRIOV // 4, EXT_VSEC // 4
    cmd = (Field("MEM_EN", 1, 1, RW, "memory space enable"),
           Field("BUS_MASTER", 2, 1, RW, ""),
           Field("INTX_DISABLE", 10, 1, RW, ""))
    regs = _header_and_pcie(params, vendor=params.vendor_id, device=params.device_id,
                            cmd_fields=cmd, bars=pf_bars, vf=False)
    vsec_len = 0x2C + 4 * params.num_vfs
    unit = size_text(params.iov_fb_unit)
    regs += [
        R("SRIOV_HDR", s, (Field("ID", 0, 16, RO, "SR-IOV", reset=0x0010),
                           Field("VERSION", 16, 4, RO, "", reset=1),
                           Field("NEXT", 20, 12, RO, "", reset=EXT_VSEC)),
          "SR-IOV extended capability"),
        R("SRIOV_CAP", s + 1, (Field("MIGRATION", 0, 1, RO, "VF migration: not capable"),),
          "SR-IOV capabilities"),
        R("SRIOV_CTRL", s + 2, (Field("VF_ENABLE", 0, 1, RW, "VFs exist"),
                                Field("VF_MSE", 3, 1, RW, "VF memory space enable"),
                                Field("ARI_HIERARCHY", 4, 1, RW, "ARI capable hierarchy")),
          "SR-IOV control and status"),
        R("SRIOV_VFS", s + 3, (Field("INITIAL_VFS", 0, 16, RO, "", reset=params.num_vfs),
                               Field("TOTAL_VFS", 16, 16, RO, "", reset=params.num_vfs)),
          "InitialVFs and TotalVFs"),
        R("SRIOV_NUM_VFS", s + 4, (Field("NUM_VFS", 0, 16, RC,
                                         "writable while VF_ENABLE = 0; above TotalVFs refused"),),
          "NumVFs and Function Dependency Link"),
        R("SRIOV_ROUTING", s + 5, (Field("FIRST_VF_OFFSET", 0, 16, RO, "", reset=params.first_vf_offset),
                                   Field("VF_STRIDE", 16, 16, RO, "", reset=params.vf_stride)),
          "First VF Offset and VF Stride"),
        R("SRIOV_DEVICE", s + 6, (Field("VF_DEVICE_ID", 16, 16, RO, "", reset=params.vf_device_id),),
          "VF Device ID"),
        R("SRIOV_PAGE_SIZES", s + 7, (Field("SUPPORTED", 0, 32, RO, "", reset=SUPPORTED_PAGE_SIZES),),
          "Supported page sizes (bit n = 4 KiB << n)"),
        R("SRIOV_SYSTEM_PAGE", s + 8, (Field("SIZE", 0, 32, RC,
                                             "one supported bit; other writes refused", reset=1),),
          "System page size"),
    ]
    regs += _bar_registers("VF_BAR", s + 9, vf_bars, "per-VF")
    regs += [
        R("VSEC_HDR", v, (Field("ID", 0, 16, RO, "vendor-specific", reset=0x000B),
                          Field("VERSION", 16, 4, RO, "", reset=1),
                          Field("NEXT", 20, 12, RO, "end of chain")),
          "GPU-IOV vendor-specific extended capability"),
        R("VSEC_ID", v + 1, (Field("VSEC_ID", 0, 16, RO, "GPU-IOV", reset=GPU_IOV_VSEC_ID),
                             Field("REV", 16, 4, RO, "", reset=1),
                             Field("LENGTH", 20, 12, RO, "bytes", reset=vsec_len)),
          "VSEC header"),
        R("GPUIOV_CMD", v + 3, (Field("COMMAND", 0, 4, RW, "IDLE_GPU 1 .. LOAD_RLCV_STATE 9"),
                                Field("EXECUTE", 4, 1, RC, "write 1: run COMMAND, FCN_ID, "
                                      "NXT_FCN_ID as the register holds them after the write; "
                                      "clears when done"),
                                Field("IRQ_EN", 5, 1, RW, "interrupt (irq.cmd_done) when "
                                      "the command ends"),
                                Field("FCN_ID", 8, 8, RW, "PF 0x00, VF x 0x80 | x"),
                                Field("NXT_FCN_ID", 16, 8, RW, "for CONTEXT_SWITCH")),
          "CMD_CONTROL, FCN_ID, NXT_FCN_ID; read-only while EXECUTE is 1 (writes refused, "
          "counted by the world switch): it shows the command that runs"),
        R("GPUIOV_STATUS", v + 4, (Field("CMD_STATUS", 0, 8, RC, "COMMAND_DONE 0x00, IDLING 0x11, ..."),),
          "CMD_STATUS"),
        R("GPUIOV_RESET", v + 5, (Field("RESET_CONTROL", 0, 8, RW, ""),), "RESET_CONTROL"),
        R("GPUIOV_RESET_NOTE", v + 6, (Field("VALUE", 0, 32, RW, ""),), "RESET_NOTIFICATION"),
        R("GPUIOV_VM_INIT", v + 7, (Field("VALUE", 0, 32, RW, ""),), "VM_INIT_STATUS"),
        R("GPUIOV_CNTXT", v + 8, (Field("SIZE", 0, 7, RW, f"context save area size, {unit} "
                                        "units (0: none)"),
                                  Field("LOC", 7, 1, RW, "0 FB, 1 system memory (not modelled: "
                                        "no FB CSA)"),
                                  Field("OFFSET", 10, 22, RW, f"context save area offset, {unit} "
                                        "units")),
          "CNTXT; read-only while a context is valid or a command runs"),
        R("GPUIOV_FB", v + 9, (Field("TOTAL_FB_AVAILABLE", 0, 16, RO, f"{unit} units",
                                     reset=params.fb_size // params.iov_fb_unit),
                               Field("TOTAL_FB_CONSUMED", 16, 16, RO, f"{unit} units of "
                                     "active VF slices")),
          "TOTAL_FB_AVAILABLE, TOTAL_FB_CONSUMED"),
        R("GPUIOV_OFFSETS", v + 10, (Field("AUTO_SCH_OFFSET", 16, 8, RO, ""),
                                     Field("DISP_OFFSET", 24, 8, RO, "")),
          "AUTO_SCH_OFFSET, DISP_OFFSET"),
        R("VF_FB", v + 11, (Field("SIZE", 0, 16, RW, f"{unit} units, stored as size - 1"),
                            Field("OFFSET", 16, 16, RW, f"{unit} units")),
          "VFn_FB_SIZE and VFn_FB_OFFSET, n = 0 for the first VF; both 0 (reset): no slice",
          count=params.num_vfs),
    ]
    return RegisterMap("pf_config", 10, regs)


def vf_config_map(params):
    """Every VF's configuration space: one table; the few writable bits are kept per VF."""
    cmd = (Field("BUS_MASTER", 2, 1, RC, "kept per VF"),
           Field("INTX_DISABLE", 10, 1, RO, "VFs have no INTx", reset=1))
    # A VF's own BARs read 0: its apertures are the PF's SR-IOV VF BARs.
    regs = _header_and_pcie(params, vendor=0xFFFF, device=0xFFFF, cmd_fields=cmd,
                            bars=(), vf=True)
    return RegisterMap("vf_config", 10, regs)


def vf_fb_layout():
    """VFn_FB_SIZE and VFn_FB_OFFSET as programmed (capability units; size stored - 1)."""
    return data.StructLayout({"size": 16, "offset": 16})


def cntxt_layout():
    """CNTXT as programmed: the context save area (capability units)."""
    return data.StructLayout({"size": 7, "loc": 1, "offset": 22})


class ConfigSpace(wiring.Component):
    """Configuration requests to the PF and to every VF.

    Every write takes effect field by field, on the bytes it enables (partial writes merge
    with the register's value, :meth:`~rtl.common.regmap.RegisterFile.write_view`).

    ``cfg.req.payload.fn`` names the *target* function (0 = PF, n = VF n), as the routing of
    a configuration request's Routing ID gives it. The PF answers always; VF n answers only
    while VF_ENABLE is set and n <= NumVFs; anything else answers UR (reads 0, writes dropped).
    One request per cycle; the answer comes one cycle later.

    Rules kept, as the SR-IOV specification and QEMU's model: NumVFs is writable only while
    VF_ENABLE is 0, and a value above TotalVFs is refused (the old value stays); System Page
    Size takes only a single supported page size; BARs are sized by writing all ones and
    reading back the mask.

    Attributes
    ----------
    cfg : RegBus, in
    num_vfs, vf_enable, vf_mse, pf_mse : Signal, out
        The enumeration state other blocks use (routing, doorbells, FB partition).
    flr : Signal(num_vfs + 1), out
        One-cycle pulse per function when Initiate FLR is written (bit 0: the PF).
    pf_bars, vf_bars : ArrayLayout(64, 3), out
        Base addresses of BAR0 (FB), BAR2 (doorbells), BAR5 (registers): the PF's, and the
        VF BARs of the SR-IOV capability (VF n's aperture is base + (n - 1) * size).
    iov_cmd : flow of iov_command_layout, out
        A GPU-IOV command, the cycle after the host writes EXECUTE = 1 (ignored while one runs).
    iov_done, iov_status : in
        From the world switch: the command ended (EXECUTE clears); CMD_STATUS.
    cmd_irq : out
        Pulses in the first cycle EXECUTE reads 0 again after a command written with
        IRQ_EN = 1 (CMD_CONTROL bit 0x20): the PF's command-done interrupt (a message,
        not a level: nothing to acknowledge).
    iov_refused : out
        Pulse: a write to CMD_CONTROL arrived while a command runs and was refused.
    vf_fb, cntxt : out
        VFn_FB_SIZE / OFFSET and CNTXT as programmed (the FB layout the PF asks for).
    csa_locked : in
        CNTXT is read-only (the world switch holds contexts in the CSA); ``cntxt_refused``
        pulses for a write refused then (CNTXT is also read-only while EXECUTE is 1).
    fb_consumed : in
        TOTAL_FB_CONSUMED: the FB of active VF slices, capability units.
    """

    LATENCY = 1

    def __init__(self, params):
        self.params = params
        self.regmap = pf_config_map(params)
        self.vf_regmap = vf_config_map(params)
        # Reserved and unimplemented configuration registers read 0 (PCI), not UR.
        self.pf_regs = RegisterFile(params, self.regmap, pf_only=False, holes_read_zero=True)
        self.vf_regs = RegisterFile(params, self.vf_regmap, pf_only=False, holes_read_zero=True)
        super().__init__({
            "cfg": In(RegBusSignature(params, 10)),
            "num_vfs": Out(range(params.num_vfs + 1)),
            "vf_enable": Out(1),
            "vf_mse": Out(1),
            "pf_mse": Out(1),
            "flr": Out(params.num_fns),
            "pf_bars": Out(data.ArrayLayout(64, len(BAR_INDICES))),
            "vf_bars": Out(data.ArrayLayout(64, len(BAR_INDICES))),
            "iov_cmd": Out(ValidSignature(iov_command_layout())),
            "iov_done": In(1),
            "iov_status": In(IovStatus),
            "iov_refused": Out(1),
            "cmd_irq": Out(1),
            "vf_fb": Out(data.ArrayLayout(vf_fb_layout(), params.num_vfs)),
            "cntxt": Out(cntxt_layout()),
            "csa_locked": In(1),
            "cntxt_refused": Out(1),
            "fb_consumed": In(16),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        pf, vf = self.pf_regs, self.vf_regs
        m.submodules.pf_regs = pf
        m.submodules.vf_regs = vf
        req = self.cfg.req

        # --- Routing a request to the PF, a live VF, or nobody (UR) ------------------------
        num_vfs = Signal(16)
        vf_enable = pf.f("SRIOV_CTRL", "VF_ENABLE")
        vf_live = (req.payload.fn != 0) & vf_enable & (req.payload.fn <= num_vfs)
        for regs, selected in ((pf, req.payload.fn == 0), (vf, vf_live)):
            m.d.comb += [regs.bus.req.payload.eq(req.payload),
                         regs.bus.req.valid.eq(req.valid & selected)]
        nobody = Signal()
        m.d.sync += nobody.eq(req.valid & (req.payload.fn != 0) & ~vf_live)
        resp = self.cfg.resp
        m.d.comb += [
            resp.valid.eq(pf.bus.resp.valid | vf.bus.resp.valid | nobody),
            resp.payload.data.eq(pf.bus.resp.payload.data | vf.bus.resp.payload.data),
            resp.payload.status.eq(Mux(nobody, Status.UR,
                                       Mux(pf.bus.resp.valid, pf.bus.resp.payload.status,
                                           vf.bus.resp.payload.status))),
        ]

        # --- NumVFs and System Page Size: writes the owner judges, on the merged value ---
        m.d.comb += pf.f("SRIOV_NUM_VFS", "NUM_VFS").eq(num_vfs)
        wrote, value = pf.write_view("SRIOV_NUM_VFS", "NUM_VFS")
        with m.If(wrote & ~vf_enable & (value <= p.num_vfs)):
            m.d.sync += num_vfs.eq(value)
        page = Signal(32, init=1)
        m.d.comb += pf.f("SRIOV_SYSTEM_PAGE", "SIZE").eq(page)
        wrote, new_page = pf.write_view("SRIOV_SYSTEM_PAGE", "SIZE")
        one_supported = ((new_page & (new_page - 1)) == 0) & \
            ((new_page & SUPPORTED_PAGE_SIZES) == new_page) & (new_page != 0)
        with m.If(wrote & ~vf_enable & one_supported):
            m.d.sync += page.eq(new_page)

        # --- Per-VF bits, FLR -----------------------------------------------------------
        # Clearing VF Enable removes every VF, as an FLR of each would (SR-IOV: the VFs
        # cease to exist); the pulse follows the cleared flop by a cycle, like a written FLR.
        vfe_was = Signal()
        m.d.sync += vfe_was.eq(vf_enable)
        vfs_gone = vfe_was & ~vf_enable
        bus_master = Signal(p.num_fns)
        m.d.comb += vf.f("CMD_STATUS", "BUS_MASTER").eq(bus_master.bit_select(req.payload.fn, 1))
        wrote, value = vf.write_view("CMD_STATUS", "BUS_MASTER")
        with m.If(wrote):
            m.d.sync += bus_master.bit_select(req.payload.fn, 1).eq(value)
        flr = Signal(p.num_fns)
        m.d.sync += flr.eq(0)
        wrote, value = pf.write_view("DEV_CTL", "INITIATE_FLR")
        with m.If(wrote & value):
            m.d.sync += flr[0].eq(1)
        wrote, value = vf.write_view("DEV_CTL", "INITIATE_FLR")
        with m.If(wrote & value):
            m.d.sync += [flr.bit_select(req.payload.fn, 1).eq(1),
                         bus_master.bit_select(req.payload.fn, 1).eq(0)]
        with m.If(vfs_gone):
            m.d.sync += [flr[1:].eq(-1), bus_master.eq(0)]
        m.d.comb += self.flr.eq(flr)

        # --- GPU-IOV: writing EXECUTE issues the command; it reads 1 until iov_done -------
        # The command is the register's merged value after the write (a byte write of FCN_ID
        # followed by one of COMMAND | EXECUTE runs on that FCN_ID). While a command runs the
        # register is locked, so it always shows the command that runs; writes are refused.
        executing = Signal()
        m.d.comb += [pf.f("GPUIOV_CMD", "EXECUTE").eq(executing),
                     pf.f("GPUIOV_STATUS", "CMD_STATUS").eq(self.iov_status),
                     pf.lock("GPUIOV_CMD").eq(executing),
                     self.iov_refused.eq(pf.refused("GPUIOV_CMD"))]
        m.d.sync += self.iov_cmd.valid.eq(0)
        wrote, execute = pf.write_view("GPUIOV_CMD", "EXECUTE")
        command = self.iov_cmd.payload
        # The register is locked while the command runs: IRQ_EN is the command's own.
        m.d.sync += self.cmd_irq.eq(self.iov_done & executing &
                                    pf.f("GPUIOV_CMD", "IRQ_EN"))
        with m.If(self.iov_done):
            m.d.sync += executing.eq(0)
        with m.Elif(wrote & execute):
            m.d.sync += [executing.eq(1), self.iov_cmd.valid.eq(1)]
            for name, fname in (("command", "COMMAND"), ("fcn_id", "FCN_ID"),
                                ("nxt_fcn_id", "NXT_FCN_ID")):
                m.d.sync += getattr(command, name).eq(pf.write_view("GPUIOV_CMD", fname)[1])

        # --- The FB layout the PF programs: the FB partition unit judges by it -------------
        # CNTXT may not move while the world switch depends on it (a valid context, a
        # command running); the capability also refuses it once EXECUTE is written, before
        # the world switch has the command.
        m.d.comb += [pf.lock("GPUIOV_CNTXT").eq(self.csa_locked | executing),
                     self.cntxt_refused.eq(pf.refused("GPUIOV_CNTXT")),
                     pf.f("GPUIOV_FB", "TOTAL_FB_CONSUMED").eq(self.fb_consumed)]
        for name in ("SIZE", "LOC", "OFFSET"):
            m.d.comb += getattr(self.cntxt, name.lower()).eq(pf.f("GPUIOV_CNTXT", name))
        for n in range(p.num_vfs):
            m.d.comb += [self.vf_fb[n].size.eq(pf.f("VF_FB", "SIZE", n)),
                         self.vf_fb[n].offset.eq(pf.f("VF_FB", "OFFSET", n))]

        # BAR base addresses, as programmed, for routing.
        pf_specs, vf_specs = bar_specs(p)
        for port, prefix, specs in ((self.pf_bars, "BAR", pf_specs),
                                    (self.vf_bars, "VF_BAR", vf_specs)):
            for k, bar in enumerate(specs):
                low = pf.f(f"{prefix}{bar.index}", "ADDR") if bar.low_address else None
                high = pf.f(f"{prefix}{bar.index + 1}", "ADDR_HI") if bar.is64 else None
                m.d.comb += port[k].eq(bar.base(low, high))

        m.d.comb += [self.num_vfs.eq(num_vfs), self.vf_enable.eq(vf_enable),
                     self.vf_mse.eq(pf.f("SRIOV_CTRL", "VF_MSE")),
                     self.pf_mse.eq(pf.f("CMD_STATUS", "MEM_EN"))]
        return m
