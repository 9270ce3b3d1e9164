"""`transfer`: stylises one content image by optimising its pixels (Gatys et al. 2016, 2017).

Every input image, mask and output path is checked before TensorFlow loads; user errors are one line on
stderr and exit status 2, and no file is written.
"""

import dataclasses
import math
import os
import time

from absl import flags

from tf_nst import SAMPLES_DIR
from tf_nst import defaults
from tf_nst import files
from tf_nst import memory
from tf_nst import outputs
from tf_nst import pretrained
from tf_nst import precision as precision_lib
from tf_nst import signals
from tf_nst import sizes
from tf_nst import vgg_layers
from tf_nst.cli import common
from tf_nst.cli import flag_groups
from tf_nst.errors import UserInputError
from tf_nst.errors import WriteError

_INIT_MODES = ("auto", "content", "noise", "style", "pretrained")

_CONTENT = flags.DEFINE_string("content", os.path.join(SAMPLES_DIR, "chelsea.jpg"), "Content image file.")
_STYLE = flag_groups.define_style()
_OUTPUT = flag_groups.define_output()
_OVERWRITE = flag_groups.define_overwrite()
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", defaults.IMAGE_SIZE, "Longer side of the output in pixels; the content image is resized to it. "
    "A size whose untiled run would not fit in this machine's memory is refused with the --tile_size that fits.",
    lower_bound=16, upper_bound=defaults.MAX_IMAGE_SIZE)
_NETWORK = flag_groups.define_loss_network()
_WEIGHTS = flag_groups.define_loss_weights()
_SEED = flag_groups.define_seed()
_PRINT_EVERY = flag_groups.define_print_every()

_OPTIMIZER = flags.DEFINE_enum("optimizer", defaults.OPTIMIZER, ["lbfgs", "adam"], "Optimiser.")
_NUM_STEPS = flags.DEFINE_integer(
    "num_steps", defaults.NUM_STEPS, "Optimiser iterations at the finest scale (the full size); each coarser "
    "scale runs --coarse_steps steps before it, and the first line and the progress count them all (at the "
    f"defaults {defaults.NUM_STEPS + 3 * defaults.COARSE_STEPS} from noise: {defaults.NUM_STEPS} + 3 x "
    f"{defaults.COARSE_STEPS} over 4 scales at 512 px; {defaults.NUM_STEPS} from the pretrained picture, at one "
    "scale). --tolerance may stop a scale sooner.", lower_bound=1,
    upper_bound=defaults.MAX_STEPS)
_LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", defaults.LEARNING_RATE, "Adam step size in pixel units ([0, 255] images).", lower_bound=0.0)
_TOLERANCE = flags.DEFINE_float(
    "tolerance", defaults.TOLERANCE, "Stop a scale early once its total loss improved by less than this fraction "
    f"over the last {defaults.TOLERANCE_WINDOW} steps (--num_steps and --coarse_steps stay the most a scale runs); "
    "0 runs every step.",
    lower_bound=0.0)
_LBFGS_HISTORY = flags.DEFINE_integer(
    "lbfgs_history", defaults.LBFGS_HISTORY, "How many curvature pairs L-BFGS keeps.", lower_bound=1,
    upper_bound=defaults.MAX_LBFGS_HISTORY)
_INIT = flags.DEFINE_string(
    "init", defaults.INIT, "Starting image: 'auto' ('pretrained' where that network is installed and the run "
    "is not tiled, else 'noise'), 'noise' (Gaussian, seeded by --seed), 'content', 'style', 'pretrained' (the "
    "pretrained magenta-arbitrary network's one-pass picture of the content in the style, blends and masks "
    "included; --num_scales=auto is then 1), or a path to an image file.")
