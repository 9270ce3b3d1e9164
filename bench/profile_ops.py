"""One transfer step op by op: where tf_nst's Adam and L-BFGS steps and the TF recipe's step spend their time.

Runs each step under TensorFlow's profiler (`tf.profiler.experimental`) on one thread, reads the trace back
from its XSpace protobuf (TensorFlow ships the message class), and sums the kernels' own times by op type and
by group: the convolutions (forward, with oneDNN's fused bias and ReLU), their input gradients, ReLU and
pooling gradients, the Gram products, the preprocessing, and the rest (loss terms, optimiser, copies). The
steps are those of bench/bench_transfer.py (the same 8-bit ImageNet VGG19, random images).

  python bench/profile_ops.py --sizes=256,512 --steps=3 [--profile_methods=tutorial,adam,lbfgs]
"""

import collections
import glob
import os
import sys
import tempfile

from absl import app
from absl import flags

_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_BENCH))  # this checkout's tf_nst
sys.path.insert(0, _BENCH)

import bench_transfer  # noqa: E402  (its --sizes and --steps serve here too)
import machine  # noqa: E402  beside this script

_METHODS = flags.DEFINE_list("profile_methods", ["tutorial", "adam", "lbfgs"], "Steps to profile: 'tutorial' "
                             "(the TF recipe), 'adam', 'lbfgs' (bench_transfer's steps).")
_TOP = flags.DEFINE_integer("top", 8, "Op types listed per step.")

# Op type (oneDNN's _Mkl/_MklNative prefixes removed) -> group.
_GROUPS = {
    "Conv2D": "convolutions", "FusedConv2D": "convolutions", "BiasAdd": "convolutions", "Relu": "convolutions",
    "MaxPool": "convolutions",
    "Conv2DBackpropInput": "convolution input gradients",
    "Conv2DBackpropFilter": "filter gradients (frozen VGG)", "Conv2DBackpropFilterWithBias":
        "filter gradients (frozen VGG)", "BiasAddGrad": "filter gradients (frozen VGG)",
    "ReluGrad": "ReLU and pooling gradients", "MaxPoolGrad": "ReLU and pooling gradients",
    "MatMul": "Gram products", "BatchMatMulV2": "Gram products", "Einsum": "Gram products",
    "ReverseV2": "preprocessing",
}
_ORDER = ("convolutions", "convolution input gradients", "filter gradients (frozen VGG)",
          "ReLU and pooling gradients", "Gram products", "preprocessing", "the rest")


def _op_type(name):
    op_type = name.rsplit(":", 1)[1]
    for prefix in ("_MklNative", "_Mkl", "_"):
        if op_type.startswith(prefix):
            return op_type[len(prefix):]
    return op_type


def _profile(step, steps):
    """{op type: ms per step} of `steps` calls of step() under the profiler, and the traced wall ms per step."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel

    for _ in range(2):
        np.asarray(step())
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            np.asarray(step())
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1], "rb") as file:
            space.ParseFromString(file.read())
    by_type = collections.Counter()
    walls = collections.Counter()  # per trace line: the traced functions' calls (one line holds them)
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name.startswith("EagerLocalExecute: __inference_"):  # one per step: the function's call
                    walls[line.id] += event.duration_ps / 1e9 / steps
                elif ":" in name and "::" not in name and " " not in name:  # "node:op type", one per kernel run
                    by_type[_op_type(name)] += event.duration_ps / 1e9 / steps
    wall = max(walls.values(), default=0.0)
    return by_type, wall


def main(argv):
    del argv
    os.environ.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1")
    print(f"machine: {machine.describe()}; one thread; {bench_transfer._STEPS.value} profiled steps each")  # pylint: disable=protected-access
    for size in (int(s) for s in bench_transfer._SIZES.value):
        results = {}
        for method in _METHODS.value:
            step = (bench_transfer._tutorial_step(size, "imagenet_q8") if method == "tutorial"  # pylint: disable=protected-access
                    else bench_transfer._tf_nst_step(method, size, "imagenet_q8"))  # pylint: disable=protected-access
            results[method] = _profile(step, bench_transfer._STEPS.value)
        print(f"\n{size} px: kernel ms per step by group (share of the step's kernel time)\n| group | "
              + " | ".join(results) + " |\n| --- |" + " --- |" * len(results))
        grouped = {m: collections.Counter() for m in results}
        for method, (by_type, _) in results.items():
            for op_type, ms in by_type.items():
                grouped[method][_GROUPS.get(op_type, "the rest")] += ms
        for group in _ORDER:
            print(f"| {group} | " + " | ".join(
                f"{grouped[m][group]:.0f} ({grouped[m][group] / sum(grouped[m].values()):.1%})" for m in results)
                + " |")
        print("| all kernels | " + " | ".join(f"{sum(grouped[m].values()):.0f}" for m in results) + " |")
        print("| the step's wall time | " + " | ".join(f"{results[m][1]:.0f}" for m in results) + " |")
        for method, (by_type, _) in results.items():
            rest = [(t, ms) for t, ms in by_type.most_common() if _GROUPS.get(t, "the rest") == "the rest"]
            print(f"{method}: the rest's largest op types: " + ", ".join(
                f"{t} {ms:.0f}" for t, ms in rest[:_TOP.value]))


if __name__ == "__main__":
    app.run(main)
