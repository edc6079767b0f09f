"""The whole GPU (rtl/top/gpu.py): Verilog at 1..64 VFs, the host port's routing, answers and
latencies, the GPU-IOV capability programming the FB layout, refusals counted where the PF
can read them, doorbells following the GPU's owner; on Amaranth and both cocotb simulators."""

import pytest
from amaranth.back import verilog

from rtl.top.gpu import SriovGpu
from rtl.params import GpuParams, MiB, ParamError
from sim.runners.backend import run_amaranth, run_cocotb

from tests.benches.gpu import CSA_OFFSET_UNITS, SLICE_OFFSET_UNITS, SLICE_SIZE_UNITS

PARAMS = GpuParams(num_vfs=4)
BODY = "tests.benches.gpu:host_port"


@pytest.fixture(scope="module")
def amaranth_run():
    return run_amaranth("gpu", PARAMS, BODY)


@pytest.mark.parametrize("vfs", [1, 64])
def test_top_generates_verilog_at_the_vf_count_limits(vfs):
    text = verilog.convert(SriovGpu(GpuParams(num_vfs=vfs)), name="gpu", emit_src=False)
    assert "module gpu(" in text and "host__req__ready" in text and "fb__req__valid" in text


def test_top_refuses_a_pf_register_bar_too_small_for_its_windows():
    with pytest.raises(ParamError, match="pf_mmio_size"):
        SriovGpu(GpuParams(pf_mmio_size=128 * 1024))


def test_capability_writes_program_the_fb_partition_and_world_switch(amaranth_run):
    # docs/sources.md#gpu-iov-capability: VFn_FB_SIZE is size/16MiB - 1, VFn_FB_OFFSET
    # offset/16MiB; CNTXT's
    # OFFSET in the same unit. Active: the CSA (region 0) and VF 1's slice (region 1) only.
    assert amaranth_run["active"] == 0b11
    assert amaranth_run["csa"] == {"BASE": CSA_OFFSET_UNITS * 16 * MiB // 4096, "OK": 1}
    layout = amaranth_run["layout"]
    assert not (layout["BUSY"] or layout["REFUSED"])
    assert amaranth_run["consumed"] == SLICE_SIZE_UNITS       # only VF 1 has a slice


def test_vf_fb_write_lands_at_its_slice_base_plus_offset_in_one_lane(amaranth_run):
    physical = SLICE_OFFSET_UNITS * 16 * MiB + 0x1234
    beat = PARAMS.mem_width // 8
    lane = physical % beat // 4
    assert amaranth_run["fb_words"] == {str(physical - physical % beat): 0xCAFEF00D << 32 * lane}
    assert amaranth_run["fb_write"] == ["OK", 0]
    assert amaranth_run["fb_read"] == ["OK", 0xCAFEF00D]


def test_each_refusal_answers_its_status_and_is_counted_once(amaranth_run):
    assert amaranth_run["past_slice"][0] == "BLOCKED"       # FB partition
    assert amaranth_run["other_doorbell"][0] == "BLOCKED"   # VF 1 in VF 2's doorbell BAR
    assert amaranth_run["pf_only"][0] == "BLOCKED"          # register decode
    assert amaranth_run["doorbell_read"][0] == "UR"
    assert amaranth_run["nowhere"][0] == "UR"
    assert amaranth_run["counters"] == {"xfn": 1, "host_ur": 2, "fb": 1, "reg": 1}


def test_pf_interrupts_follow_a_vf_mailbox_message_and_an_fb_violation(amaranth_run):
    assert amaranth_run["irq_before"] == 0
    assert amaranth_run["irq_mailbox"] == {"pf_mailbox": 1, "pending": 1 << 0}
    assert amaranth_run["irq_fb_violation"] == 1


def test_answers_come_three_cycles_after_the_request_and_fb_reads_after_the_memory(
        amaranth_run):
    latency = PARAMS.mem_latency
    assert amaranth_run["answer_cycles"] == [["CONFIG", False, 3], ["CONFIG", True, 3],
                                             ["MEMORY", False, 3], ["MEMORY", False, 7 + latency]]


def test_only_the_owner_s_doorbells_reach_the_command_processor(amaranth_run):
    assert amaranth_run["ring1"] == ["OK", 0] and amaranth_run["ring2"] == ["OK", 0]
    assert amaranth_run["delivered_while_1_owns"] == [[1, 3, 77]]
    assert amaranth_run["delivered"] == [[1, 3, 77], [2, 1, 55]]


def test_host_driven_switch_through_the_capability_hands_the_gpu_over(amaranth_run):
    assert amaranth_run["commands"] == ["COMMAND_DONE"] * 8
    assert amaranth_run["state"]["CUR_FN"] == 2 and amaranth_run["state"]["OWNER_VALID"] == 1
    [switch] = amaranth_run["switches"]
    assert (switch["from"], switch["to"]) == (1, 2)


def test_host_port_behaves_the_same_on_cocotb(simulator, amaranth_run):
    assert run_cocotb(simulator, "gpu", PARAMS, BODY, test_name="host_port") == amaranth_run



def test_an_fb_partition_slower_than_the_register_blocks_is_refused_by_name():
    from rtl.memory.fb_partition import FbPartition

    class SlowFbPartition(FbPartition):
        LATENCY = 2

    class Gpu(SriovGpu):
        FB_PARTITION = SlowFbPartition

    with pytest.raises(ParamError, match=r"^SlowFbPartition\.LATENCY is 2: the top's stage D "
                                         r"takes the FB partition unit's result in the same "
                                         r"cycle as the register blocks' answers"):
        Gpu(GpuParams(num_vfs=2))


def test_register_windows_are_one_table_in_bar_order():
    from rtl.top.gpu import REG_WINDOW_SIZE, REG_WINDOW_TABLE, REG_WINDOWS, reg_window
    assert REG_WINDOWS == ("mmio", "fb_partition", "world_switch", "gpu")
    assert [reg_window(n).offset for n in REG_WINDOWS] == \
        [k * REG_WINDOW_SIZE for k in range(len(REG_WINDOW_TABLE))]
    with pytest.raises(KeyError, match="no register window 'nope'"):
        reg_window("nope")
