"""L-BFGS's own cost, without a loss network: the direction alone, and whole steps on a cheap function.

For each image size: the time of `LBFGS._direction` at a part-full and a full history (the pairs are random, the
time does not depend on them), then whole steps on a separable quadratic plus a sine (about as cheap as a
function of the image can be) once the history is full, with the process's peak RSS. Run it from two checkouts
to compare two versions of tf_nst/lbfgs.py side by side.

  python bench/bench_lbfgs.py --sizes=256x170,512x341 --history=100
"""

import os
import resource
import sys
import time

import numpy as np
from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's tf_nst

import machine  # beside this script

_SIZES = flags.DEFINE_list("sizes", ["256x170", "512x341"], "Image sizes, WIDTHxHEIGHT (3 channels).")
_HISTORY = flags.DEFINE_integer("history", 100, "L-BFGS history (pairs).")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed calls per measurement.")


def _direction_ms(lbfgs_lib, tf, shape, history, count):
    """ms per LBFGS._direction call with `count` random pairs stored."""
    rng = np.random.default_rng(0)
    optimizer = lbfgs_lib.LBFGS(tf.Variable(tf.zeros(shape)), history=history)
    size = int(np.prod(shape))
    for _ in range(count):
        s = rng.standard_normal(size).astype(np.float32)
        optimizer._remember(tf.constant(s), tf.constant(2.0 * s))  # pylint: disable=protected-access
    grad = tf.constant(rng.standard_normal(size).astype(np.float32))
    direction = tf.function(lambda: optimizer._direction(grad))  # pylint: disable=protected-access
    direction()
    start = time.perf_counter()
    for _ in range(_REPEATS.value):
        direction().numpy()
    return 1000 * (time.perf_counter() - start) / _REPEATS.value


def _step_ms(lbfgs_lib, tf, shape, history):
    """ms per whole L-BFGS step once the history is full, and the peak RSS in MB."""
    x = tf.Variable(tf.zeros(shape))
    curvature = tf.constant(np.linspace(1.0, 3.0, int(np.prod(shape))).reshape(shape).astype(np.float32))
    target = tf.constant(np.random.default_rng(0).standard_normal(shape).astype(np.float32))

    def value_and_grad():
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(curvature * (x - target) ** 2) + tf.reduce_sum(tf.sin(x))
        return value, {}, tape.gradient(value, x)

    optimizer = lbfgs_lib.LBFGS(x, history=history)
    step = tf.function(lambda: optimizer.step(value_and_grad))
    for _ in range(history + 2):
        step()
    start = time.perf_counter()
    for _ in range(_REPEATS.value):
        float(step()[0])
    return 1000 * (time.perf_counter() - start) / _REPEATS.value, resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv):
    del argv
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tf_nst import lbfgs as lbfgs_lib  # pylint: disable=import-outside-toplevel

    history = _HISTORY.value
    print(f"machine: {machine.describe()}; history {history}")
    print("| size | direction ms, 10 pairs | direction ms, full | step ms, full (quadratic) | peak RSS so far (MB) |")
    print("| --- | --- | --- | --- | --- |", flush=True)
    for size in _SIZES.value:
        width, height = (int(side) for side in size.split("x"))
        shape = (1, height, width, 3)
        part, full = (_direction_ms(lbfgs_lib, tf, shape, history, count) for count in (min(10, history), history))
        step, peak = _step_ms(lbfgs_lib, tf, shape, history)
        print(f"| {size} | {part:.1f} | {full:.1f} | {step:.1f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    app.run(main)
