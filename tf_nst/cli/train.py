"""`train`: fits a feed-forward stylizer to one --style image (Johnson et al. 2016) on --dataset_dir, or with
--architecture=adain one network for any style (Huang & Belongie 2017) on --dataset_dir x --style_dir, or with
--init_from=magenta-arbitrary a one-style network fine-tuned from the pretrained arbitrary network (--finetune:
what trains), which reaches a good picture in minutes rather than days.

Checkpoints go to --train_dir every --checkpoint_every steps and on Ctrl-C or SIGTERM, which stop the run with
exit status 128 + the signal number; rerunning the same command resumes. The result is
<train_dir>/stylizer.keras.
"""

import os
import sys
import time

from absl import flags
from absl import logging as absl_logging

from tf_nst import defaults
from tf_nst import files
from tf_nst import memory
from tf_nst import outputs
from tf_nst import precision as precision_lib
from tf_nst import pretrained
from tf_nst.cli import common
from tf_nst.cli import flag_groups
from tf_nst.errors import UserInputError

_STRATEGIES = ("default", "mirrored", "multi_worker")
_ARCHITECTURES = ("johnson", "adain")
# Flags that the adain network's fixed encoder layers, own loss weights and style folder leave without a use.
_JOHNSON_ONLY = ("style", "style_layers", "content_layers", "style_layer_weights", "train_style_size")
_ADAIN_ONLY = ("style_dir", "train_resize")

_DATASET_DIR = flags.DEFINE_string(
    "dataset_dir", None, "Folder of training images, searched recursively; unreadable files are skipped and "
    "counted.")
_TRAIN_DIR = flags.DEFINE_string(
    "train_dir", None, "Checkpoints, TensorBoard summaries and the final stylizer.keras; a rerun resumes from it.")
_ARCHITECTURE = flags.DEFINE_enum(
    "architecture", "johnson", _ARCHITECTURES,
    "'johnson': a network for the one --style image; 'adain': one network for any style image (Huang & "
    "Belongie 2017), trained on random pairs from --dataset_dir and --style_dir.")
_STYLE_DIR = flags.DEFINE_string(
    "style_dir", None, "adain: folder of style images, searched recursively; unreadable files are skipped and "
    "counted.")
_TRAIN_RESIZE = flags.DEFINE_integer(
    "train_resize", 512, "adain: the shorter side of every image before its random --train_image_size crop.",
    lower_bound=16, upper_bound=defaults.MAX_IMAGE_SIZE)
_INIT_FROM = flags.DEFINE_enum(
    "init_from", None, ["magenta-arbitrary"],
    "Start a one-style network from the pretrained arbitrary network, conditioned on --style's embedding, and "
    "fine-tune it with the same losses (Dumoulin et al. 2017: a new style in the normalisation parameters).")
_FINETUNE = flags.DEFINE_enum(
    "finetune", defaults.FINETUNE, ["embedding", "norms", "all"],
    "With --init_from: what trains: the style's 100-d 'embedding'; it and the 'norms' (the gamma/beta "
    "projections); or 'all' of the transformer.")
_STYLE = flag_groups.define_style()
_NETWORK = flag_groups.define_loss_network()
_WEIGHTS = flag_groups.define_loss_weights()
_SEED = flag_groups.define_seed()
_PRINT_EVERY = flag_groups.define_print_every()
_TRAIN_IMAGE_SIZE = flags.DEFINE_integer(
    "train_image_size", 256, "Side of the square training crops, in pixels (adain: a multiple of 8).",
    lower_bound=16, upper_bound=defaults.MAX_IMAGE_SIZE)
_TRAIN_STYLE_SIZE = flags.DEFINE_integer(
    "train_style_size", None, f"Longer side of the style image, in pixels (default {defaults.TRAIN_STYLE_SIZE}; "
    f"{defaults.FINETUNE_STYLE_SIZE} with --init_from, the size the pretrained network sees a style at).",
    lower_bound=16, upper_bound=defaults.MAX_IMAGE_SIZE)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Global batch size (split across replicas).", lower_bound=1,
                                   upper_bound=defaults.MAX_BATCH_SIZE)
_NUM_TRAIN_STEPS = flags.DEFINE_integer(
    "num_train_steps", None, f"Total training steps (a resumed run trains up to it; default "
    f"{defaults.TRAIN_STEPS:,}, {defaults.FINETUNE_STEPS} with --init_from).", lower_bound=1,
    upper_bound=defaults.MAX_TRAIN_STEPS)
_TRAIN_LEARNING_RATE = flags.DEFINE_float(
    "train_learning_rate", 1e-3, "Adam learning rate of the network's weights.", lower_bound=0.0)
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every", 1000, "Save a checkpoint every N steps (also at the end, and on Ctrl-C or SIGTERM).",
    lower_bound=1, upper_bound=defaults.MAX_TRAIN_STEPS)
