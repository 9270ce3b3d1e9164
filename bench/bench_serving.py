"""Serving speed of the exported stylizer: latency (p50, p95) and images/s through `serving_default`.

Exports a stylizer (random weights by default: speed does not depend on them) with export.saved_model, loads
it with tf.saved_model.load and times whole requests: JPEG bytes in, decode, network, PNG encode, bytes out.
Each request holds `batch` different JPEGs of size x size pixels.

  python bench/bench_serving.py                                  # 512 and 1024 px, batches 1 and 8
  python bench/bench_serving.py --saved_model=exports/stylizer/3 # an existing export
  python bench/bench_serving.py --sizes=64 --batches=1,2 --requests=3 --width_multiplier=0.25  # smoke run
"""

import os
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import machine  # beside this script

_SIZES = flags.DEFINE_list("sizes", ["512", "1024"], "Square image sizes (pixels).")
_BATCHES = flags.DEFINE_list("batches", ["1", "8"], "Images per request.")
_REQUESTS = flags.DEFINE_integer("requests", 20, "Timed requests per configuration (after 2 warm-up ones).",
                                 lower_bound=1)
_WIDTH_MULTIPLIER = flags.DEFINE_float("width_multiplier", 1.0, "Width of the freshly built stylizer.")
_SAVED_MODEL = flags.DEFINE_string(
    "saved_model", None, "An exported version folder to time instead of a fresh export (its max size must "
    "not be below the sizes, or the images are downscaled first).")


def _jpegs(size, count, work_dir):
    """`count` different smooth-with-noise size x size JPEGs (photo-like, so decoding costs what it would)."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    from tf_nst import image_io  # pylint: disable=import-outside-toplevel

    rng = np.random.default_rng(size)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    images = []
    for index in range(count):
        blue = np.float32(40 * index % 255)
        base = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], blue), axis=-1)
        path = os.path.join(work_dir, f"{size}-{index}.jpg")
        image_io.write_image(path, base + rng.normal(0, 12, base.shape))
        with open(path, "rb") as f:
            images.append(f.read())
    return images


def _saved_model_path(work_dir, max_size):
    if _SAVED_MODEL.value:
        return _SAVED_MODEL.value
    import keras  # pylint: disable=import-outside-toplevel

    from export import saved_model  # pylint: disable=import-outside-toplevel
    from tf_nst import transformer  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(0)
    model = transformer.build_transformer(width_multiplier=_WIDTH_MULTIPLIER.value)
    return saved_model.export(model, work_dir, max_size=max_size)


def _time_requests(signature, images, num_requests):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    request = tf.constant(images)
    for _ in range(2):
        signature(image_bytes=request)["output_bytes"].numpy()
    latencies = []
    for _ in range(num_requests):
        start = time.perf_counter()
        signature(image_bytes=request)["output_bytes"].numpy()
        latencies.append(time.perf_counter() - start)
    latencies = np.array(latencies) * 1000
    return np.percentile(latencies, 50), np.percentile(latencies, 95), len(images) / (latencies.mean() / 1000)


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The pooled CPU allocator, as the README runs TF Serving (TF_CPU_ALLOCATOR_USE_BFC=false: the default).
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    tf.get_logger().setLevel("ERROR")
    logging.set_verbosity(logging.WARNING)  # the export's tracing notes
    sizes = [int(size) for size in _SIZES.value]
    batches = [int(batch) for batch in _BATCHES.value]
    with tempfile.TemporaryDirectory() as work_dir:
        path = _saved_model_path(work_dir, max(sizes))
        signature = tf.saved_model.load(path).signatures["serving_default"]
        rows = []
        for size in sizes:
            for batch in batches:
                images = _jpegs(size, batch, work_dir)
                p50, p95, throughput = _time_requests(signature, images, _REQUESTS.value)
                rows.append((size, batch, p50, p95, throughput))
                print(f"  done {size}px x {batch}", file=sys.stderr, flush=True)
    width = "" if _SAVED_MODEL.value else f", width multiplier {_WIDTH_MULTIPLIER.value:g}"
    allocator = "pooled" if os.environ["TF_CPU_ALLOCATOR_USE_BFC"].lower() in ("true", "1") else "default"
    print(f"machine: {machine.describe()}; TensorFlow's {allocator} CPU allocator")
    source = path if _SAVED_MODEL.value else "fresh export"
    print(f"model: {source}{width}; {_REQUESTS.value} timed requests each")
    print("| size (px) | batch | p50 latency (ms) | p95 latency (ms) | images/s |")
    print("| --- | --- | --- | --- | --- |")
    for size, batch, p50, p95, throughput in rows:
        print(f"| {size} | {batch} | {p50:.0f} | {p95:.0f} | {throughput:.1f} |")


if __name__ == "__main__":
    app.run(main)
