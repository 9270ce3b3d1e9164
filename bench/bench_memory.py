"""Peak memory of per-image transfer runs beside tf_nst.memory's estimate, one fresh `main.py` process per row.

Each row runs `main.py transfer` on the bundled samples from the content, at one scale (or --num_scales), for
--steps steps a scale with --tolerance=0, and reads the process's peak RSS (os.wait4's ru_maxrss) when it ends.
L-BFGS allocates its whole history when it is built, so a few steps reach the peak of a full history. The
estimate is the one the command line checks before it builds anything (memory.estimate_peak_bytes).

  python bench/bench_memory.py                                   # 256 to 1024 px, L-BFGS and Adam, both precisions
  python bench/bench_memory.py --sizes=1024 --runs=lbfgs:float32 --steps=105
  python bench/bench_memory.py --num_scales=auto                 # coarse to fine, as the default run
  python bench/bench_memory.py --sizes=2048 --tile_size=512 --steps=1 --runs=lbfgs:float32
"""

import os
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

import machine  # beside this script

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)  # this checkout's tf_nst

_SIZES = flags.DEFINE_list("sizes", ["256", "512", "768", "1024"], "--image_size of each row.")
_RUNS = flags.DEFINE_list("runs", ["lbfgs:float32", "lbfgs:mixed_bfloat16", "adam:float32", "adam:mixed_bfloat16"],
                          "OPTIMIZER:PRECISION of each row.")
_STEPS = flags.DEFINE_integer("steps", 10, "Steps of each run at each scale.", lower_bound=1)
_NUM_SCALES = flags.DEFINE_string("num_scales", "1", "main.py's --num_scales ('auto': the default run's).")
_TILE_SIZE = flags.DEFINE_integer("tile_size", 0, "main.py's --tile_size (0: whole images).", lower_bound=0)


def _peak_rss_bytes(argv):
    """Runs argv to its end and returns its peak RSS in bytes; exits if it fails."""
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=_ROOT) as process:
        stderr = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    if process.returncode:
        sys.exit(f"{' '.join(argv)} failed ({process.returncode}): {stderr.decode(errors='replace')[-2000:]}")
    return usage.ru_maxrss * 1024


def main(argv):
    del argv
    from tf_nst import SAMPLES_DIR, defaults, image_io, memory  # pylint: disable=import-outside-toplevel

    height, width = image_io.read_image(os.path.join(SAMPLES_DIR, "chelsea.jpg")).shape[:2]
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"machine: {machine.describe()}, {memory_gb:.0f} GB memory; main.py transfer, {_STEPS.value} steps a "
          f"scale (or tile), --num_scales={_NUM_SCALES.value}, --tile_size={_TILE_SIZE.value}, L-BFGS history "
          f"{defaults.LBFGS_HISTORY}")
    print("| size | optimizer | precision | peak RSS (MB) | estimate (MB) | estimate / peak |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for size in (int(size) for size in _SIZES.value):
            scale = size / max(height, width)
            shape = max(1, round(height * scale)), max(1, round(width * scale))
            for run in _RUNS.value:
                optimizer, precision = run.split(":")
                output = os.path.join(folder, f"{size}_{optimizer}_{precision}.png")
                peak = _peak_rss_bytes([
                    sys.executable, "main.py", "transfer", f"--image_size={size}", f"--num_scales={_NUM_SCALES.value}",
                    f"--num_steps={_STEPS.value}", f"--coarse_steps={_STEPS.value}", "--tolerance=0", "--init=content",
                    f"--optimizer={optimizer}", f"--precision={precision}", f"--output={output}", "--print_every=1000",
                    f"--tile_size={_TILE_SIZE.value}"])
                estimate = memory.estimate_peak_bytes(*shape, optimizer, defaults.LBFGS_HISTORY, _TILE_SIZE.value)
                print(f"| {shape[1]}x{shape[0]} | {optimizer} | {precision} | {peak / 1e6:.0f} | "
                      f"{estimate / 1e6:.0f} | {estimate / peak:.2f} |", flush=True)


if __name__ == "__main__":
    app.run(main)