_SUMMARY_EVERY = flags.DEFINE_integer(
    "summary_every", 100, "Write TensorBoard losses and a preview image every N steps (0: never).",
    lower_bound=0, upper_bound=defaults.MAX_TRAIN_STEPS)
_STRATEGY = flags.DEFINE_enum(
    "strategy", "default", _STRATEGIES,
    "'default' (one device), 'mirrored' (all local GPUs), 'multi_worker' (cluster from TF_CONFIG).")
_WIDTH_MULTIPLIER = flags.DEFINE_float(
    "width_multiplier", 1.0, "Scales the network's channels (0.5 or 0.25: a slimmer, faster stylizer).",
    lower_bound=0.0)

flags.adopt_module_key_flags(flag_groups)
flags.register_validator(
    "train_learning_rate", lambda value: value > 0, message="--train_learning_rate must be greater than 0")
flags.register_validator(
    "width_multiplier", lambda value: value > 0, message="--width_multiplier must be greater than 0")


def _check_architecture_flags():
    """Refuses the flags that the chosen architecture does not read."""
    architecture = _ARCHITECTURE.value
    if _INIT_FROM.value and architecture == "adain":
        raise UserInputError("--init_from starts a one-style network; it does not apply to --architecture=adain")
    if _FINETUNE.present and not _INIT_FROM.value:
        raise UserInputError("--finetune says what a fine-tune trains; give --init_from=magenta-arbitrary too")
    if _INIT_FROM.value and _WIDTH_MULTIPLIER.present:
        raise UserInputError("--width_multiplier does not apply with --init_from: the pretrained network's shape "
                             "is fixed")
    if _INIT_FROM.value:
        pretrained.check_available(_INIT_FROM.value)
    unused = _JOHNSON_ONLY if architecture == "adain" else _ADAIN_ONLY
    for name in unused:
        if flags.FLAGS[name].present:
            raise UserInputError(f"--{name} does not apply to --architecture={architecture}; it is for "
                                 f"--architecture={'johnson' if architecture == 'adain' else 'adain'} only")
    if architecture == "johnson":
        return
    if _STYLE_DIR.value is None:
        raise UserInputError("--architecture=adain needs --style_dir: a folder of style images")
    if _TRAIN_IMAGE_SIZE.value % 8:
        raise UserInputError(f"--train_image_size={_TRAIN_IMAGE_SIZE.value} must be a multiple of 8 for "
                             "--architecture=adain (the encoder pools three times)")
    if _TRAIN_RESIZE.value < _TRAIN_IMAGE_SIZE.value:
        raise UserInputError(f"--train_resize={_TRAIN_RESIZE.value} is smaller than --train_image_size="
                             f"{_TRAIN_IMAGE_SIZE.value}; crops are taken after the resize")


def _check_paths():
    """The checks that need no TensorFlow: required flags, the folders and the style image."""
    common.require_flags("train", _DATASET_DIR, _TRAIN_DIR)
    _check_architecture_flags()
    files.list_images(_DATASET_DIR.value)
    if _ARCHITECTURE.value == "adain":
        files.list_images(_STYLE_DIR.value, "style", "style images")
    else:
        if "," in _STYLE.value:
            raise UserInputError(f"train learns one style: give one --style file, not {_STYLE.value!r}")
        files.read_image(_STYLE.value)
    if os.path.exists(_TRAIN_DIR.value) and not os.path.isdir(_TRAIN_DIR.value):
        raise UserInputError(f"--train_dir {_TRAIN_DIR.value!r} is a file; give a directory")
    outputs.check_writable(_TRAIN_DIR.value, "--train_dir")
    _check_memory()


def _check_memory():
    """Refuses, before TensorFlow loads, a batch of crops whose training would not fit in the available memory
    (memory.estimate_train_bytes; the style image at --train_style_size counted)."""
    available = memory.available_bytes()
    style_side = _TRAIN_STYLE_SIZE.value or (defaults.FINETUNE_STYLE_SIZE if _INIT_FROM.value
                                             else defaults.TRAIN_STYLE_SIZE)
    needed = memory.estimate_train_bytes(_BATCH_SIZE.value, _TRAIN_IMAGE_SIZE.value, style_side * style_side)
    if not memory.within(needed, available):
        raise UserInputError(
            f"--batch_size={_BATCH_SIZE.value} crops of --train_image_size={_TRAIN_IMAGE_SIZE.value} px (at "
            f"--train_style_size={style_side}) need about {needed / 1e9:.1f} GB by tf_nst's estimate but "
            f"{available / 1e9:.1f} GB is available; lower --batch_size or --train_image_size")


