"""The hypervisor's view: configuration accesses, enumeration, and lspci-format dumps."""

from rtl.pcie.config_space import bar_specs, pf_config_map, vf_config_map
from rtl.common.interfaces import REG_DATA_WIDTH, Status

from sim.drivers.regbus import RegBusDriver, RegisterAccess

__all__ = ["ConfigDriver", "enumerate_device", "enumerate_and_dump", "lspci_dump", "rid_of",
           "size_bar"]

DWORD_MASK = (1 << REG_DATA_WIDTH) - 1


def rid_of(params, fn, pf_rid=0):
    """Routing ID of function ``fn`` (0 = PF): PF RID + First VF Offset + (n-1) * VF Stride."""
    return pf_rid if fn == 0 else pf_rid + params.first_vf_offset + (fn - 1) * params.vf_stride


class _ConfigTable(RegisterAccess):
    """One configuration table (the PF's or the VFs') by name, over a configuration bus: a
    read must be answered OK; a write's status is returned (enumeration and tests write
    where a function may refuse)."""

    def __init__(self, bus, regmap):
        self.bus, self.regmap = bus, regmap

    def access(self, addr, **kwargs):
        return self.bus.access(addr, **kwargs)

    def refused(self, status, write, name, index, fn):
        assert write, f"config read of function {fn} {name} answered {status}"


class ConfigDriver:
    """Configuration reads and writes to any function, offsets from the config tables."""

    def __init__(self, tb, params, prefix="cfg", bus=None):
        self.params = params
        self.pf_map = pf_config_map(params)
        self.vf_map = vf_config_map(params)
        #: Anything with RegBusDriver's ``access`` (the whole GPU's host port: sim/system/system.py).
        self.bus = RegBusDriver(tb, self.pf_map, prefix) if bus is None else bus
        self._tables = tuple(_ConfigTable(self.bus, m) for m in (self.pf_map, self.vf_map))

    def _map(self, fn):
        """The register table of function ``fn``: the PF's or the VFs'."""
        return self._table(fn).regmap

    def _table(self, fn):
        return self._tables[fn != 0]

    async def read_dword(self, fn, dword):
        status, value = await self.bus.access(dword, fn=fn)
        return status, value

    async def write_dword(self, fn, dword, value, be=0xF):
        status, _ = await self.bus.access(dword, write=True, data=value, fn=fn, be=be)
        return status

    async def read(self, fn, name, index=None):
        """Function ``fn``'s register ``name`` as fields (PF or VF table by ``fn``)."""
        return await self._table(fn).read_fields(name, index, fn)

    async def write(self, fn, name, index=None, **fields):
        """Write fields of function ``fn``'s register ``name``; returns the status."""
        return await self._table(fn).write(name, index, fn, **fields)

    async def dump(self, fn):
        """The function's 4 KiB of configuration space, as bytes (UR reads as all ones)."""
        out = bytearray()
        for dword in range(1024):
            status, value = await self.read_dword(fn, dword)
            if status != Status.OK:
                value = 0xFFFFFFFF
            out += value.to_bytes(4, "little")
        return bytes(out)


async def size_bar(cfg, fn, low_name, high_name=None):
    """Size a BAR the way host software does: write all ones, read back, restore."""
    m = cfg.pf_map
    low = m.offset(low_name)
    _, saved = await cfg.read_dword(fn, low)
    await cfg.write_dword(fn, low, 0xFFFFFFFF)
    _, mask = await cfg.read_dword(fn, low)
    await cfg.write_dword(fn, low, saved)
    mask &= ~0xF
    if high_name:
        high = m.offset(high_name)
        _, saved_hi = await cfg.read_dword(fn, high)
        await cfg.write_dword(fn, high, 0xFFFFFFFF)
        _, mask_hi = await cfg.read_dword(fn, high)
        await cfg.write_dword(fn, high, saved_hi)
        mask |= mask_hi << 32
        return (~mask & (1 << 64) - 1) + 1
    return (~mask & 0xFFFFFFFF) + 1