_STYLE_BLEND_WEIGHTS = flag_groups.define_style_blend_weights()
_STYLE_SCALE = flags.DEFINE_float(
    "style_scale", 1.0, "Style images are resized to style_scale * --image_size (longer side), at most "
    f"{defaults.MAX_IMAGE_SIZE} px; counted by the memory check.", lower_bound=0.01,
    upper_bound=defaults.MAX_STYLE_SCALE)
_NUM_SCALES = flags.DEFINE_string(
    "num_scales", defaults.NUM_SCALES, "Coarse-to-fine: optimise at this many sizes, each --scale_factor times the "
    f"last; 'auto': down to about {defaults.AUTO_SCALE_SIZE} px (3 scales at 256 px, 4 at 512 px).")
_SCALE_FACTOR = flags.DEFINE_float("scale_factor", 2.0, "Size ratio between scales.", lower_bound=1.01)
_COARSE_STEPS = flags.DEFINE_integer(
    "coarse_steps", defaults.COARSE_STEPS, "Iterations at each coarser scale.", lower_bound=1,
    upper_bound=defaults.MAX_STEPS)
_CONTENT_DETAIL = flags.DEFINE_bool(
    "content_detail", defaults.CONTENT_DETAIL, "Coarse-to-fine: start each finer scale from the coarser result "
    "upsampled plus the content's detail that the coarser scale could not hold (more of the content's fine detail "
    "at about the same style); --nocontent_detail: the coarser result upsampled only (also for a texture-only "
    "run, --content_weight=0).")
_PRESERVE_COLOR = flag_groups.define_preserve_color()
_CONTENT_MASK = flag_groups.define_content_mask()
_STYLE_MASKS = flags.DEFINE_list(
    "style_masks", None,
    "One grayscale mask file per --style file, each its style image's size: the white region supplies that "
    "style's statistics (default: the whole style image).")
_COLOR_TRANSFORM = flags.DEFINE_enum(
    "color_transform", "chol", ["chol", "sym"], "Linear map for --preserve_color=histogram.")
_JIT_COMPILE = flags.DEFINE_bool("jit_compile", False, "Compile the optimisation step with XLA.")
_SAVE_EVERY = flags.DEFINE_integer(
    "save_every", 0, "Also write a snapshot <output>_stepN.<ext> every N steps (0: never).", lower_bound=0,
    upper_bound=defaults.MAX_STEPS)
_TILE_SIZE = flags.DEFINE_integer(
    "tile_size", 0, "High resolution in bounded memory: optimise scales larger than this many pixels in "
    "overlapping tiles of this size, one after another (0: whole images). At least 64 and more than twice "
    "--tile_overlap.", lower_bound=0, upper_bound=defaults.MAX_IMAGE_SIZE)
_TILE_OVERLAP = flags.DEFINE_integer(
    "tile_overlap", 64, "Pixels that neighbouring tiles share at least; tiles are blended across them.",
    lower_bound=0, upper_bound=defaults.MAX_IMAGE_SIZE)

flags.adopt_module_key_flags(flag_groups)
flags.register_validator(
    "learning_rate", lambda value: value > 0, message="--learning_rate must be greater than 0")
flags.register_validator(
    "num_scales", lambda value: value == "auto" or (value.isdigit() and int(value) >= 1),
    message="--num_scales must be 'auto' or a whole number >= 1")
flags.register_validator(
    "tolerance", math.isfinite, message="--tolerance must be a finite fraction >= 0 (0: run every step)")
flags.register_validator(
    "init", lambda value: value in _INIT_MODES or os.path.isfile(value),
    message="--init must be 'auto', 'content', 'noise', 'style', 'pretrained' or an existing image file")


@flags.multi_flags_validator(["tile_size", "tile_overlap"])
def _check_tiles(values):
    from tf_nst import tiling  # pylint: disable=import-outside-toplevel

    size, overlap = values["tile_size"], values["tile_overlap"]
    if size and (size < tiling.MIN_TILE_SIZE or size <= 2 * overlap):
        raise flags.ValidationError(
            f"--tile_size={size} with --tile_overlap={overlap} does not work: use --tile_size=0 (no tiles) or a "
            f"tile of at least {tiling.MIN_TILE_SIZE} px and more than twice the overlap "
            f"(--tile_size={max(tiling.MIN_TILE_SIZE, 2 * overlap + 1)} or more)")
    return True