def _train_config():
    from tf_nst import train  # pylint: disable=import-outside-toplevel

    adain = _ARCHITECTURE.value == "adain"
    architecture = "finetune" if _INIT_FROM.value else _ARCHITECTURE.value
    return train.TrainConfig(
        dataset_dir=_DATASET_DIR.value, train_dir=_TRAIN_DIR.value, architecture=architecture,
        finetune=_FINETUNE.value,
        style_image=None if adain else _STYLE.value, style_dir=_STYLE_DIR.value if adain else None,
        resize=_TRAIN_RESIZE.value if adain else None,
        image_size=_TRAIN_IMAGE_SIZE.value, style_size=_TRAIN_STYLE_SIZE.value, batch_size=_BATCH_SIZE.value,
        num_steps=_NUM_TRAIN_STEPS.value, learning_rate=_TRAIN_LEARNING_RATE.value,
        checkpoint_every=_CHECKPOINT_EVERY.value, summary_every=_SUMMARY_EVERY.value,
        print_every=_PRINT_EVERY.value, strategy=_STRATEGY.value, precision=_precision(),
        width_multiplier=_WIDTH_MULTIPLIER.value, seed=_SEED.value, extractor=_NETWORK.extractor_config(_SEED.value),
        loss_weights=_loss_weights(adain))


def _loss_weights(adain):
    """The loss weights of the flags given and the network's defaults where they are not (tf_nst/defaults.py)."""
    if adain:
        from tf_nst import adain as adain_lib  # pylint: disable=import-outside-toplevel

        return adain_lib.loss_weights(**_WEIGHTS.given())
    if _INIT_FROM.value:
        from tf_nst import train_finetune  # pylint: disable=import-outside-toplevel

        return train_finetune.loss_weights(_NETWORK.style_layers.value, **_WEIGHTS.given(),
                                           layer_weights=_NETWORK.style_layer_weights.value)
    return _WEIGHTS.loss_weights(_NETWORK, defaults.CONTENT_WEIGHT, defaults.STYLE_WEIGHT, defaults.TV_WEIGHT)


def _precision():
    """--precision, with "auto" read as float32: bfloat16 training has not been measured (defaults.PRECISION)."""
    value = _NETWORK.precision.value
    return "float32" if value == precision_lib.AUTO else value


class _TrainReporter:
    """train.Callback for the terminal: the skipped files, where training starts, then the loss terms."""

    max_listed = 10

    def __init__(self, num_steps, architecture="johnson", precision="float32"):
        self._num_steps = num_steps
        self._architecture = architecture
        self._precision = precision
        self._first_report = None  # (time, step): later rates start there, after the first run's set-up
        self._steps_begin = None  # (time, step) when the traced step first runs: the first line's rate

    def on_train_begin(self, info):
        for path in info.skipped_files[:self.max_listed]:
            print(f"tf-nst: skipping unreadable image {path}", file=sys.stderr)
        if len(info.skipped_files) > self.max_listed:
            print(f"tf-nst: ... and {len(info.skipped_files) - self.max_listed} more", file=sys.stderr)
        start = f"resuming at step {info.start_step}" if info.start_step else "starting at step 0"
        styles = f" x {info.num_style_images} style images" if self._architecture == "adain" else ""
        print(f"tf-nst: training on {info.num_images} images{styles} ({len(info.skipped_files)} unreadable skipped), "
              f"{start} of {info.num_steps}, {info.num_replicas} replica(s) on {common.device_name()}, "
              f"{self._precision}", flush=True)

    def on_steps_begin(self, step):
        self._steps_begin = (time.perf_counter(), step)

    def on_progress(self, step, terms):
        now = time.perf_counter()
        timing = ""
        since = self._first_report if self._first_report is not None else self._steps_begin
        if self._first_report is None:
            self._first_report = (now, step)
        if since is not None and step > since[1]:
            per_step = (now - since[0]) / (step - since[1])
            timing = f"  {1000 * per_step:.0f} ms/step  eta {per_step * (self._num_steps - step):.0f}s"
        values = "  ".join(f"{name} {value:.4g}" for name, value in terms.items())
        print(f"step {step:>{len(str(self._num_steps))}}/{self._num_steps}  {values}{timing}", flush=True)


def _run():
    _check_paths()
    # Held for the run (train.train takes it again, nested): a second run on this train_dir is refused at once.
    with outputs.folder_lock(_TRAIN_DIR.value, files.train_lock_name(_STRATEGY.value), "--train_dir"):
        return _train()


def _train():
    common.import_tensorflow()
    from tf_nst import train  # pylint: disable=import-outside-toplevel

    config = train.resolve_defaults(_train_config())
    common.warn_slow_settings(config.precision)
    absl_logging.set_verbosity(absl_logging.WARNING)  # checkpoint saving logs at INFO every time
    result = train.train(config, _TrainReporter(config.num_steps, config.architecture, config.precision))
    if result.interrupted_by is not None:
        print(f"tf-nst: stopped by signal {result.interrupted_by} at step {result.step}; checkpoint saved "
              f"in {config.train_dir}: rerun the same command to resume", flush=True)
        return 128 + result.interrupted_by
    print(f"tf-nst: wrote {result.model_path}", flush=True)
    return 0


def main(argv):
    return common.run_command("train", _run, argv)
