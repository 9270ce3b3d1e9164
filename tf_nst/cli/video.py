"""`video`: stylises a clip frame by frame without flicker, into an H.264 MP4 (the input's audio copied), a GIF
or a folder of PNG frames.

--method=fast (the default): one pass of a stylizer per frame (the pretrained magenta-arbitrary with --style, or
any --model as `stylize` takes it), blended with the previous output warped by the optical flow where the flow
is reliable (--temporal_weight, 0: plain per-frame). --method=optimize: per-image transfer per frame, each
frame from the previous result warped, with a temporal loss (Ruder et al. 2016); minutes per frame on a CPU.
Finished frames go to a work folder beside the output; the same command run again resumes there, and Ctrl-C or
SIGTERM stops after the current frame. Inputs and outputs are checked before TensorFlow loads.
"""

import signal
import sys

from absl import flags

from tf_nst import defaults
from tf_nst import files
from tf_nst import memory
from tf_nst import optional
from tf_nst import pretrained
from tf_nst import signals
from tf_nst.cli import common
from tf_nst.cli import flag_groups
from tf_nst.errors import UserInputError

_INPUT = flag_groups.define_input()
_OUTPUT = flag_groups.define_output(default=None)
_OVERWRITE = flag_groups.define_overwrite()
_MAX_SIZE = flag_groups.define_max_size()
_MODEL = flag_groups.define_model()
_STYLE = flag_groups.define_style()
_STYLE_BLEND_WEIGHTS = flag_groups.define_style_blend_weights()
_ALPHA = flag_groups.define_alpha()
_STYLE_SIZE = flag_groups.define_style_size()
_BUILTIN_STYLE = flag_groups.define_builtin_style()
_NETWORK = flag_groups.define_loss_network()
_LOSS_WEIGHTS = flag_groups.define_loss_weights()
_METHOD = flags.DEFINE_enum(
    "method", "fast", ["fast", "optimize"],
    "fast: one pass of a network per frame, made consistent with the previous output; optimize: per-image "
    "transfer per frame with a temporal loss (Ruder et al. 2016), minutes per frame on a CPU.")
_TEMPORAL_WEIGHT = flags.DEFINE_float(
    "temporal_weight", None,
    f"How strongly each frame follows the previous output where the optical flow is reliable; 0: plain "
    f"per-frame. fast: the share of the previous output, warped, blended in (default "
    f"{defaults.VIDEO_TEMPORAL_WEIGHT:g}, at most {defaults.VIDEO_MAX_BLEND:g}); optimize: the weight of the "
    f"temporal loss (default {defaults.VIDEO_OPTIMIZE_TEMPORAL_WEIGHT:g}).", lower_bound=0.0)
_FRAME_STEPS = flags.DEFINE_integer(
    "frame_steps", defaults.VIDEO_FRAME_STEPS,
    "--method=optimize: optimiser steps of each frame after the first (one scale, from the previous result "
    "warped).", lower_bound=1, upper_bound=defaults.MAX_STEPS)
_FIRST_FRAME_STEPS = flags.DEFINE_integer(
    "first_frame_steps", defaults.NUM_STEPS,
    "--method=optimize: the first frame's steps at its finest scale (coarse-to-fine from noise, as `transfer`).",
    lower_bound=1, upper_bound=defaults.MAX_STEPS)

flags.adopt_module_key_flags(flag_groups)

_STYLE_FLAGS = (_STYLE, _STYLE_BLEND_WEIGHTS, _ALPHA, _STYLE_SIZE)
_FAST_FLAGS = (_MODEL, _ALPHA, _STYLE_SIZE, _BUILTIN_STYLE)
_OPTIMIZE_FLAGS = (_FRAME_STEPS, _FIRST_FRAME_STEPS, *(getattr(_NETWORK, name) for name in (
    "backbone", "weights", "style_layers", "content_layers", "style_layer_weights", "pooling")),
    _LOSS_WEIGHTS.content, _LOSS_WEIGHTS.style, _LOSS_WEIGHTS.tv)


def _given(holders):
    return [f"--{holder.name}" for holder in holders if holder.present]


