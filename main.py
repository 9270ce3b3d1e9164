"""tf-nst command line. Flags are defined and checked here; each command calls one library function.

  python main.py                       # stylise the bundled sample images into stylized.png
  python main.py --content=photo.jpg --style=painting.jpg --output=out.png --image_size=512
  python main.py transfer --weights=/path/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 ...

User errors (bad flags, unreadable images, a weights file for the wrong backbone) print one line,
`tf-nst: error: ...`, and exit with status 2 without writing any file.
"""

import contextlib
import os
import sys
import time

from absl import app
from absl import flags

from tf_nst import SAMPLES_DIR
from tf_nst.errors import UserInputError

_BACKBONES = ("vgg19", "vgg16")
_DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")

# Inputs and output.
_CONTENT = flags.DEFINE_string(
    "content", os.path.join(SAMPLES_DIR, "chelsea.jpg"), "Content image file.")
_STYLE = flags.DEFINE_string(
    "style", os.path.join(SAMPLES_DIR, "hubble_deep_field.jpg"), "Style image file.")
_OUTPUT = flags.DEFINE_string(
    "output", "stylized.png", "Output image; the format follows the extension (.png, .jpg, .webp, .bmp).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing output file (never an input file).")
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", 512, "Longer side of the output in pixels; the content image is resized to it.",
    lower_bound=16)

# Feature extractor.
_BACKBONE = flags.DEFINE_enum("backbone", "vgg19", _BACKBONES, "Loss network.")
_WEIGHTS = flags.DEFINE_string(
    "weights", "imagenet",
    "'imagenet' (downloaded by Keras on first use, then cached), a path to a Keras-applications .h5 or a "
    "Keras .weights.h5 file for --backbone, or 'none' (random weights: for tests only, transfers little "
    "style).")
_STYLE_LAYERS = flags.DEFINE_list(
    "style_layers", list(_DEFAULT_STYLE_LAYERS), "Keras layer names whose Gram matrices carry the style.")
_CONTENT_LAYERS = flags.DEFINE_list(
    "content_layers", ["block4_conv2"], "Keras layer names whose activations carry the content.")
_STYLE_LAYER_WEIGHTS = flags.DEFINE_list(
    "style_layer_weights", None,
    "Relative weight of each style layer, one per --style_layers entry (default: equal).")
_POOLING = flags.DEFINE_enum(
    "pooling", "max", ["max", "avg"], "'avg' replaces VGG's max pooling with average pooling (Gatys 2016).")

# Loss weights. Every term is relative to its target's magnitude, so these hold across image sizes.
_CONTENT_WEIGHT = flags.DEFINE_float("content_weight", 1.0, "Weight of the content loss.", lower_bound=0.0)
_STYLE_WEIGHT = flags.DEFINE_float("style_weight", 5.0, "Weight of the style loss.", lower_bound=0.0)
_TV_WEIGHT = flags.DEFINE_float(
    "tv_weight", 10.0, "Weight of the total-variation (smoothness) loss.", lower_bound=0.0)