class _Inputs:
    """The command's images, read and checked before TensorFlow loads (Pillow only)."""

    def __init__(self):
        self.content = files.read_image(_CONTENT.value)
        self.style_paths = _STYLE.value.split(",")
        self.styles = [files.read_image(path) for path in self.style_paths]
        self.content_masks = _read_masks(_CONTENT_MASK, [(_CONTENT.value, self.content)] * len(self.styles),
                                         "content")
        self.style_masks = _read_masks(_STYLE_MASKS, list(zip(self.style_paths, self.styles)), "style")
        if _INIT.value == "pretrained":
            pretrained.check_available(pretrained.ARBITRARY)
        init_path = _INIT.value if _INIT.value not in _INIT_MODES else None
        if init_path:
            files.read_image(init_path)
        self.paths = (_CONTENT.value, *self.style_paths, init_path, *(_CONTENT_MASK.value or ()),
                      *(_STYLE_MASKS.value or ()))
        files.check_output_path(_OUTPUT.value, self.paths, _OVERWRITE.value)
        outputs.check_writable_files([_OUTPUT.value], "--output")


def _start_text(init):
    """How the first progress line names the starting image."""
    return {"noise": "noise", "content": "the content", "style": "the style",
            "pretrained": f"the {pretrained.ARBITRARY} picture"}.get(init, repr(init))


def _read_masks(holder, images, kind):
    """The masks of --content_mask or --style_masks, checked against their [(path, image)] at file size.

    Returns:
      A tuple of float32 [H, W] masks in [0, 1], one per style, or None without the flag.
    """
    if holder.value is None:
        return None
    if len(holder.value) != len(images):
        raise UserInputError(f"--{holder.name} has {len(holder.value)} file(s) but --style has {len(images)}; "
                             "give one mask per --style file, in the same order")
    masks = []
    for mask_path, (image_path, image) in zip(holder.value, images):
        try:
            mask = files.read_mask(mask_path)
        except UserInputError as e:
            raise UserInputError(f"--{holder.name}: {e}") from None
        if mask.shape != image.shape[:2]:
            raise UserInputError(
                f"{kind} mask {mask_path!r} is {mask.shape[1]}x{mask.shape[0]} but the {kind} image "
                f"{image_path!r} is {image.shape[1]}x{image.shape[0]}; a mask must be the size of its image")
        if kind == "style" and not mask.max() > 0:
            raise UserInputError(f"style mask {mask_path!r} is all black: it selects no part of the style image "
                                 f"{image_path!r}; paint the region to take the style from white")
        masks.append(mask)
    return tuple(masks)


def _transfer_config(inputs):
    from tf_nst import optimize  # pylint: disable=import-outside-toplevel

    return optimize.TransferConfig(
        num_steps=_NUM_STEPS.value, optimizer=_OPTIMIZER.value, learning_rate=_LEARNING_RATE.value,
        lbfgs_history=_LBFGS_HISTORY.value, tolerance=_TOLERANCE.value, init=_INIT.value, seed=_SEED.value,
        style_blend_weights=_float_tuple(_STYLE_BLEND_WEIGHTS.value), num_scales=_num_scales(),
        scale_factor=_SCALE_FACTOR.value, coarse_steps=_COARSE_STEPS.value,
        content_detail=_CONTENT_DETAIL.value, jit_compile=_JIT_COMPILE.value,
        preserve_color=_PRESERVE_COLOR.value, color_transform=_COLOR_TRANSFORM.value,
        content_masks=inputs.content_masks, style_masks=inputs.style_masks,
        loss_weights=optimize.transfer_loss_weights(
            _NETWORK.style_layers.value, layer_weights=_NETWORK.style_layer_weights.value, **_WEIGHTS.given()),
        tile_size=_TILE_SIZE.value or None,
        tile_overlap=_TILE_OVERLAP.value)


