"""PCIe configuration space: checked byte by byte against the spec's offsets (docs/sources.md,
SR-IOV and GPU-IOV capabilities, written into this file, not taken from the RTL's tables) and by lspci."""

import json
import os
import shutil
import subprocess

import pytest

from rtl.pcie.config_space import BAR_INDICES
from rtl.params import GiB, GpuParams, MiB
from sim.runners.backend import run_amaranth, run_cocotb
from sim.drivers.host import lspci_dump

BENCH = "tests.benches.config_space:"
P4 = GpuParams(num_vfs=4)


def u16(raw, at):
    return int.from_bytes(raw[at:at + 2], "little")


def u32(raw, at):
    return int.from_bytes(raw[at:at + 4], "little")


def ext_caps(raw):
    """{cap id: byte offset}, walking the extended capability chain from 0x100."""
    caps, at, seen = {}, 0x100, set()
    while at:
        assert at not in seen and at % 4 == 0 and 0x100 <= at < 0x1000, f"bad next {at:#x}"
        seen.add(at)
        header = u32(raw, at)
        caps[header & 0xFFFF] = at
        at = header >> 20
    return caps


def std_caps(raw):
    caps, at = {}, raw[0x34]
    assert u16(raw, 0x06) & 0x10, "Status.CapList must be set"
    while at:
        caps[raw[at]] = at
        at = raw[at + 1]
    return caps


def enumerate_dump(params, num_vfs, fns=None):
    result = run_amaranth("config_space", params, BENCH + "enumerate_and_dump",
                          num_vfs=num_vfs, dump_fns=fns)
    return result["info"], {int(k): bytes.fromhex(v) for k, v in result["dumps"].items()}


@pytest.fixture(scope="module")
def enumerated():
    return enumerate_dump(P4, 2)


def test_pf_header_identifies_the_gim_device(enumerated):
    _, dumps = enumerated
    pf = dumps[0]
    assert (u16(pf, 0x00), u16(pf, 0x02)) == (0x1002, 0x6929)
    assert pf[0x0B] == 0x03 and pf[0x0E] & 0x7F == 0     # display class, type-0 header


def test_capability_chains_are_well_formed_and_complete(enumerated):
    _, dumps = enumerated
    assert std_caps(dumps[0]) == {0x10: 0x40}
    caps = ext_caps(dumps[0])
    assert set(caps) == {0x000E, 0x0010, 0x000B}          # ARI, SR-IOV, vendor-specific
    vsec = caps[0x000B]
    assert u32(dumps[0], vsec + 4) & 0xFFFF == 0x02       # GPU-IOV
    assert ext_caps(dumps[1]) == {0x000E: 0x100}          # a VF: ARI only


def test_sriov_fields_sit_at_the_spec_offsets(enumerated):
    info, dumps = enumerated
    pf = dumps[0]
    s = ext_caps(pf)[0x0010]
    assert u32(pf, s) >> 16 & 0xF == 1                    # version 1
    assert u16(pf, s + 0x08) & 0b11001 == 0b11001         # VF Enable, VF MSE, ARI hierarchy
    assert (u16(pf, s + 0x0C), u16(pf, s + 0x0E), u16(pf, s + 0x10)) == (4, 4, 2)
    assert (u16(pf, s + 0x14), u16(pf, s + 0x16), u16(pf, s + 0x1A)) == (1, 1, 0x692F)
    assert u32(pf, s + 0x1C) & 1 and u32(pf, s + 0x20) == 1   # 4 KiB supported and selected
    vf_fb = u32(pf, s + 0x24) & ~0xF | u32(pf, s + 0x28) << 32
    assert vf_fb == info["vf_bars"]["0"][0]


