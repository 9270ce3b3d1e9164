"""The LiteRT export per quantisation: file size, latency at 512 and 1024 px, grey-level error vs the SavedModel.

Builds a stylizer (random weights by default; see BENCHMARKS.md for what that means for the errors), exports
it with export.saved_model, converts it with export.litert at every quantisation, then, on two photos
(scikit-image's coffee and chelsea, resized to size x size), times one image per call in ai-edge-litert's
interpreter (XNNPACK, --num_threads) and the SavedModel's stylize_images signature side by side, round after
round, and compares their uint8 outputs.

  python bench/bench_litert.py                                         # width 1.0, 512 and 1024 px
  python bench/bench_litert.py --sizes=64 --repeats=1 --width_multiplier=0.25   # smoke run
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
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per configuration and size (after one warm-up).",
                                lower_bound=1)
_WIDTH_MULTIPLIER = flags.DEFINE_float("width_multiplier", 1.0, "Width of the freshly built stylizer.")
_NUM_THREADS = flags.DEFINE_integer("num_threads", os.cpu_count(), "LiteRT interpreter threads.")


def _photos(size):
    import numpy as np  # pylint: disable=import-outside-toplevel
    import skimage.data  # pylint: disable=import-outside-toplevel
    from PIL import Image  # pylint: disable=import-outside-toplevel

    return [np.asarray(Image.fromarray(getattr(skimage.data, name)()).resize((size, size), Image.BILINEAR))
            for name in ("coffee", "chelsea")]


def _folder_size(folder):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(folder) for name in names)


def _median_seconds(run, image):
    run(image)  # warm-up: allocation, graph or delegate setup
    times = []
    for _ in range(_REPEATS.value):
        start = time.perf_counter()
        run(image)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # as main.py runs
    logging.set_verbosity(logging.ERROR)
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from export import litert  # pylint: disable=import-outside-toplevel
    from export import saved_model  # pylint: disable=import-outside-toplevel
    from tf_nst import transformer  # pylint: disable=import-outside-toplevel

    work_dir = tempfile.mkdtemp(prefix="bench_litert-")
    keras.utils.set_random_seed(0)
    model = transformer.build_transformer(width_multiplier=_WIDTH_MULTIPLIER.value)
    version_dir = saved_model.export(model, work_dir)
    signature = tf.saved_model.load(version_dir).signatures[saved_model.IMAGES]
    variables_bytes = _folder_size(os.path.join(version_dir, "variables"))
    paths = {quantize: litert.export(version_dir, os.path.join(work_dir, f"{quantize}.tflite"), quantize)
             for quantize in litert.QUANTIZATIONS}
    interpreters = {quantize: litert.load_interpreter(path, _NUM_THREADS.value) for quantize, path in paths.items()}

    def run_saved_model(image):
        return signature(images=tf.constant(image[None]))["stylized"].numpy()[0]

    rows = {name: {"latency": {}, "errors": []} for name in ("SavedModel", *litert.QUANTIZATIONS)}
    for size in (int(size) for size in _SIZES.value):
        photos = _photos(size)
        expected = [run_saved_model(photo) for photo in photos]
        rows["SavedModel"]["latency"][size] = _median_seconds(run_saved_model, photos[0])
        for quantize, interpreter in interpreters.items():
            run = lambda image, interpreter=interpreter: litert.stylize(interpreter, image)  # noqa: E731
            rows[quantize]["latency"][size] = _median_seconds(run, photos[0])
            for photo, reference in zip(photos, expected):
                rows[quantize]["errors"].append(np.abs(run(photo).astype(int) - reference.astype(int)))
        print(f"{size} px done", flush=True)

    sizes = [int(size) for size in _SIZES.value]
    print(f"\nwidth {_WIDTH_MULTIPLIER.value}, random weights (seed 0), "
          f"{machine.describe()}, LiteRT with {_NUM_THREADS.value} threads; median "
          f"of {_REPEATS.value} calls; errors over coffee and chelsea at {', '.join(map(str, sizes))} px\n")
    header = " | ".join(f"latency {size} px" for size in sizes)
    print(f"| model | size | vs SavedModel variables | {header} | max error | mean error |")
    print("| --- " * (5 + len(sizes)) + "|")
    for name, row in rows.items():
        size_bytes = variables_bytes if name == "SavedModel" else os.path.getsize(paths[name])
        latency = " | ".join(f"{1000 * row['latency'][size]:.0f} ms" for size in sizes)
        errors = row["errors"]
        max_error = max(int(e.max()) for e in errors) if errors else 0
        mean_error = float(np.mean([e.mean() for e in errors])) if errors else 0.0
        label = "SavedModel (variables/)" if name == "SavedModel" else f"LiteRT {name}"
        print(f"| {label} | {size_bytes / 2**20:.2f} MiB | {size_bytes / variables_bytes:.0%} | {latency} | "
              f"{max_error} | {mean_error:.2f} |")


if __name__ == "__main__":
    app.run(main)
