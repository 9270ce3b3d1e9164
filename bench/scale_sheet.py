"""Where a coarse-to-fine picture takes shape: each scale's last picture, one row per configuration.

Runs each --candidates configuration (bench_time_to_picture's syntax) on the first of --pairs at --size, keeps the
last picture of every scale, and writes --sheet: per row the content, then each scale's picture enlarged to the
full size (nearest neighbour, so the coarse pixels show). It prints each run's seconds and its final picture's
HED style ratio and content distance (bench_loss_weights._Judge). Not a timing benchmark: one run per row.

  python bench/scale_sheet.py --size=256 --pairs=astronaut:coffee --candidates=lbfgs:s300:c3:k100:init=noise \
      --sheet=docs/images/time_to_picture_256_astronaut_coffee_by_scale.jpg
"""

import os
import sys
import time

import numpy as np
from absl import app

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's tf_nst

import bench_loss_weights  # beside this script: the sheet writer
import bench_time_to_picture  # beside this script: the --candidates syntax and the setup

# --size, --pairs and --sheet are bench_loss_weights' flags, --candidates bench_time_to_picture's.
_CANDIDATES = bench_time_to_picture._CANDIDATES  # pylint: disable=protected-access


def _by_scale(extractor, layers, content, style, config):
    """(seconds, [each scale's last picture, coarsest first]) of one run."""
    from tf_nst import optimize  # pylint: disable=import-outside-toplevel

    last = {}  # height -> the latest picture at that scale
    start = time.perf_counter()
    optimize.transfer(extractor, content, style, config, *layers,
                      callback=lambda step, terms, image: last.__setitem__(image.shape[1], image[0].numpy()))
    return time.perf_counter() - start, [np.clip(last[height], 0, 255) for height in sorted(last)]


def main(argv):
    del argv
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    content, style, extractor, layers, grade = bench_time_to_picture.setup()
    print("| run | seconds | scale sizes | HED style ratio | HED content distance |")
    print("| --- | --- | --- | --- | --- |")
    to_config = bench_time_to_picture._config  # pylint: disable=protected-access
    rows = []
    for spec in _CANDIDATES.value:
        candidate_extractor = bench_time_to_picture._extractor(spec, extractor)  # pylint: disable=protected-access
        seconds, pictures = _by_scale(candidate_extractor, layers, content, style, to_config(spec))
        final = pictures[-1]
        sizes = ", ".join(f"{p.shape[1]}x{p.shape[0]}" for p in pictures)
        style_ratio, content_distance = grade(final)
        print(f"| {spec} | {seconds:.0f} | {sizes} | {style_ratio:.3f} | {content_distance:.3f} |", flush=True)
        # Nearest neighbour, so that a coarse scale's pixels stay visible.
        rows.append([content, *(tf.image.resize(p, final.shape[:2], method="nearest").numpy() for p in pictures)])
    sheet = bench_loss_weights._SHEET.value  # pylint: disable=protected-access
    if sheet:
        bench_loss_weights._write_sheet(sheet, rows)  # pylint: disable=protected-access


if __name__ == "__main__":
    app.run(main)
