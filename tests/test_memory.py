"""The peak-memory estimate of a transfer and what the machine has (tf_nst/memory.py)."""

import pytest

from tf_nst import memory


# Peak RSS (MB) of the command line's runs in float32, the precision that needs more (BENCHMARKS.md, "The memory
# check, refitted": bench/bench_memory.py, coarse to fine, and in 512 px tiles at one scale): (height, width,
# optimizer, tile_size, peak).
_MEASURED = [(170, 256, "lbfgs", None, 1149), (341, 512, "lbfgs", None, 1979), (511, 768, "lbfgs", None, 3294),
             (681, 1024, "lbfgs", None, 5164), (170, 256, "adam", None, 925), (341, 512, "adam", None, 1274),
             (511, 768, "adam", None, 1845), (681, 1024, "adam", None, 2551), (681, 1024, "lbfgs", 512, 2230),
             (1362, 2048, "lbfgs", 512, 2331)]


@pytest.mark.parametrize("height, width, optimizer, tile_size, peak_mb", _MEASURED)
def test_the_estimate_is_above_each_measured_peak_but_not_far(height, width, optimizer, tile_size, peak_mb):
    """Below a run's peak, the check would let through a run that does not fit; far above, it would refuse one
    that does (the old fit said 8.2 GB for the 1024 px L-BFGS run that peaks at 5.2 GB)."""
    estimate = memory.estimate_peak_bytes(height, width, optimizer, 100, tile_size) / 1e6
    assert peak_mb * 1.05 < estimate < peak_mb * (1.3 if tile_size else 1.2)


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
