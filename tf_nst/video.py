"""Stylising a clip, frame by frame, consistently over time: the fast path (one forward pass per frame, blended
with the previous output warped by the optical flow) and the optimisation path (per-image transfer per frame
with Ruder et al. 2016's temporal term), resumable from a work folder of finished frames.
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import os
import time

import numpy as np
import tensorflow as tf

from tf_nst import defaults
from tf_nst import files
from tf_nst import flow as flow_lib
from tf_nst import image_io
from tf_nst import optimize
from tf_nst import outputs
from tf_nst import precision as precision_lib
from tf_nst import pretrained
from tf_nst import stylize
from tf_nst import video_io
from tf_nst.errors import UserInputError

METHODS = ("fast", "optimize")


class FastStep:
    """The fast path's frame: one pass of a stylizer, then, where the flow is reliable, `temporal_weight` of the
    previous output warped into this frame blended in.

    The blend always pulls towards this frame's own stylised picture (1 - temporal_weight of it, at least
    1 - VIDEO_MAX_BLEND), so on a still shot the output is an average of pictures of that shot, which cannot
    drift away from them as a running average of outputs alone would.
    """

    def __init__(self, model, style=None, temporal_weight=defaults.VIDEO_TEMPORAL_WEIGHT, pass_model=None):
        """`pass_model`: the same network at another precision (pretrained.load(name, "mixed_bfloat16")) for each
        frame's pass; the style's statistics, computed once, still come from `model`: the arbitrary network's
        style predictor in bfloat16 moved its pictures by 5.6 grey levels on average, its transformer alone by
        0.3 (BENCHMARKS.md, "Video")."""
        if not 0.0 <= temporal_weight <= defaults.VIDEO_MAX_BLEND:
            raise UserInputError(f"temporal_weight={temporal_weight!r} is not valid for the fast path; give a "
                                 f"blend from 0 (plain per-frame) to {defaults.VIDEO_MAX_BLEND}")
        stylize.check_model_kind(model, style)
        self.temporal_weight = float(temporal_weight)
        self._model, self._style = model, style
        self._statistics = None
        if isinstance(style, stylize.Style) and style.preserve_color == "none":
            self._statistics = stylize.style_statistics(model, style.images)
        # Where the statistics depend on the frame (colour preservation), the predictor runs per frame: float32.
        per_frame_statistics = isinstance(style, stylize.Style) and self._statistics is None
        self._pass_model = model if pass_model is None or per_frame_statistics else pass_model
        # Compiled once per frame size: eagerly, the pretrained network took 0.6-1 s a frame at 96x64 px on the
        # 2-core CPU, in a tf.function 0.04 s (0.1 s at 512x288).
        self._forward = tf.function(
            lambda image: stylize.stylize_float(self._pass_model, image, style, self._statistics))

    def stylize(self, frame):
        """The frame through the stylizer alone: uint8 [H, W, 3], as stylize.stylize_image gives it (within a
        grey level: the compiled graph may round differently)."""
        files.check_min_side("a frame", frame.shape[1], frame.shape[0])
        return np.asarray(image_io.to_uint8(self._forward(tf.convert_to_tensor(frame, tf.float32))))

    def __call__(self, frame, link=None):
        return self.blend(self.stylize(frame), link)

    def blend(self, styled, link):
        """`styled` (stylize's frame) with the link's warped previous output blended in where it is reliable."""
        if link is None:
            return styled
        warped, reliable = link
        styled = styled.astype(np.float32)
        blend = self.temporal_weight * reliable[..., None]
        return np.clip(np.round(styled + blend * (warped - styled)), 0, 255).astype(np.uint8)

    def identity(self):
        """Bytes that change with the network's weights, the style and the blend: the work folder's fingerprint."""
        policy = getattr(self._pass_model, "dtype_policy", None)
        digest = hashlib.sha256(f"fast {self.temporal_weight!r} {getattr(policy, 'name', policy)}".encode())
        for weight in self._model.weights:
            digest.update(np.asarray(weight.numpy()).tobytes())
        _update_style(digest, self._style)
        return digest.hexdigest()


def _update_style(digest, style):
    if style is None:
        return
    fields = {field.name: getattr(style, field.name) for field in dataclasses.fields(style)}
    for image in fields.pop("images", ()) or ():
        digest.update(np.asarray(image).tobytes())
    for mask in fields.pop("content_masks", None) or ():
        digest.update(np.asarray(mask).tobytes())
    digest.update(repr(fields).encode())


class OptimizeStep:
    """The optimisation path's frame (Ruder et al. 2016): per-image transfer (optimize.transfer); after the first
    frame, at one scale from the previous result warped where the flow is reliable (the frame itself where it
    is not), with a temporal term of weight `temporal_weight` pulling towards that warped result there."""

    def __init__(self, extractor, styles, config, layers, temporal_weight=defaults.VIDEO_OPTIMIZE_TEMPORAL_WEIGHT,
                 frame_steps=defaults.VIDEO_FRAME_STEPS):
        if not (np.isfinite(temporal_weight) and temporal_weight >= 0):
            raise UserInputError(f"temporal_weight={temporal_weight!r} is not valid; give a finite number >= 0")
        self.temporal_weight = float(temporal_weight)
        self._extractor, self._styles, self._layers = extractor, list(styles), layers
        self._first = config
        self._later = dataclasses.replace(config, num_scales=1, num_steps=frame_steps, tile_size=None)

    def __call__(self, frame, link=None):
        if link is None:
            return optimize.transfer(self._extractor, frame, self._styles, self._first, *self._layers)
        warped, reliable = link
        mask = reliable[..., None]
        start = mask * warped + (1.0 - mask) * np.asarray(frame, np.float32)
        temporal = optimize.TemporalTarget(warped, reliable, self.temporal_weight)
        return optimize.transfer(self._extractor, frame, self._styles, self._later, *self._layers, start=start,
                                 temporal=temporal)

    def identity(self):
        digest = hashlib.sha256(f"optimize {self.temporal_weight!r} {self._first!r} {self._later!r} "
                                f"{self._layers!r}".encode())
        for weight in self._extractor.weights:
            digest.update(np.asarray(weight.numpy()).tobytes())
        for image in self._styles:
            digest.update(np.asarray(image).tobytes())
        return digest.hexdigest()


class Consistency:
    """Runs a step (FastStep, OptimizeStep) frame after frame, giving each the link to the previous frame: the
    previous output warped into it by the input frames' flow, and where that flow is reliable. A step whose
    temporal_weight is 0 gets no link (no flow is computed): plain per-frame."""

    def __init__(self, step, estimator=None, previous=None):
        self.step = step
        self._estimator = estimator or flow_lib.FlowEstimator()
        self.previous = previous  # (input frame, output frame) of the last frame, or None

    def _linked(self):
        return self.previous is not None and self.step.temporal_weight > 0

    def __call__(self, frame):
        """The output of the next frame, computed now."""
        frame = np.asarray(frame, np.uint8)
        if not self._linked():
            output = self.step(frame, None)
        else:
            output = self.step(frame, self._link(self._estimator.frame_flow(self.previous[0], frame)))
        output = np.asarray(output, np.uint8)
        self.previous = (frame, output)
        return output

    def _link(self, frame_flow):
        return flow_lib.warp(self.previous[1], frame_flow.backward), frame_flow.reliable

    def outputs(self, frames):
        """Yields the output of each frame of the iterable `frames`, in order.

        A FastStep's frames are pipelined: its network pass depends on the frame alone and the flow on the input
        frames alone, so defaults.VIDEO_PASSES passes (and the flows, on a thread of their own) run ahead of the
        frame being blended; only the warp of the previous output and the blend wait for it. On the 2-core CPU
        two passes at once ran 1.2-1.4x the frames per second of one pass on both cores (BENCHMARKS.md,
        "Video"). An OptimizeStep's frame starts from the previous result, so its frames run one after another.
        """
        if not isinstance(self.step, FastStep):
            for frame in frames:
                yield self(frame)
            return
        passes = concurrent.futures.ThreadPoolExecutor(defaults.VIDEO_PASSES, thread_name_prefix="tf_nst_pass")
        flows = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tf_nst_flow")
        pending = collections.deque()
        previous_frame = self.previous[0] if self._linked() else None
        try:
            for frame in frames:
                frame = np.asarray(frame, np.uint8)
                link = (flows.submit(self._estimator.frame_flow, previous_frame, frame)
                        if previous_frame is not None and self.step.temporal_weight > 0 else None)
                pending.append((frame, passes.submit(self.step.stylize, frame), link))
                previous_frame = frame
                if len(pending) > defaults.VIDEO_PASSES:
                    yield self._finish(*pending.popleft())
            while pending:
                yield self._finish(*pending.popleft())
        finally:
            passes.shutdown(wait=True, cancel_futures=True)
            flows.shutdown(wait=True, cancel_futures=True)

    def _finish(self, frame, styled, frame_flow):
        """The output of a pipelined frame: its pass's picture blended with the previous output, warped."""
        link = self._link(frame_flow.result()) if frame_flow is not None else None
        output = np.asarray(self.step.blend(styled.result(), link), np.uint8)
        self.previous = (frame, output)
        return output


def pass_model(name, precision=defaults.PRECISION):
    """The network for FastStep's pass_model: built-in network `name` at `precision` ("auto": precision.resolve's
    choice on this machine, mixed_bfloat16 on a CPU with native bfloat16 and no GPU), or None where that is
    float32 or `name` is not a built-in network (a saved model runs as saved). With native bfloat16 the pipelined
    passes of magenta-26 at 512 px ran 1.1x (the fast path) to 1.24x (per-frame) as fast for the same picture
    (0.2 grey levels apart on average).

    Raises:
      UserInputError: another precision than float32 or "auto" for a model that is not built in.
    """
    pretrained.check_precision(name, precision)
    if not pretrained.is_builtin(name):
        return None
    chosen = precision_lib.resolve(precision)
    return pretrained.load(name, chosen) if chosen != "float32" else None


def share_cores(passes=defaults.VIDEO_PASSES, cores=None):
    """Gives each of the fast path's `passes` network passes in flight its share of the CPU's `cores` (default:
    those this process may use) as TensorFlow's intra-op threads, at least one. On the 2-core CPU two passes of
    one thread each ran magenta-26 at 512x340 px in 0.93x (float32) and 0.85x (bfloat16) the time a frame of two
    passes that each spread over both cores, whose threads wait on each other (BENCHMARKS.md, "Video").

    The setting is the whole process's, and TensorFlow fixes it when it starts: call this after importing
    TensorFlow and before its first op. Returns the threads set, or None where TensorFlow had already started.
    """
    cores = cores or len(os.sched_getaffinity(0))
    threads = max(1, cores // passes)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # "Intra op parallelism cannot be modified after initialization."
        return None
    return threads


def stylize_frames(frames, step):
    """A generator of stylised frames, each made consistent with the one before: for a Keras or tf.data user.

    Args:
      frames: an iterable of [H, W, 3] uint8 frames (arrays or eager tensors), all of one size.
      step: a FastStep or OptimizeStep.

    Yields:
      uint8 [H, W, 3] NumPy frames, one per input frame.
    """
    yield from Consistency(step).outputs(frames)


@dataclasses.dataclass(frozen=True)
class FrameProgress:
    """After each frame: `frame` finished (counting from 1) of `total` (None: not known), this run's frames per
    second and the seconds left at that pace (None without a total)."""

    frame: int
    total: int | None
    fps: float
    seconds_left: float | None


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """What a finished run wrote: the output, its frames, the packets that could not be decoded and were left
    out, whether audio was copied, and the frame this run started at (0, or where it resumed)."""

    output: str
    num_frames: int
    skipped_packets: int
    audio_copied: bool
    resumed_at: int


class VideoStopped(Exception):
    """The run stopped when asked to (Ctrl-C, SIGTERM) after finishing `frames_done` frames, kept in `work`."""

    def __init__(self, frames_done, work):
        super().__init__(f"stopped after {frames_done} frame(s); finished frames kept in {work!r}")
        self.frames_done, self.work = frames_done, work


def fingerprint(plan, step):
    """What a work folder's frames depend on: the input (its path, size and time), the frames' size and the
    step's identity. A change makes the folder another run's."""
    info = video_io.input_stamp(plan.info.path)
    return hashlib.sha256(f"{info} {plan.size} {step.identity()}".encode()).hexdigest()


def run(plan, step, should_stop=None, callback=None, replace=False):
    """Stylises the clip of a video_io.VideoPlan with `step` into plan.output, resuming from its work folder.

    Each finished frame is written to the work folder at once and handed to the output's writer, which encodes
    it on a thread while the next frame is stylised; the output is renamed into place (atomically) at the end,
    then the work folder is removed. A resumed run feeds the writer the work folder's frames first, so that the
    output is the file an uninterrupted run writes.

    Args:
      plan: from video_io.plan_video.
      step: a FastStep or OptimizeStep.
      should_stop: optional should_stop() -> bool, asked before each frame; True stops the run there.
      callback: optional callback(FrameProgress) after each frame.
      replace: whether an existing output file may be replaced.

    Returns:
      A VideoResult.

    Raises:
      VideoStopped: should_stop() said stop; the finished frames stay in the work folder.
      UserInputError: the work folder is another run's or in use; the input decodes to no frame.
    """
    work = video_io.WorkFolder(plan.work, fingerprint(plan, step))
    with outputs.folder_lock(plan.work, what="work folder"):
        done = work.prepare()
        reader = video_io.FrameReader(plan.info, plan.size)
        frames = iter(reader)
        consistency = Consistency(step, previous=_resumed(frames, done, work))
        started, index, stopped = time.monotonic(), done, []
        with video_io.StreamingWriter(plan.output, plan.info.fps, plan.info.path, replace) as writer, \
                contextlib.closing(consistency.outputs(_until(frames, should_stop, stopped))) as styled_frames:
            for finished in range(done):
                writer.put(work.read(finished))
            for output in styled_frames:
                work.write(index, output)
                writer.put(output)
                index += 1
                if callback is not None:
                    callback(_progress(index, done, plan.info.num_frames, time.monotonic() - started))
            if stopped:
                raise VideoStopped(index, plan.work)
            if index == 0:
                raise UserInputError(f"{plan.info.path!r} decoded to no frame ({reader.skipped} corrupt packet(s)); "
                                     "give a clip with at least one readable frame")
            audio = writer.finish()
    work.remove()
    return VideoResult(plan.output, index, reader.skipped, audio, done)


def _until(frames, should_stop, stopped):
    """The frames, until should_stop() (asked before each) says stop: then `stopped` gets an entry. The frames
    already taken are finished and written, so a stop comes after them."""
    for frame in frames:
        if should_stop is not None and should_stop():
            stopped.append(True)
            return
        yield frame


def _resumed(frames, done, work):
    """Consumes the `done` finished frames' inputs; returns (the last one's input, its output) or None."""
    previous = None
    for index in range(done):
        frame = next(frames, None)
        if frame is None:
            raise UserInputError(f"the work folder {work.path!r} holds {done} frames, more than the input has; "
                                 "remove it to start again")
        if index == done - 1:
            previous = (frame, work.read(index))
    return previous


def _progress(index, done, total, seconds):
    fps = (index - done) / seconds if seconds > 0 else 0.0
    left = (total - index) / fps if total and fps > 0 and total >= index else None
    return FrameProgress(index, total, fps, left)
