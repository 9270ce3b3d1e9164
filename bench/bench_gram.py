"""The transfer step with tf_nst's Gram matrix against the einsum Gram it replaced, beside the TF recipe.

All three steps live in one process and are timed in interleaved rounds (one call each per round, the order
reversed every other round), so that a busy machine slows them alike; the table gives the median per-round
ratio to the recipe, in wall time and in the process's CPU time (the steadier on a shared machine).

  tutorial  the TF tutorial's recipe (bench_transfer.py), einsum Grams
  einsum    tf_nst's Adam step with gram_matrix as einsum("bhwc,bhwd->bcd") / HW and autodiff's gradient
  adam      tf_nst's Adam step as it is (losses.gram_matrix: one matmul, a one-product gradient)

  python bench/bench_gram.py --size=512 --threads=1 --rounds=4
"""

import os
import sys
import time

import numpy as np
from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's tf_nst
import bench_transfer  # noqa: E402  pylint: disable=wrong-import-position

_SIZE = flags.DEFINE_integer("size", 256, "Square image size (pixels).")
_THREADS = flags.DEFINE_integer("threads", 1, "TensorFlow intra- and inter-op threads.")
_ROUNDS = flags.DEFINE_integer("rounds", 4, "Timed rounds (one call of each step per round).")


def _einsum_gram(features):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    features = tf.cast(features, tf.float32)
    shape = tf.shape(features)
    return tf.einsum("bhwc,bhwd->bcd", features, features) / tf.cast(shape[1] * shape[2], tf.float32)


def _steps(size):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tf_nst import losses, optimize, style_targets, vgg  # pylint: disable=import-outside-toplevel

    steps = {"tutorial": bench_transfer._tutorial_step(size, "imagenet_q8")}  # pylint: disable=protected-access
    config = vgg.ExtractorConfig(weights="imagenet_q8")
    extractor = vgg.build_extractor(config)
    rng = np.random.default_rng(0)
    content, style = rng.uniform(0, 255, (size, size, 3)), rng.uniform(0, 255, (size, size, 3))
    grams, content_features = style_targets.compute_targets(extractor, content, style, config.style_layers,
                                                            config.content_layers)
    gram_matrix = losses.gram_matrix
    for name, gram in (("einsum", _einsum_gram), ("adam", gram_matrix)):
        losses.gram_matrix = gram  # read when the step is traced, on its first call below
        image = tf.Variable(optimize.initial_image("content", content, style))
        loss_fn = optimize.make_loss_fn(extractor, grams, content_features,
                                        optimize.transfer_loss_weights(config.style_layers))
        step = optimize.make_step(image, loss_fn, optimize.TransferConfig(optimizer="adam"))
        steps[name] = lambda step=step: step()[0]
        float(steps[name]())
    losses.gram_matrix = gram_matrix
    return steps


def main(argv):
    del argv
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
    tf.config.threading.set_inter_op_parallelism_threads(_THREADS.value)
    steps = _steps(_SIZE.value)
    wall = {name: [] for name in steps}
    cpu = {name: [] for name in steps}
    for round_index in range(_ROUNDS.value):
        for name in list(steps)[::1 if round_index % 2 == 0 else -1]:
            float(steps[name]())  # settles the caches after the other steps
            start, cpu_start = time.perf_counter(), time.process_time()
            float(steps[name]())
            wall[name].append(1000 * (time.perf_counter() - start))
            cpu[name].append(1000 * (time.process_time() - cpu_start))
    ratio = lambda times, name: np.median(np.array(times[name]) / np.array(times["tutorial"]))  # noqa: E731
    print(f"{_SIZE.value} px, {_THREADS.value} thread(s), {_ROUNDS.value} rounds")
    print("| step | ms | vs tutorial | CPU ms | CPU vs tutorial |")
    print("| --- | --- | --- | --- | --- |")
    for name in steps:
        print(f"| {name} | {np.median(wall[name]):.0f} | {ratio(wall, name):.3f}x | {np.median(cpu[name]):.0f} | "
              f"{ratio(cpu, name):.3f}x |")


if __name__ == "__main__":
    app.run(main)
