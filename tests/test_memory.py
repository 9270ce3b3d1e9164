"""The peak-memory estimate of a transfer and what the machine has (tf_nst/memory.py)."""

import pytest

from tf_nst import memory


def test_the_estimate_reproduces_its_calibration_runs():
    # BENCHMARKS.md, pooled allocator: L-BFGS 1340 and 3472 MB, Adam 1053 and 2312 MB at 256 and 512 px.
    for side, lbfgs, adam in ((256, 1340e6, 1053e6), (512, 3472e6, 2312e6)):
        assert memory.estimate_peak_bytes(side, side, "lbfgs", 100) == pytest.approx(lbfgs, rel=0.01)
        assert memory.estimate_peak_bytes(side, side, "adam", 100) == pytest.approx(adam, rel=0.01)


def test_tiles_bound_the_estimate_and_the_suggested_tile_fits():
    whole = memory.estimate_peak_bytes(6652, 10000, "lbfgs", 100)
    tiled = memory.estimate_peak_bytes(6652, 10000, "lbfgs", 100, tile_size=512)
    assert tiled < whole / 50
    available = 8e9
    tile = memory.fitting_tile_size(6652, 10000, "lbfgs", 100, available)
    assert tile % 32 == 0
    assert memory.fits(6652, 10000, "lbfgs", 100, tile, available)[0]
    assert not memory.fits(6652, 10000, "lbfgs", 100, tile + 64, available)[0]
    assert memory.fitting_tile_size(6652, 10000, "lbfgs", 100, 1e9) is None  # not even the base fits


def test_available_memory_reads_meminfo_and_a_cgroup_limit(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n")
    assert memory.available_bytes(str(meminfo), str(tmp_path / "no_cgroup")) == 20000000 * 1024
    (tmp_path / "memory.max").write_text("4000000000\n")
    (tmp_path / "memory.current").write_text("1000000000\n")
    assert memory.available_bytes(str(meminfo), str(tmp_path)) == 3000000000
    (tmp_path / "memory.max").write_text("max\n")
    assert memory.available_bytes(str(meminfo), str(tmp_path)) == 20000000 * 1024
    assert memory.available_bytes(str(tmp_path / "missing"), str(tmp_path)) is None
    assert memory.fits(100000, 100000, "lbfgs", 100, available=None)[0]  # unknown: not refused