async def enumerate_device(tb, params, num_vfs, base=0x4_0000_0000, base32=0xE000_0000,
                           cfg=None):
    """Size and assign the PF's and the VF BARs, set NumVFs, enable VFs and memory decode.

    64-bit BARs are placed from ``base`` up, 32-bit ones from ``base32`` (below 4 GiB), each
    naturally aligned (a VF BAR's window holds NumVFs apertures).

    Returns {"pf_bars": {index: (address, size)}, "vf_bars": {...}, "num_vfs": n}.
    ``cfg``: a :class:`ConfigDriver` to use (default: one on ``tb``'s ``cfg`` port).
    """
    cfg = ConfigDriver(tb, params) if cfg is None else cfg
    pf_bars, vf_bars = bar_specs(params)
    result = {"pf_bars": {}, "vf_bars": {}}
    windows = {True: base, False: base32}
    for prefix, bars, key, count in (("BAR", pf_bars, "pf_bars", 1),
                                     ("VF_BAR", vf_bars, "vf_bars", num_vfs)):
        for bar in bars:
            size = await size_bar(cfg, 0, f"{prefix}{bar.index}",
                                  f"{prefix}{bar.index + 1}" if bar.is64 else None)
            assert size == bar.size, f"{prefix}{bar.index} sized {size:#x}, spec {bar.size:#x}"
            total = size * max(count, 1)
            address = (windows[bar.is64] + total - 1) // total * total   # naturally aligned
            # As host software does: the address's dwords, straight into the BAR's dwords
            # (the bits below the size and the type bits are read-only and keep their value).
            dwords = [f"{prefix}{bar.index}"] + ([f"{prefix}{bar.index + 1}"] if bar.is64 else [])
            for k, name in enumerate(dwords):
                await cfg.write_dword(0, cfg.pf_map.offset(name),
                                      address >> (k * REG_DATA_WIDTH) & DWORD_MASK)
            result[key][bar.index] = (address, size)
            windows[bar.is64] = address + total
    await cfg.write(0, "SRIOV_NUM_VFS", NUM_VFS=num_vfs)
    await cfg.write(0, "SRIOV_CTRL", VF_ENABLE=int(num_vfs > 0), VF_MSE=1, ARI_HIERARCHY=1)
    await cfg.write(0, "CMD_STATUS", MEM_EN=1, BUS_MASTER=1)
    result["num_vfs"] = (await cfg.read(0, "SRIOV_NUM_VFS"))["NUM_VFS"]
    return result


async def enumerate_and_dump(tb, params, num_vfs, dump_fns=None):
    """Enumerate with ``num_vfs`` VFs; return the config space of ``dump_fns`` (default: the
    PF and every VF) as hex, and what enumeration assigned."""
    info = await enumerate_device(tb, params, num_vfs)
    cfg = ConfigDriver(tb, params)
    fns = range(num_vfs + 1) if dump_fns is None else dump_fns
    dumps = {str(fn): (await cfg.dump(fn)).hex() for fn in fns}
    # What the config space tells routing: the BAR bases it drives on its ports.
    info["ports"] = {"pf_bars": [int(x) for x in tb.get("pf_bars")],
                     "vf_bars": [int(x) for x in tb.get("vf_bars")],
                     "num_vfs": tb.get("num_vfs"), "vf_enable": tb.get("vf_enable"),
                     "vf_mse": tb.get("vf_mse"), "pf_mse": tb.get("pf_mse")}
    return {"info": {k: ({str(i): v for i, v in val.items()} if isinstance(val, dict) else val)
                     for k, val in info.items()}, "dumps": dumps}


def lspci_dump(params, dumps, bus=0, pf_device=0):
    """Text in ``lspci -xxxx`` format for {fn: 4096 bytes}; ``lspci -F FILE`` decodes it."""
    lines = []
    for fn, raw in sorted(dumps.items()):
        rid = rid_of(params, fn, (bus << 8) | (pf_device << 3))
        vendor = int.from_bytes(raw[0:2], "little")
        device = int.from_bytes(raw[2:4], "little")
        if fn:   # a VF reads all ones: name it by the PF's vendor and the VF device ID
            vendor, device = params.vendor_id, params.vf_device_id
        lines.append(f"{rid >> 8:02x}:{(rid >> 3) & 0x1F:02x}.{rid & 7} "
                     f"Class {params.class_code >> 8:04x}: Device {vendor:04x}:{device:04x}")
        for row in range(0, len(raw), 16):
            lines.append(f"{row:02x}: " if row < 0x100 else f"{row:03x}: ")
            lines[-1] += " ".join(f"{b:02x}" for b in raw[row:row + 16])
        lines.append("")
    return "\n".join(lines) + "\n"
