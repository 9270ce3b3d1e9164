"""How much memory an untiled per-image transfer will need, and what the machine has: checked before any
model is built, so that a run too large for this machine stops at once with the --tile_size that fits.

No TensorFlow here.
"""

import math
import os

# Peak RSS of the command line (pooled CPU allocator) in float32, which needs more than mixed_bfloat16, fitted
# to bench/bench_memory.py's runs coarse to fine (--num_scales=auto; in float32 up to 17% above one scale) at 256 to
# 1024 px on 2026-12-01 (BENCHMARKS.md, "The memory check, refitted"): Adam 925 to 2551 MB and L-BFGS (100
# pairs) 1149 to 5164 MB, about 830 MB of TensorFlow, the model and the images plus 2.5 KB per output pixel
# (VGG activations and gradients up to the deepest layer used) and, for L-BFGS, 65 MB plus 37 B per pixel per
# curvature pair. The constants are rounded up from that fit: the estimate is 6% or more above every run
# measured, in either precision, at one scale or coarse to fine, whole or tiled.
BASE_BYTES = 950e6
BYTES_PER_PIXEL = 2700.0
LBFGS_BYTES_PER_PIXEL_PER_PAIR = 39.0
# A tiled run also keeps a few float copies of the whole image (result, start, content): 4 x 12 bytes.
TILED_BYTES_PER_PIXEL = 48.0
# Use at most this share of the available memory (other processes, fragmentation).
HEADROOM = 0.9

# One-pass stylisation (`stylize`) with a pretrained network: peak RSS of the command line, measured on
# 2026-12-03 (BENCHMARKS.md, "The memory check of stylize and train"): the style predictor at --style_size 256 to 3072
# (0.1 to 14 Mpx) 0.78 to 16.0 GB, about 700 MB plus 1080 B per style pixel; the transformer at 0.7 to 6.3 Mpx
# of content 1.1 to 4.8 GB, about 670 MB plus 680 B per content pixel. The style's embedding is computed before
# the content is stylised, so the larger of the two counts. Rounded up as above.
STYLIZE_BASE_BYTES = 800e6
STYLIZE_STYLE_BYTES_PER_PIXEL = 1200.0
STYLIZE_CONTENT_BYTES_PER_PIXEL = 750.0
# `video`'s fast path, defaults.VIDEO_PASSES passes of a pretrained network in flight: peak RSS of the command line,
# measured on 2026-12-07 (BENCHMARKS.md, "The memory check of video's fast path"): magenta-26 1.66 GB at 0.96 Mpx
# frames and 4.22-4.28 GB at 3.84 Mpx (about 800 MB plus 900 B per frame pixel), magenta-arbitrary 1.31 and
# 2.37-2.54 GB. Rounded up as above.
VIDEO_BASE_BYTES = 950e6
VIDEO_BYTES_PER_PIXEL = 1000.0
# Training (`train`, the Johnson network, float32): peak RSS of the command line over 3 steps, measured on
# 2026-12-03 (BENCHMARKS.md, "The memory check of stylize and train"): 1.3 GB at 1 x 256^2 crop pixels, 2.6 GB
# at 1 x 512^2, 7.4 GB at 4 x 512^2; about 910 MB plus 6.2 KB per pixel of the batch (the loss network's
# activations and gradients for the batch and its stylised copy, the transformer's). Rounded up as above.
TRAIN_BASE_BYTES = 1000e6
TRAIN_BYTES_PER_PIXEL = 6700.0


def per_pixel_bytes(optimizer, lbfgs_history):
    extra = LBFGS_BYTES_PER_PIXEL_PER_PAIR * lbfgs_history if optimizer == "lbfgs" else 0.0
    return BYTES_PER_PIXEL + extra