def _num_scales():
    return "auto" if _NUM_SCALES.value == "auto" else int(_NUM_SCALES.value)


def _float_tuple(values):
    return None if values is None else tuple(float(v) for v in values)


def _snapshot_paths(inputs, num_tiles, total_steps):
    """{step: path} of the --save_every snapshots, each checked like --output."""
    if num_tiles and _SAVE_EVERY.value:
        raise UserInputError(
            f"--save_every={_SAVE_EVERY.value} does not work with tiles (--tile_size={_TILE_SIZE.value} is below "
            f"--image_size={_IMAGE_SIZE.value}): a snapshot would hold one tile; drop one of the two flags")
    if not _SAVE_EVERY.value:
        return {}
    stem, extension = os.path.splitext(_OUTPUT.value)
    snapshots = {step: f"{stem}_step{step:05d}{extension}"
                 for step in range(_SAVE_EVERY.value, total_steps, _SAVE_EVERY.value)}
    for path in snapshots.values():
        files.check_output_path(path, inputs.paths, _OVERWRITE.value)
    return snapshots


class _ProgressReporter:
    """Prints the loss terms (and the tile, when tiled) after the first step and every `print_every` steps, with
    the time per step and the time left, and writes the snapshots.

    The clock runs only while steps run: from each scale's or tile's begin (optimize.transfer's begin_callback,
    once its targets are computed and its step traced and warmed up) to its steps' ends. So the first step's time
    is one step's, and the time left is right from the first line. It weighs each step still planned by its cost
    (optimize.step_costs: about the pixels it optimises), at the time per unit of cost of the current scale's (or
    tile's) steps, so that cheap coarse-scale steps do not make the finest scale's look near, and a coarse scale's
    higher cost per pixel is forgotten once a finer one runs. The time per step shown is the current scale's.

    The scales still to begin add their set-up to the time left (1 to 2 s a scale on the 2-core CPU, where a
    256 px run's first line said 15 s left without it and 19.6 s remained). Each is estimated from the latest
    scale's, measured from its start (start(), or the last step before it) to its begin: a fixed part (tracing)
    plus its first step's cost at the current rate (its targets and its warm-up step grow with its pixels)."""

    def __init__(self, costs, print_every, snapshots, scale_starts=(0,), replace=True):
        self._costs = costs
        self._replace = replace  # --overwrite: snapshots that appeared meanwhile may be replaced
        self._scale_starts = scale_starts  # optimize.scale_starts: the steps counted before each scale
        self._num_steps = len(costs)
        self._print_every = print_every
        self._snapshots = snapshots
        self._converged_note = ""  # set by on_converged just before the step's __call__
        self._tile = ""
        self._clock = None  # when the current step started: a begin, or the end of the step before
        self._seconds = 0.0  # time spent in the current scale's (or tile's) steps
        self._cost_run = 0.0  # their cost
        self._steps_run = 0  # and their number
        self._set_up_from = None  # when the latest scale's set-up started: start(), or its last step's end
        self._set_up = None  # (seconds, its first step's index) of the latest scale's set-up

    def start(self):
        """The run starts: the first scale's set-up counts from here."""
        self._set_up_from = time.perf_counter()

    def on_begin(self, step, num_steps):  # pylint: disable=unused-argument
        """A scale or tile is ready: its first step's time counts from here, not its set-up's."""
        self._clock = time.perf_counter()
        if step in self._scale_starts and self._set_up_from is not None:  # not a tile after a scale's first
            self._set_up = (self._clock - self._set_up_from, step)
        self._seconds, self._cost_run, self._steps_run = 0.0, 0.0, 0

    def on_tile(self, index, num_tiles):
        self._tile = f"  tile {index}/{num_tiles}"

    def __call__(self, step, terms, image):
        from tf_nst import image_io  # pylint: disable=import-outside-toplevel

        self._seconds += time.perf_counter() - self._clock
        self._cost_run += self._costs[step - 1]
        self._steps_run += 1
        if step in self._snapshots:
            image_io.write_image(self._snapshots[step], image[0], replace=self._replace)
        note, self._converged_note = self._converged_note, ""
        if note or step == self._num_steps or (self._print_every and (step == 1 or step % self._print_every == 0)):
            self._print(step, terms, note)
        self._clock = self._set_up_from = time.perf_counter()  # the snapshot and report are not the next step's

    def on_converged(self, step, convergence):  # pylint: disable=unused-argument
        """--tolerance ends a scale (or tile) at this step: its progress line, printed next, says so."""
        self._converged_note = (f"  converged: loss improved {100 * convergence.improvement:.2g}% over "
                                f"{convergence.window} steps (< --tolerance={convergence.tolerance:g})")

    def _print(self, step, terms, note=""):
        per_step, per_cost = self._seconds / self._steps_run, self._seconds / self._cost_run
        eta = per_cost * sum(self._costs[step:]) + self._set_up_left(step, per_cost)
        values = "  ".join(f"{name} {float(value):.4g}" for name, value in terms.items())
        print(f"step {step:>{len(str(self._num_steps))}}/{self._num_steps}{self._tile}  {values}  "
              f"{1000 * per_step:.0f} ms/step  eta {_duration(eta)}{note}", flush=True)

    def _set_up_left(self, step, per_cost):
        """The set-up time of the scales that begin after `step` steps or later, at `per_cost` s per unit cost."""
        if self._set_up is None:
            return 0.0
        seconds, first = self._set_up
        fixed = max(0.0, seconds - per_cost * self._costs[first])
        return sum(fixed + per_cost * self._costs[start] for start in self._scale_starts if start >= step)