# Optimisation.
_OPTIMIZER = flags.DEFINE_enum("optimizer", "lbfgs", ["lbfgs", "adam"], "Optimiser.")
_NUM_STEPS = flags.DEFINE_integer("num_steps", 300, "Optimiser iterations.", lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", 5.0, "Adam step size in pixel units ([0, 255] images).", lower_bound=0.0)
_LBFGS_HISTORY = flags.DEFINE_integer(
    "lbfgs_history", 100, "How many curvature pairs L-BFGS keeps.", lower_bound=1)
_INIT = flags.DEFINE_string(
    "init", "content", "Starting image: 'content', 'noise', 'style', or a path to an image file.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed (noise initialisation, random weights).")
_PRINT_EVERY = flags.DEFINE_integer(
    "print_every", 25, "Print the loss terms every N steps (0: only at the end).", lower_bound=0)
_SAVE_EVERY = flags.DEFINE_integer(
    "save_every", 0, "Also write a snapshot <output>_stepN.<ext> every N steps (0: never).", lower_bound=0)

flags.register_validator(
    "learning_rate", lambda value: value > 0, message="--learning_rate must be greater than 0")
flags.register_validator(
    "init", lambda value: value in ("content", "noise", "style") or os.path.isfile(value),
    message="--init must be 'content', 'noise', 'style' or an existing image file")


@flags.multi_flags_validator(
    ["style_layers", "style_layer_weights"],
    message="--style_layer_weights needs one non-negative number per --style_layers entry, not all zero")
def _check_style_layer_weights(values):
    weights = values["style_layer_weights"]
    if weights is None:
        return True
    try:
        numbers = [float(w) for w in weights]
    except ValueError:
        return False
    return (len(numbers) == len(values["style_layers"]) and min(numbers) >= 0 and sum(numbers) > 0)


def _transfer():
    """The `transfer` command: per-image optimisation."""
    from tf_nst import image_io, losses, optimize, vgg  # pylint: disable=import-outside-toplevel

    content = image_io.read_image(_CONTENT.value)
    style = image_io.read_image(_STYLE.value)
    init_path = _INIT.value if _INIT.value not in optimize.INIT_MODES else None
    if init_path:
        image_io.read_image(init_path)
    inputs = (_CONTENT.value, _STYLE.value, init_path)
    image_io.check_output_path(_OUTPUT.value, inputs, _OVERWRITE.value)
    snapshots = _snapshot_paths(_OUTPUT.value, _NUM_STEPS.value, _SAVE_EVERY.value)
    for path in snapshots.values():
        image_io.check_output_path(path, inputs, _OVERWRITE.value)

    extractor_config = vgg.ExtractorConfig(
        backbone=_BACKBONE.value, weights=_WEIGHTS.value, style_layers=tuple(_STYLE_LAYERS.value),
        content_layers=tuple(_CONTENT_LAYERS.value), pooling=_POOLING.value)
    vgg.validate_config(extractor_config)
    min_side = vgg.min_input_size(extractor_config.style_layers + extractor_config.content_layers)
    content = image_io.resize_max_side(content, _IMAGE_SIZE.value)
    style = image_io.resize_max_side(style, _IMAGE_SIZE.value)
    for name, path, image in (("content", _CONTENT.value, content), ("style", _STYLE.value, style)):
        _check_min_side(name, path, image.shape, min_side)

    layer_weights = _STYLE_LAYER_WEIGHTS.value or [1.0] * len(_STYLE_LAYERS.value)
    config = optimize.TransferConfig(
        num_steps=_NUM_STEPS.value, optimizer=_OPTIMIZER.value, learning_rate=_LEARNING_RATE.value,
        lbfgs_history=_LBFGS_HISTORY.value, init=_INIT.value, seed=_SEED.value,
        loss_weights=losses.LossWeights(
            content=_CONTENT_WEIGHT.value, style=_STYLE_WEIGHT.value, tv=_TV_WEIGHT.value,
            style_layers=dict(zip(_STYLE_LAYERS.value, (float(w) for w in layer_weights)))))

    extractor = vgg.build_extractor(extractor_config)
    height, width = content.shape[:2]
    print(f"tf-nst: {width}x{height} px, {config.num_steps} {config.optimizer} steps, "
          f"{extractor_config.backbone} ({extractor_config.weights}) on {_device_name()}", flush=True)
    reporter = _ProgressReporter(config.num_steps, _PRINT_EVERY.value, snapshots)
    result = optimize.transfer(extractor, content, style, config, extractor_config.style_layers,
                               extractor_config.content_layers, callback=reporter)
    image_io.write_image(_OUTPUT.value, result)
    print(f"tf-nst: wrote {_OUTPUT.value}", flush=True)
    return 0


def _check_min_side(name, path, shape, min_side):
    if min(shape[:2]) < min_side:
        raise UserInputError(
            f"{name} image {path!r} is {shape[1]}x{shape[0]} px at --image_size={_IMAGE_SIZE.value}; the "
            f"chosen layers need at least {min_side} px on each side")


def _snapshot_paths(output, num_steps, save_every):
    if not save_every:
        return {}
    stem, extension = os.path.splitext(output)
    return {step: f"{stem}_step{step:05d}{extension}"
            for step in range(save_every, num_steps, save_every)}


class _ProgressReporter:
    """Prints the loss terms every `print_every` steps and writes the snapshots."""

    def __init__(self, num_steps, print_every, snapshots):
        self._num_steps = num_steps
        self._print_every = print_every
        self._snapshots = snapshots
        self._start = time.perf_counter()
        self._first_step_done = None

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
            print(f"step {step:>{len(str(self._num_steps))}}/{self._num_steps}  {values}  "
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
    with _quiet_native_stderr():
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        tf.config.list_physical_devices("GPU")  # the CUDA probe logs on first use
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    tf.get_logger().setLevel("ERROR")


_COMMANDS = {"transfer": _transfer}


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
