"""Tiled per-image transfer at high resolution: peak memory and wall time of one run.

The bundled content (chelsea) and style (hubble_deep_field) samples are resized to --size, as `main.py
--image_size` does with --style_scale=1, and stylised with the default loss (VGG19, L-BFGS) in --tile_size tiles.
Peak RSS is this process's own (ru_maxrss), TensorFlow and the model included. Random weights by default:
memory and time do not depend on them.

  python bench/bench_tiling.py                                # 4096 px in 512 px tiles, 1 step per tile
  python bench/bench_tiling.py --size=1024 --tile_size=256
  python bench/bench_tiling.py --size=1024 --tile_size=0      # whole image, for comparison
"""

import os
import resource
import sys
import time

from absl import app
from absl import flags

import machine  # beside this script

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_SIZE = flags.DEFINE_integer("size", 4096, "Longer side of the output in pixels.", lower_bound=64)
_TILE_SIZE = flags.DEFINE_integer("tile_size", 512, "Tile side in pixels (0: no tiles).", lower_bound=0)
_TILE_OVERLAP = flags.DEFINE_integer("tile_overlap", 64, "Pixels neighbouring tiles share.", lower_bound=0)
_STEPS_PER_TILE = flags.DEFINE_integer("steps_per_tile", 1, "Optimiser steps per tile.", lower_bound=1)
_OPTIMIZER = flags.DEFINE_enum("optimizer", "lbfgs", ["lbfgs", "adam"], "Optimiser.")
_BACKBONE = flags.DEFINE_enum("backbone", "vgg19", ["vgg19", "vgg16"], "Loss network.")
_WEIGHTS = flags.DEFINE_string("weights", "none", "'none' (random), 'imagenet', or a weights file.")


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _TileClock:
    """Reports each tile on stderr, so that a run of many minutes shows where it is."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self, index, num_tiles):
        print(f"tile {index}/{num_tiles} at {time.perf_counter() - self.start:.0f}s, peak RSS "
              f"{_peak_rss_mb():.0f} MB", file=sys.stderr, flush=True)


def main(argv):
    del argv
    from tf_nst import SAMPLES_DIR, image_io, optimize, vgg  # pylint: disable=import-outside-toplevel

    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    machine_line = f"{machine.describe()}, {memory_gb:.0f} GB memory"
    config = vgg.ExtractorConfig(backbone=_BACKBONE.value, weights=_WEIGHTS.value)
    extractor = vgg.build_extractor(config)
    content, style = (image_io.resize_max_side(image_io.read_image(os.path.join(SAMPLES_DIR, name)), _SIZE.value)
                      for name in ("chelsea.jpg", "hubble_deep_field.jpg"))
    transfer_config = optimize.TransferConfig(
        num_steps=_STEPS_PER_TILE.value, optimizer=_OPTIMIZER.value, init="content", num_scales=1,
        tile_size=_TILE_SIZE.value or None,
        tile_overlap=_TILE_OVERLAP.value)
    height, width = content.shape[:2]
    num_tiles = len(optimize.scale_tiles((height, width), transfer_config))
    before_mb = _peak_rss_mb()
    clock = _TileClock()
    result = optimize.transfer(extractor, content, style, transfer_config, config.style_layers,
                               config.content_layers, tile_callback=clock)
    seconds = time.perf_counter() - clock.start
    assert result.shape == (height, width, 3)

    print(f"machine: {machine_line}")
    print(f"{config.backbone} ({config.weights} weights), {transfer_config.optimizer}, style image "
          f"{style.shape[1]}x{style.shape[0]} px; peak RSS before the run (TensorFlow, model, images): "
          f"{before_mb:.0f} MB")
    print("| output | tile | overlap | tiles | steps per tile | wall (s) | peak RSS (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    tile = f"{_TILE_SIZE.value} px" if num_tiles else "none"
    print(f"| {width}x{height} | {tile} | {_TILE_OVERLAP.value if num_tiles else '-'} | {num_tiles or 1} | "
          f"{_STEPS_PER_TILE.value} | {seconds:.0f} | {_peak_rss_mb():.0f} |", flush=True)


if __name__ == "__main__":
    app.run(main)