def estimate_peak_bytes(height, width, optimizer, lbfgs_history, tile_size=None, style_pixels=()):
    """Estimated peak memory of a transfer at height x width px, whole or in tile_size tiles.

    `style_pixels`: the pixels of each style image as the run resizes it. Their features are computed one at a
    time, before the optimisation and never tiled, so the largest counts where it needs more than the steps do
    (at BYTES_PER_PIXEL: a forward pass needs less, so the estimate stays above).
    """
    per_pixel = per_pixel_bytes(optimizer, lbfgs_history)
    style = max(style_pixels, default=0) * BYTES_PER_PIXEL
    if tile_size and max(height, width) > tile_size:
        tile_pixels = min(height, tile_size) * min(width, tile_size)
        steps = tile_pixels * per_pixel + height * width * TILED_BYTES_PER_PIXEL
    else:
        steps = height * width * per_pixel
    return BASE_BYTES + max(steps, style)


def fitting_tile_size(height, width, optimizer, lbfgs_history, available, multiple=32):
    """The largest tile size (a multiple of `multiple`) whose tiled run fits in `available` bytes, or None."""
    budget = HEADROOM * available - BASE_BYTES - height * width * TILED_BYTES_PER_PIXEL
    if budget <= 0:
        return None
    side = int(math.sqrt(budget / per_pixel_bytes(optimizer, lbfgs_history)))
    return side - side % multiple or None


def available_bytes(meminfo="/proc/meminfo", cgroup_dir="/sys/fs/cgroup"):
    """MemAvailable from /proc/meminfo, lowered to what a cgroup v2 memory limit leaves; None if unknown."""
    available = None
    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    try:
        with open(os.path.join(cgroup_dir, "memory.max"), encoding="ascii") as f:
            limit = f.read().strip()
        with open(os.path.join(cgroup_dir, "memory.current"), encoding="ascii") as f:
            current = int(f.read().strip())
        if limit.isdigit() and available is not None:
            available = min(available, int(limit) - current)
    except (OSError, ValueError):
        pass
    return available


def fits(height, width, optimizer, lbfgs_history, tile_size=None, available=None, style_pixels=()):
    """(fits, estimated bytes, available bytes or None): whether the estimate is within HEADROOM of what is free."""
    needed = estimate_peak_bytes(height, width, optimizer, lbfgs_history, tile_size, style_pixels)
    return within(needed, available), needed, available


def within(needed, available):
    """Whether `needed` bytes are within HEADROOM of `available` (None: unknown, so yes)."""
    return available is None or needed <= HEADROOM * available


def estimate_stylize_bytes(content_pixels, style_pixels, pretrained=True):
    """Estimated peak memory of `stylize` for the largest content and style image (pixels as resized).

    The pretrained networks' costs are measured. An AdaIN model's VGG encoder is counted at BYTES_PER_PIXEL
    (per-image transfer's forward and backward pass: above a forward pass); content_pixels is then not counted,
    as no one-style or AdaIN network's cost per content pixel has been measured.
    """
    if pretrained:
        return STYLIZE_BASE_BYTES + max(content_pixels * STYLIZE_CONTENT_BYTES_PER_PIXEL,
                                        style_pixels * STYLIZE_STYLE_BYTES_PER_PIXEL)
    return BASE_BYTES + style_pixels * BYTES_PER_PIXEL


def estimate_video_bytes(frame_pixels):
    """Estimated peak memory of `video`'s fast path with a pretrained network, for frames of `frame_pixels`."""
    return VIDEO_BASE_BYTES + frame_pixels * VIDEO_BYTES_PER_PIXEL


def estimate_train_bytes(batch_size, crop_size, style_pixels=0):
    """Estimated peak memory of `train` for batch_size crops of crop_size^2 pixels; the style's features
    (computed once, before the steps) count where they need more, at BYTES_PER_PIXEL. Measured on the Johnson
    network; the other architectures share its loss network, which dominates."""
    return TRAIN_BASE_BYTES + max(batch_size * crop_size**2 * TRAIN_BYTES_PER_PIXEL, style_pixels * BYTES_PER_PIXEL)