def _check_fast(model):
    """The model's kind, after refusing the flags it does not take."""
    kind = common.model_kind(model)
    if _given(_OPTIMIZE_FLAGS):
        raise UserInputError(f"{', '.join(_given(_OPTIMIZE_FLAGS))} are for --method=optimize; the fast path "
                             "takes --model, --style, --temporal_weight and --precision")
    if kind == "arbitrary" and not _STYLE.present:
        raise UserInputError(f"--model={model!r} is an arbitrary-style model; give it --style=FILE "
                             "(comma-separated files to blend)")
    if kind == "multistyle" and not _BUILTIN_STYLE.present:
        raise UserInputError(f"--model={model!r} has 26 built-in styles; pick one with --builtin_style=7")
    wrong = {"arbitrary": _given([_BUILTIN_STYLE]), "multistyle": _given(_STYLE_FLAGS),
             "one-style": _given([*_STYLE_FLAGS, _BUILTIN_STYLE])}[kind]
    if wrong:
        raise UserInputError(f"--model={model!r} ({kind}) takes no {', '.join(wrong)}")
    pretrained.check_precision(model, _NETWORK.precision.value)
    if _TEMPORAL_WEIGHT.value is not None and _TEMPORAL_WEIGHT.value > defaults.VIDEO_MAX_BLEND:
        raise UserInputError(f"--temporal_weight={_TEMPORAL_WEIGHT.value:g} is past the fast path's blend of at "
                             f"most {defaults.VIDEO_MAX_BLEND:g}; give 0 (plain per-frame) to "
                             f"{defaults.VIDEO_MAX_BLEND:g}")
    return kind


def _check_optimize(plan):
    given = _given(_FAST_FLAGS)
    if given:
        raise UserInputError(f"{', '.join(given)} are for the fast path; --method=optimize takes --style and the "
                             "loss network's flags")
    width, height = plan.size
    fits, needed, available = memory.fits(height, width, defaults.OPTIMIZER, defaults.LBFGS_HISTORY,
                                          available=memory.available_bytes())
    if not fits:
        raise UserInputError(f"{width}x{height} px frames need about {needed / 1e9:.1f} GB to optimise, more than "
                             f"the {available / 1e9:.1f} GB free; give a smaller --max_size")


def _check_fast_memory(plan):
    """Refuses frames whose passes in flight would not fit in the available memory (memory.estimate_video_bytes,
    measured on the pretrained networks; a saved model's cost is unmeasured)."""
    width, height = plan.size
    needed, available = memory.estimate_video_bytes(width * height), memory.available_bytes()
    if not memory.within(needed, available):
        raise UserInputError(f"{width}x{height} px frames need about {needed / 1e9:.1f} GB for the fast path's "
                             f"{defaults.VIDEO_PASSES} passes in flight, more than the {available / 1e9:.1f} GB "
                             "free; give a smaller --max_size")


def _run():
    common.require_flags("video", _INPUT, _OUTPUT)
    optional.require("av", "the video command")
    optional.require("cv2", "the video command")
    from tf_nst import video_io  # pylint: disable=import-outside-toplevel

    model = _MODEL.value or pretrained.DEFAULT
    kind = _check_fast(model) if _METHOD.value == "fast" else None
    style_paths = _STYLE.value.split(",") if kind in ("arbitrary", None) else []
    for path in style_paths:
        files.read_image(path)  # a bad style file is an error before TensorFlow loads
    plan = video_io.plan_video(_INPUT.value, _OUTPUT.value, _MAX_SIZE.value or None, _OVERWRITE.value)
    if _METHOD.value == "optimize":
        _check_optimize(plan)
    elif pretrained.is_builtin(model):
        _check_fast_memory(plan)
    common.import_tensorflow()
    if kind:
        from tf_nst import video  # pylint: disable=import-outside-toplevel

        video.share_cores()
        if pretrained.is_builtin(model):
            common.warn_slow_settings(_NETWORK.precision.value)
    step = _fast_step(model, kind, style_paths) if kind else _optimize_step(style_paths, plan.size)
    return _stylize(plan, step)


