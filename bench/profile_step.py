"""Where one tf_nst transfer step spends its time: the step taken apart into nested pieces, each timed alone.

  forward      the VGG features of the image (to block5_conv1)
  + loss       the features, the Grams and the loss terms
  + gradient   the same with the gradient of the total with respect to the pixels (a GradientTape)
  adam step    make_step's Adam step (gradient, update, clip)
  lbfgs step   make_step's L-BFGS step (one or more loss evaluations, the two-loop recursion)

Each piece is a tf.function, timed over --steps calls after 2 warm-up calls; the differences between rows are
the pieces' own costs. 8-bit ImageNet VGG19 at --size px, random images. The PyTorch peer's same breakdown:
bench/torch_gatys.py --breakdown.

  python bench/profile_step.py --size=256 --steps=5
"""

import json
import os
import sys
import time

import numpy as np
from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's tf_nst

_SIZE = flags.DEFINE_integer("size", 256, "Square image size (pixels).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed calls per piece.")
_WEIGHTS = flags.DEFINE_string("weights", "imagenet_q8", "VGG19 weights.")


def _time(function, steps):
    for _ in range(2):
        np.asarray(function())
    start = time.perf_counter()
    for _ in range(steps):
        result = function()
    np.asarray(result)
    return 1000 * (time.perf_counter() - start) / steps


def main(argv):
    del argv
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tf_nst import optimize, style_targets, vgg  # pylint: disable=import-outside-toplevel

    config = vgg.ExtractorConfig(weights=_WEIGHTS.value)
    extractor = vgg.build_extractor(config)
    rng = np.random.default_rng(0)
    size = _SIZE.value
    content, style = rng.uniform(0, 255, (size, size, 3)), rng.uniform(0, 255, (size, size, 3))
    grams, content_features = style_targets.compute_targets(extractor, content, style, config.style_layers,
                                                            config.content_layers)
    image = tf.Variable(optimize.initial_image("content", content, style))
    loss_fn = optimize.make_loss_fn(extractor, grams, content_features,
                                    optimize.transfer_loss_weights(config.style_layers))

    @tf.function
    def forward():
        return tf.add_n([tf.reduce_sum(f) for f in extractor(image).values()])

    @tf.function
    def loss():
        return loss_fn(image)[0]

    @tf.function
    def gradient():
        with tf.GradientTape() as tape:
            tape.watch(image)
            total = loss_fn(image)[0]
        return tape.gradient(total, image)

    pieces = {"forward": forward, "+ loss": loss, "+ gradient": gradient}
    for name in ("adam", "lbfgs"):
        step = optimize.make_step(image, loss_fn, optimize.TransferConfig(optimizer=name))
        pieces[f"{name} step"] = lambda step=step: step()[0]
    rows = {name: _time(function, _STEPS.value) for name, function in pieces.items()}
    print(json.dumps({"size": size, "threads": tf.config.threading.get_intra_op_parallelism_threads(), **rows}))


if __name__ == "__main__":
    app.run(main)