def test_gpu_iov_registers_sit_at_the_gim_offsets(enumerated):
    _, dumps = enumerated
    pf = dumps[0]
    v = ext_caps(pf)[0x000B]
    assert u32(pf, v + 4) >> 20 == 0x2C + 4 * P4.num_vfs  # length covers VF0..VF3_FB_*
    assert u16(pf, v + 0x24) == P4.fb_size >> 24          # TOTAL_FB_AVAILABLE, 16 MiB units
    assert pf[v + 0x10] == 0x00                           # CMD_STATUS: COMMAND_DONE


def test_config_space_tells_routing_what_enumeration_assigned(enumerated):
    info, _ = enumerated
    ports = info["ports"]
    assert ports["pf_bars"] == [info["pf_bars"][k][0] for k in ("0", "2", "5")]
    assert ports["vf_bars"] == [info["vf_bars"][k][0] for k in ("0", "2", "5")]
    assert (ports["num_vfs"], ports["vf_enable"], ports["vf_mse"], ports["pf_mse"]) == (2, 1, 1, 1)


def test_vf_reads_all_ones_as_its_ids(enumerated):
    _, dumps = enumerated
    assert u32(dumps[1], 0) == 0xFFFFFFFF and u32(dumps[2], 0) == 0xFFFFFFFF


def test_bars_size_like_the_spec_says(enumerated):
    info, _ = enumerated
    assert info["pf_bars"]["0"][1] == P4.pf_fb_aperture
    assert info["vf_bars"]["0"][1] == P4.vf_fb_aperture
    for address, size in list(info["pf_bars"].values()) + list(info["vf_bars"].values()):
        assert address % size == 0


@pytest.mark.skipif(not shutil.which("lspci") and "lspci" not in
                    os.environ.get("SRIOV_REQUIRE_TOOLS", ""), reason="lspci (pciutils) missing")
def test_lspci_decodes_the_dump_as_an_sriov_gpu(enumerated, tmp_path):
    info, dumps = enumerated
    path = tmp_path / "dump.txt"
    path.write_text(lspci_dump(P4, dumps))
    out = subprocess.run(["lspci", "-F", str(path), "-vvv"], capture_output=True,
                         text=True, check=True).stdout
    assert "Single Root I/O Virtualization (SR-IOV)" in out
    assert "Alternative Routing-ID Interpretation (ARI)" in out
    assert "Initial VFs: 4, Total VFs: 4, Number of VFs: 2" in out
    assert "VF offset: 1, stride: 1, Device ID: 692f" in out
    assert "IOVCtl:\tEnable+ Migration- Interrupt- MSE+ ARIHierarchy+" in out
    vf_fb = info["vf_bars"]["0"][0]
    assert f"Region 0: Memory at {vf_fb:016x} (64-bit, prefetchable)" in out
    assert f"Region 5: Memory at {info['pf_bars']['5'][0]:08x} (32-bit, non-prefetchable)" in out
    assert "Vendor Specific Information: ID=0002" in out
    assert out.count("Illegal Vendor ID") == 2             # the two VFs read all ones


#: PCI memory BAR type bits (bits 3:0 of the low dword): 64-bit (0b10 << 1), prefetchable (8).
TYPE_64_PREFETCH = 0b1100
ALL64 = (1 << 64) - 1


@pytest.mark.parametrize("vf, size", [(True, 4 * GiB), (True, 8 * GiB), (True, 256 * MiB),
                                      (False, 64 * GiB)])
def test_a_64_bit_bar_of_4_gib_and_more_sizes_and_decodes_like_the_pci_spec_says(vf, size):
    # The FB BAR (BAR0) of the PF, or the VFs' (SR-IOV VF BAR0), 64-bit prefetchable.
    changes = {"vf_fb_aperture" if vf else "pf_fb_aperture": size}
    params = GpuParams(num_vfs=2, **changes)
    address = 20 * size           # naturally aligned, above 4 GiB: both dwords hold bits
    got = run_amaranth("config_space", params, BENCH + "probe_bar", vf=vf, index=0,
                       address=address | (size >> 1) | 0xF, num_vfs=2)

    def u64(pair):
        return pair[0] | pair[1] << 32

    # Sizing: all ones read back as ~(size - 1) over 64 bits, the type bits in bits 3:0.
    assert u64(got["sized"]) == (~(size - 1) & ALL64 & ~0xF) | TYPE_64_PREFETCH
    assert u64(got["restored"]) == u64(got["saved"]) == TYPE_64_PREFETCH
    # The bits below the size and the type bits are read-only: the base is the aligned part.
    assert u64(got["placed"]) == address | TYPE_64_PREFETCH
    bars = got["vf_bars"] if vf else got["pf_bars"]
    assert bars[BAR_INDICES.index(0)] == address


