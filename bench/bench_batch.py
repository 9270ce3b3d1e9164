"""Images/s of the Beam batch job against the library's stylize, over the same folder of images.

Builds a stylizer (random weights: speed does not depend on them), saves it as .keras and exports it, writes
`num_images` photo-like JPEGs, then times, end to end (model loading included), in rounds so that a noisy
shared machine affects every configuration alike:

  stylize      tf_nst.stylize: load_stylizer + stylize_files, one process (what `main.py stylize` runs)
  beam x1      export.batch.run on the FnApiRunner in this process (what `main.py batch` runs)
  beam x2      the same with --direct_num_workers=2 --direct_running_mode=multi_processing

Every run writes to a fresh folder, so the job's skipping of finished outputs never helps it.

  python bench/bench_batch.py                                    # 64 images of 512 px, 2 rounds
  python bench/bench_batch.py --num_images=8 --size=64 --rounds=1 --width_multiplier=0.25   # smoke run
"""

import os
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import machine  # beside this script

_NUM_IMAGES = flags.DEFINE_integer("num_images", 64, "Images in the folder.", lower_bound=1)
_SIZE = flags.DEFINE_integer("size", 512, "Side of the square images (pixels).", lower_bound=16)
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Rounds; each runs every configuration once.", lower_bound=1)
_WIDTH_MULTIPLIER = flags.DEFINE_float("width_multiplier", 0.25, "Width of the stylizer.")
_CONFIGS = ("stylize", "beam x1", "beam x2")


def _prepare(work_dir):
    """Writes the images, the .keras model and its SavedModel export; returns (images dir, .keras, export)."""
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel

    from export import saved_model  # pylint: disable=import-outside-toplevel
    from tf_nst import image_io  # pylint: disable=import-outside-toplevel
    from tf_nst import transformer  # pylint: disable=import-outside-toplevel

    images_dir = os.path.join(work_dir, "images")
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, _SIZE.value, dtype=np.float32)
    for index in range(_NUM_IMAGES.value):
        base = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], np.float32(40 * index % 255)), -1)
        image_io.write_image(os.path.join(images_dir, f"{index:03d}.jpg"), base + rng.normal(0, 12, base.shape))
    keras.utils.set_random_seed(0)
    model = transformer.build_transformer(width_multiplier=_WIDTH_MULTIPLIER.value)
    model_file = os.path.join(work_dir, "stylizer.keras")
    model.save(model_file)
    version_dir = saved_model.export(model, os.path.join(work_dir, "exports"), max_size=max(_SIZE.value, 16))
    return images_dir, model_file, version_dir


def _time(config, images_dir, model_file, version_dir, output_dir):
    from export import batch  # pylint: disable=import-outside-toplevel
    from tf_nst import stylize  # pylint: disable=import-outside-toplevel

    start = time.perf_counter()
    if config == "stylize":
        result = stylize.stylize_files(stylize.load_stylizer(model_file),
                                       stylize.plan_outputs(images_dir, output_dir))
        count = len(result.written)
    else:
        workers = [] if config == "beam x1" else ["--direct_num_workers=2",
                                                  "--direct_running_mode=multi_processing"]
        count = batch.run(version_dir, images_dir, output_dir, pipeline_args=workers).stylized
    elapsed = time.perf_counter() - start
    assert count == _NUM_IMAGES.value, (config, count)
    return elapsed


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # as main.py runs
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))  # workers
    logging.set_verbosity(logging.ERROR)  # Beam logs its workers' life at INFO
    work_dir = tempfile.mkdtemp(prefix="bench_batch-")
    try:
        images_dir, model_file, version_dir = _prepare(work_dir)
        times = {config: [] for config in _CONFIGS}
        for round_index in range(_ROUNDS.value):
            for config in _CONFIGS:
                output_dir = os.path.join(work_dir, f"out-{round_index}-{config.replace(' ', '')}")
                times[config].append(_time(config, images_dir, model_file, version_dir, output_dir))
                print(f"round {round_index + 1} {config:8s} {times[config][-1]:6.1f} s", flush=True)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(f"\n{_NUM_IMAGES.value} images of {_SIZE.value}x{_SIZE.value} px, width {_WIDTH_MULTIPLIER.value}, "
          f"{machine.describe()}; best of {_ROUNDS.value} "
          "round(s), model loading and pipeline start included\n")
    print("| run | wall | images/s | time vs stylize |\n| --- | --- | --- | --- |")
    reference = min(times["stylize"])
    for config in _CONFIGS:
        best = min(times[config])
        print(f"| {config} | {best:.1f} s | {_NUM_IMAGES.value / best:.1f} | {best / reference:.2f}x |")


if __name__ == "__main__":
    app.run(main)
