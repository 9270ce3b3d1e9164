"""precision: what "auto" stands for on a machine, and reading the CPU's flags."""

import pytest

from tf_nst import precision


@pytest.mark.parametrize("cpu, gpu, expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, False, "mixed_bfloat16"),
    ({"avx2", "amx_bf16", "amx_tile"}, False, "mixed_bfloat16"),
    ({"avx2", "avx512f"}, False, "float32"),  # bf16 emulated: 9x slower (BENCHMARKS.md)
    ({"avx2", "avx512_bf16"}, True, "float32"),  # GPUs: mixed precision there is unmeasured
    (set(), False, "float32"),  # no /proc/cpuinfo (macOS, Windows)
])
def test_auto_is_bfloat16_only_on_a_cpu_only_machine_with_native_bfloat16(cpu, gpu, expected):
    assert precision.resolve("auto", has_gpu=gpu, flags_of_cpu=cpu) == expected
    for name in precision.PRECISIONS:  # a named policy is taken as given, whatever the machine
        assert precision.resolve(name, has_gpu=gpu, flags_of_cpu=cpu) == name


@pytest.mark.parametrize("value, native", [("0", False), ("false", False), (" False ", False), ("1", True),
                                           ("true", True), (None, True)])
def test_auto_is_float32_when_tensorflows_onednn_is_off(value, native):
    """TF_ENABLE_ONEDNN_OPTS=0 turns off the kernels that use the bf16 instructions: bf16 is then emulated."""
    environ = {} if value is None else {"TF_ENABLE_ONEDNN_OPTS": value}
    assert precision.native_bfloat16({"avx512_bf16"}, environ) is native
    assert precision.resolve("auto", has_gpu=False, flags_of_cpu={"avx512_bf16"}, environ=environ) == (
        "mixed_bfloat16" if native else "float32")


def test_cpu_flags_are_read_from_the_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    assert precision.cpu_flags(str(cpuinfo)) == {"fpu", "sse2", "avx2", "avx512_bf16"}  # the first CPU's
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()