def _fast_step(model, kind, style_paths):
    from tf_nst import stylize  # pylint: disable=import-outside-toplevel
    from tf_nst import video  # pylint: disable=import-outside-toplevel

    style = None
    if kind == "multistyle":
        style = stylize.BuiltinStyle(stylize.builtin_weights(_BUILTIN_STYLE.value))
    elif kind == "arbitrary":
        size = _STYLE_SIZE.value or (defaults.PRETRAINED_STYLE_SIZE if pretrained.is_builtin(model)
                                     else defaults.STYLE_SIZE)
        weights = _STYLE_BLEND_WEIGHTS.value
        style = stylize.Style(stylize.read_styles(style_paths, size), tuple(map(float, weights)) if weights else None,
                              _ALPHA.value)
    weight = defaults.VIDEO_TEMPORAL_WEIGHT if _TEMPORAL_WEIGHT.value is None else _TEMPORAL_WEIGHT.value
    return video.FastStep(stylize.load_stylizer(model), style, weight,
                          pass_model=video.pass_model(model, _NETWORK.precision.value))


def _optimize_step(style_paths, size):
    from tf_nst import api  # pylint: disable=import-outside-toplevel
    from tf_nst import image_io  # pylint: disable=import-outside-toplevel
    from tf_nst import optimize  # pylint: disable=import-outside-toplevel
    from tf_nst import vgg  # pylint: disable=import-outside-toplevel
    from tf_nst import video  # pylint: disable=import-outside-toplevel

    extractor_config = _NETWORK.extractor_config()
    given = _LOSS_WEIGHTS.given()
    loss_weights = optimize.transfer_loss_weights(_NETWORK.style_layers.value, given.get("content"),
                                                  given.get("style"), given.get("tv"),
                                                  _NETWORK.style_layer_weights.value)
    config = optimize.TransferConfig(num_steps=_FIRST_FRAME_STEPS.value, loss_weights=loss_weights,
                                     style_blend_weights=tuple(map(float, _STYLE_BLEND_WEIGHTS.value or ())) or None)
    extractor_config = api.extractor_for_loss(extractor_config, config)
    styles = [image_io.resize_max_side(files.read_image(path), max(size)) for path in style_paths]
    extractor = vgg.build_extractor(extractor_config)
    weight = (defaults.VIDEO_OPTIMIZE_TEMPORAL_WEIGHT if _TEMPORAL_WEIGHT.value is None
              else _TEMPORAL_WEIGHT.value)
    return video.OptimizeStep(extractor, styles, config,
                              (extractor_config.style_layers, extractor_config.content_layers), weight,
                              _FRAME_STEPS.value)


def _stylize(plan, step):
    from tf_nst import video  # pylint: disable=import-outside-toplevel

    tty = sys.stdout.isatty()

    def report(progress):
        total = progress.total
        every = 1 if tty or not total else max(1, total // 20)
        if progress.frame % every and progress.frame != total:
            return
        left = f", about {progress.seconds_left:.0f} s left" if progress.seconds_left is not None else ""
        line = f"frame {progress.frame}/{total or '?'}, {progress.fps:.2f} fps{left}"
        print(f"\r{line}" if tty else line, end="" if tty else "\n", flush=True)

    with signals.StopSignals() as stop:
        try:
            result = video.run(plan, step, should_stop=stop.requested, callback=report, replace=_OVERWRITE.value)
        except video.VideoStopped as e:
            common.error(f"video interrupted by {signal.Signals(stop.signum).name} after frame "
                         f"{e.frames_done}; the finished frames are kept in {e.work!r}: run the same command "
                         "again to resume there")
            return 128 + stop.signum
    if tty:
        print()
    if result.skipped_packets:
        common.warn(f"{result.skipped_packets} corrupt packet(s) of {plan.info.path!r} could not be decoded and "
                    "were left out")
    audio = ", audio copied" if result.audio_copied else ""
    resumed = f", resumed at frame {result.resumed_at + 1}" if result.resumed_at else ""
    print(f"tf-nst: wrote {result.output} ({result.num_frames} frames at {plan.size[0]}x{plan.size[1]} px, "
          f"{float(plan.info.fps):g} fps{audio}{resumed})", flush=True)
    return 0


def main(argv):
    return common.run_command("video", _run, argv)