def _duration(seconds):
    """'42s', '7m05s' or '1h02m': the ETA as a person reads it."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _scaled_size(image, max_side):
    return sizes.scaled_size(*image.shape[:2], max_side)


def _check_image_sizes(inputs):
    """The one minimum-size rule (sizes.sized_config, which api.sized_images applies again after TensorFlow
    loads), before TensorFlow: the content and styles after --image_size and --style_scale, at the coarsest
    scale, against the layers the loss uses. An unknown layer name is refused first, as such."""
    vgg_layers.validate_layers(_NETWORK.backbone.value, _NETWORK.style_layers.value, "style_layers")
    vgg_layers.validate_layers(_NETWORK.backbone.value, _NETWORK.content_layers.value, "content_layers")
    layers = sizes.used_transfer_layers(_NETWORK.style_layers.value, _NETWORK.content_layers.value,
                                        _NETWORK.style_layer_weights.value)
    config = _ScaleConfig(num_scales=_num_scales(), scale_factor=_SCALE_FACTOR.value, init=_INIT.value,
                          tile_size=_TILE_SIZE.value)
    shapes = [inputs.content.shape[:2], *(style.shape[:2] for style in inputs.styles)]
    sizes.sized_config(shapes, _IMAGE_SIZE.value, _STYLE_SCALE.value, config, layers,
                       names=[_CONTENT.value, *inputs.style_paths])


@dataclasses.dataclass(frozen=True)
class _ScaleConfig:
    """What of optimize.TransferConfig the size rule reads."""

    num_scales: object
    scale_factor: float
    init: str
    tile_size: int = None


def _check_memory(inputs):
    """Refuses, before anything is built, a run whose estimated peak memory exceeds what is available, the
    style images (at --style_scale) counted."""
    height, width = _scaled_size(inputs.content, _IMAGE_SIZE.value)
    styles = _check_style_sizes(inputs)
    optimizer, history, tile_size = _OPTIMIZER.value, _LBFGS_HISTORY.value, _TILE_SIZE.value or None
    available = memory.available_bytes()
    fits, needed, _ = memory.fits(height, width, optimizer, history, tile_size, available)
    if fits:
        _check_style_memory(styles, (height, width), available)
        return
    tiled = f"in tiles of {tile_size} px" if tile_size and max(height, width) > tile_size else "untiled"
    tile = memory.fitting_tile_size(height, width, optimizer, history, available)
    from tf_nst import tiling  # pylint: disable=import-outside-toplevel  # NumPy only

    usable = tile and tile >= tiling.MIN_TILE_SIZE and tile > 2 * _TILE_OVERLAP.value
    advice = f"pass --tile_size={tile}" if usable else "lower --image_size"
    raise UserInputError(
        f"--image_size={_IMAGE_SIZE.value} ({width}x{height} px, {tiled}, {optimizer}) needs about "
        f"{needed / 1e9:.1f} GB by tf_nst's estimate but {available / 1e9:.1f} GB is available; {advice}")


def _check_style_sizes(inputs):
    """[(path, (height, width))] of the style images as the run resizes them; refuses a side past
    MAX_IMAGE_SIZE."""
    side = max(1, round(_STYLE_SCALE.value * _IMAGE_SIZE.value))
    if side > defaults.MAX_IMAGE_SIZE:
        raise UserInputError(
            f"--style_scale={_STYLE_SCALE.value:g} at --image_size={_IMAGE_SIZE.value} makes the style images "
            f"{side} px on their longer side; it can be at most {defaults.MAX_IMAGE_SIZE} px: give --style_scale="
            f"{defaults.MAX_IMAGE_SIZE / _IMAGE_SIZE.value:.3g} or less")
    return [(path, _scaled_size(style, side)) for path, style in zip(inputs.style_paths, inputs.styles)]


def _check_style_memory(styles, content_size, available):
    """Refuses a style image whose features (computed before the steps, never tiled) would not fit."""
    for path, (height, width) in styles:
        fits, needed, _ = memory.fits(*content_size, _OPTIMIZER.value, _LBFGS_HISTORY.value,
                                      _TILE_SIZE.value or None, available, style_pixels=[height * width])
        if not fits:
            raise UserInputError(
                f"--style_scale={_STYLE_SCALE.value:g} makes the style image {path!r} {width}x{height} px, which "
                f"needs about {needed / 1e9:.1f} GB by tf_nst's estimate but {available / 1e9:.1f} GB is "
                "available; lower --style_scale (style images are not tiled)")


def _run():
    inputs = _Inputs()  # before TensorFlow: a bad path or image is reported at once
    _check_image_sizes(inputs)
    _check_memory(inputs)
    common.import_tensorflow()
    from tf_nst import api, image_io, optimize, vgg  # pylint: disable=import-outside-toplevel
    from tf_nst import weights as weights_source  # pylint: disable=import-outside-toplevel

    extractor_config = _NETWORK.extractor_config(_SEED.value)
    vgg.validate_config(extractor_config)
    precision = precision_lib.resolve(extractor_config.precision)
    # The first line says what "auto" chose: a user who did not ask for mixed_bfloat16 sees why.
    precision_text = f"{precision} (--precision=auto)" if precision != extractor_config.precision else precision
    extractor_config = dataclasses.replace(extractor_config, precision=precision)
    config = _transfer_config(inputs)
    content, styles, config = api.sized_images(
        inputs.content, inputs.styles, _IMAGE_SIZE.value, _STYLE_SCALE.value, extractor_config, config,
        names=[_CONTENT.value, *inputs.style_paths])
    # Resolved once, after the size checks (it may download), so that the first line names what an offline
    # 'imagenet' fell back to.
    weights_path = weights_source.resolve(extractor_config.backbone, extractor_config.weights)
    weights_text = weights_source.describe(extractor_config.weights, weights_path)
    extractor_config = dataclasses.replace(extractor_config, weights=weights_path or "none")
    height, width = content.shape[:2]
    num_tiles = len(optimize.scale_tiles((height, width), config))
    costs = optimize.step_costs(height, width, config, optimize.step_overhead_pixels(precision))
    total_steps = len(costs)
    reporter = _ProgressReporter(costs, _PRINT_EVERY.value, _snapshot_paths(inputs, num_tiles, total_steps),
                                 optimize.scale_starts(height, width, config), replace=_OVERWRITE.value)
    common.warn_slow_settings(extractor_config.precision, config.jit_compile)
    extractor = vgg.build_extractor(api.extractor_for_loss(extractor_config, config))
    tiles = f" in {num_tiles} tiles of {config.tile_size} px" if num_tiles else ""
    num_scales = len(optimize.scale_sizes(height, width, config.num_scales, config.scale_factor))
    init_text = f" (--init={_INIT.value})" if _INIT.value != config.init else ""  # what "auto" chose
    print(f"tf-nst: {width}x{height} px, {total_steps} {config.optimizer} steps over {num_scales} "
          f"scale(s){tiles} from {_start_text(config.init)}{init_text}, {len(styles)} style(s), {precision_text}"
          f"{' with XLA' if config.jit_compile else ''}, {extractor_config.backbone} ({weights_text}) "
          f"on {common.device_name()}", flush=True)
    with signals.StopSignals() as stop:  # Ctrl-C: finish the step, keep the image
        reporter.start()
        try:
            result = optimize.transfer(extractor, content, styles, config, extractor_config.style_layers,
                                       extractor_config.content_layers, callback=reporter,
                                       tile_callback=reporter.on_tile, should_stop=stop.requested,
                                       converged_callback=reporter.on_converged, begin_callback=reporter.on_begin)
        except optimize.TransferStopped as e:
            return _write_stopped(e, total_steps, stop.signum)
    _write_result(result)
    print(f"tf-nst: wrote {_OUTPUT.value}", flush=True)
    return 0


def _write_result(image):
    """Writes the finished image to --output; where that fails (a full disk), to a new file in the temp or the
    current folder (outputs.write_fallback), so that the optimisation is not lost.

    Raises:
      WriteError: --output could not be written; the message says where the image was saved instead, or that
        it could not be saved anywhere.
    """
    from tf_nst import image_io  # pylint: disable=import-outside-toplevel

    data = image_io.encode_image(_OUTPUT.value, image)
    try:
        outputs.write_file(_OUTPUT.value, data, replace=_OVERWRITE.value)
    except outputs.OutputAppearedError:
        raise  # the image is kept beside it already
    except WriteError as e:
        kept, failed = outputs.write_fallback(_OUTPUT.value, data)
        if kept:
            raise WriteError(f"{e}; the finished image is saved at {kept!r} instead") from None
        tried = ", ".join(f"{folder!r} ({error.strerror or type(error).__name__})"
                          for folder, error in failed)
        raise WriteError(f"{e}; the finished image could not be saved anywhere else either (tried {tried})") from None


def _write_stopped(stopped, total_steps, signum):
    """Writes the best image of a run that stopped early; returns the exit status (128 + signal, or 1)."""
    _write_result(stopped.image)
    if stopped.reason == "requested":
        print(f"tf-nst: interrupted at step {stopped.step} of {total_steps}; wrote {_OUTPUT.value}", flush=True)
        return 128 + signum
    common.error(f"the loss became non-finite (nan or inf) at step {stopped.step} of {total_steps}; stopped and "
                 f"wrote the last finite image to {_OUTPUT.value}; lower --learning_rate or the loss weights")
    return 1


def main(argv):
    return common.run_command("transfer", _run, argv)