@pytest.mark.skipif(not shutil.which("lspci") and "lspci" not in
                    os.environ.get("SRIOV_REQUIRE_TOOLS", ""), reason="lspci (pciutils) missing")
def test_lspci_decodes_a_4_gib_vf_bar_placed_above_4_gib(tmp_path):
    size = 4 * GiB
    params = GpuParams(num_vfs=2, vf_fb_aperture=size)
    info, dumps = enumerate_dump(params, 2, fns=[0])
    address, sized = info["vf_bars"]["0"]
    assert sized == size and address % (2 * size) == 0    # a window of NumVFs apertures
    s = ext_caps(dumps[0])[0x0010]
    # VF BAR0's low dword holds only the type bits; the address is all in the upper one.
    assert (u32(dumps[0], s + 0x24), u32(dumps[0], s + 0x28)) == (TYPE_64_PREFETCH, address >> 32)
    path = tmp_path / "dump.txt"
    path.write_text(lspci_dump(params, dumps))
    out = subprocess.run(["lspci", "-F", str(path), "-vvv"], capture_output=True,
                         text=True, check=True).stdout
    sriov = out[out.index("Single Root I/O Virtualization"):]
    assert f"Region 0: Memory at {address:016x} (64-bit, prefetchable)" in sriov


@pytest.mark.parametrize("vfs", [1, 16, 64])
def test_enumeration_works_for_1_16_and_64_vfs(vfs):
    params = GpuParams(num_vfs=vfs)
    info, dumps = enumerate_dump(params, vfs, fns=[0, vfs])
    assert info["num_vfs"] == vfs
    s = ext_caps(dumps[0])[0x0010]
    assert u16(dumps[0], s + 0x10) == vfs
    assert u32(dumps[vfs], 0) == 0xFFFFFFFF               # the last VF answers


def test_reserved_config_registers_read_zero():
    run_amaranth("config_space", P4, BENCH + "reserved_registers_read_zero")


@pytest.mark.parametrize("seed", [1, 2])
def test_malformed_config_writes_leave_the_device_consistent(seed):
    got = run_amaranth("config_space", P4, BENCH + "malformed_writes_leave_the_device_consistent",
                       seed=seed, writes=400)
    assert got["refused"] > 0


def test_numvfs_is_refused_above_totalvfs_and_while_enabled():
    run_amaranth("config_space", P4, BENCH + "numvfs_rules")


def test_system_page_size_takes_only_one_supported_size():
    run_amaranth("config_space", P4, BENCH + "system_page_size_takes_one_supported_size")


def test_cocotb_config_space_matches_amaranth_byte_for_byte(simulator):
    result = run_cocotb(simulator, "config_space", P4, BENCH + "enumerate_and_dump",
                        test_name="dump", num_vfs=2)
    amaranth = run_amaranth("config_space", P4, BENCH + "enumerate_and_dump", num_vfs=2)
    assert result == json.loads(json.dumps(amaranth))     # cocotb's result came through JSON


@pytest.mark.parametrize("body", ["numvfs_rules", "system_page_size_takes_one_supported_size",
                                  "reserved_registers_read_zero"])
def test_cocotb_config_rules_hold(simulator, body):
    run_cocotb(simulator, "config_space", P4, BENCH + body, test_name=body)
