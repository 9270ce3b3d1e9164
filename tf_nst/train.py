"""Training a feed-forward network: the loop, steps, checkpoints, summaries and the exported model, shared by
every architecture; the data comes from train_data.

Each architecture brings its network, loss, data and preview as a recipe: train_johnson (one style, Johnson et
al. 2016) and train_adain (any style, Huang & Belongie 2017). A recipe class is built with (config, style) and
has: find_data(config) -> (files, style) (static); build(precision) -> the trained network, in the strategy's
scope; prepare(network); batch_size(batch); losses(network, batch) -> (total, {term: value});
dataset(files, seed); preview_inputs(files, count); preview(network, inputs) -> images; export_model(network).
"""

import contextlib
import dataclasses
import glob
import logging
import os
import shutil

import keras
import tensorflow as tf

from tf_nst import adain
from tf_nst import defaults
from tf_nst import files
from tf_nst import image_io
from tf_nst import signals
from tf_nst import losses
from tf_nst import outputs
from tf_nst import train_adain
from tf_nst import train_finetune
from tf_nst import train_johnson
from tf_nst import vgg
from tf_nst.errors import UserInputError
from tf_nst.errors import WriteError
from tf_nst.files import IMAGE_EXTENSIONS  # pylint: disable=unused-import  # re-exported
from tf_nst.files import MODEL_FILE
from tf_nst.precision import PRECISIONS

STRATEGIES = ("default", "mirrored", "multi_worker")
# The network each architecture trains, and how (its recipe).
# "finetune": a one-style network started from the pretrained magenta-arbitrary (train --init_from).
ARCHITECTURES = {"johnson": train_johnson.JohnsonRecipe, "adain": train_adain.AdainRecipe,
                 "finetune": train_finetune.FinetuneRecipe}
# Training images shown, stylised, in TensorBoard (the arbitrary network: with as many styles, in a grid).
NUM_PREVIEW_IMAGES = 2

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
      dataset_dir: folder searched recursively for training images (IMAGE_EXTENSIONS).
      train_dir: checkpoints, TensorBoard summaries and the final MODEL_FILE; a rerun resumes from it.
      style_image: the style image file ("johnson" only).
      architecture: "johnson" (a network for one style image), "adain" (one for any style: Huang & Belongie
        2017, trained on random pairs from dataset_dir and style_dir), or "finetune" (one style, started from the
        pretrained magenta-arbitrary network conditioned on the style's embedding: train_finetune).
      style_dir: folder searched recursively for style images ("adain" only).
      image_size: training crops are image_size x image_size ("adain": a multiple of adain.DOWNSAMPLING).
      resize: the shorter side of every image before its random crop (None: image_size, the Johnson recipe;
        the arbitrary network's is 512, as Huang & Belongie's).
      style_size: the style image's longer side, in pixels, when its Gram matrices are computed ("johnson" and
        "finetune"; None: defaults.TRAIN_STYLE_SIZE, or FINETUNE_STYLE_SIZE for "finetune": resolve_defaults).
      batch_size: global batch size (split across replicas).
      num_steps: the step to train up to (a resumed run continues to the same total; None: defaults.TRAIN_STEPS,
        or FINETUNE_STEPS for "finetune").
      learning_rate: Adam's learning rate.
      checkpoint_every: save a checkpoint every N steps (also at the end and on SIGINT/SIGTERM).
      summary_every: write loss scalars and a preview image to TensorBoard every N steps (0: never).
      print_every: report the loss terms to the callback every N steps (0: only at the end).
      max_checkpoints: how many checkpoints to keep.
      strategy: "default" (one device), "mirrored" (all local GPUs, else all logical CPUs) or
        "multi_worker" (MultiWorkerMirroredStrategy configured by TF_CONFIG).
      precision: "float32", "mixed_bfloat16" or "mixed_float16" (with dynamic loss scaling), for the network
        and the loss network alike (it overrides extractor.precision).
      width_multiplier, num_residual_blocks: the network's shape (transformer.build_transformer; the arbitrary
        network's decoder takes the width only: adain.build_decoder).
      extractor: the loss network (vgg.ExtractorConfig); for "adain" also the encoder, whose layers are fixed.
      loss_weights: a losses.LossWeights (None: the architecture's defaults; "finetune":
        train_finetune.loss_weights).
      seed: seeds the initial weights and the data order.
      finetune: "finetune" only: what trains (train_finetune.FINETUNE_MODES): the style's "embedding", it and the
        "norms"' gamma/beta projections, or "all" of the transformer.
    """

    dataset_dir: str
    train_dir: str
    style_image: str | None = None
    architecture: str = "johnson"
    style_dir: str | None = None
    image_size: int = 256
    resize: int | None = None
    style_size: int | None = None
    batch_size: int = 4
    num_steps: int | None = None
    learning_rate: float = 1e-3
    checkpoint_every: int = 1000
    summary_every: int = 100
    print_every: int = 100
    max_checkpoints: int = 3
    strategy: str = "default"
    precision: str = "float32"
    width_multiplier: float = 1.0
    num_residual_blocks: int = 5
    extractor: vgg.ExtractorConfig = vgg.ExtractorConfig()
    loss_weights: losses.LossWeights | None = None
    seed: int = 0
    finetune: str = defaults.FINETUNE


@dataclasses.dataclass(frozen=True)
class TrainInfo:
    """What a run starts with, given to Callback.on_train_begin."""

    start_step: int
    num_steps: int
    num_images: int
    skipped_files: tuple
    num_replicas: int
    num_style_images: int = 1


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """How a run ended.

    Attributes:
      step: the last step trained (and checkpointed).
      model_path: the saved stylizer, or None when interrupted (or on a non-chief worker).
      skipped_files: unreadable files left out of the dataset.
      interrupted_by: the signal number that stopped the run early, or None.
      terms: the last step's loss terms ("total", "content", "style", "tv") as floats; empty if no step ran.
    """

    step: int
    model_path: str | None
    skipped_files: tuple
    interrupted_by: int | None
    terms: dict


class Callback:
    """Hooks into `train`; override what you need."""

    def on_train_begin(self, info):
        """Called once the data is listed and any checkpoint restored, with a TrainInfo."""

    def on_steps_begin(self, step):
        """Called once the step is traced, just before training step `step` + 1 runs: times start here."""

    def on_progress(self, step, terms):
        """Called every `print_every` steps and after the last one, with {term: float}."""


class LoggingCallback(Callback):
    """The default callback: reports through the `logging` module."""

    def on_train_begin(self, info):
        if info.skipped_files:
            logger.warning("skipped %d unreadable image files", len(info.skipped_files))
        logger.info("training on %d images from step %d to %d on %d replica(s)", info.num_images,
                    info.start_step, info.num_steps, info.num_replicas)

    def on_progress(self, step, terms):
        logger.info("step %d: %s", step, "  ".join(f"{name} {value:.4g}" for name, value in terms.items()))


class History(Callback):
    """Records the run: `info`, the TrainInfo given at the start, and `history`, {step: {term: float}}."""

    def __init__(self):
        self.info = None
        self.history = {}

    def on_train_begin(self, info):
        self.info = info

    def on_progress(self, step, terms):
        self.history[step] = terms


def resolve_defaults(config):
    """`config` with what it leaves None filled in by its architecture (tf_nst/defaults.py): the style size, the
    steps, and a "finetune" run's loss weights (train_finetune.loss_weights; the other architectures' recipes
    read None as their own)."""
    finetune = config.architecture == "finetune"
    filled = {"style_size": defaults.FINETUNE_STYLE_SIZE if finetune else defaults.TRAIN_STYLE_SIZE,
              "num_steps": defaults.FINETUNE_STEPS if finetune else defaults.TRAIN_STEPS}
    if finetune:
        filled["loss_weights"] = train_finetune.loss_weights(config.extractor.style_layers)
    return dataclasses.replace(config, **{name: value for name, value in filled.items()
                                          if getattr(config, name) is None})


def validate_config(config):
    """Checks everything about a TrainConfig that can be checked before TensorFlow starts."""
    config = resolve_defaults(config)
    _validate_architecture(config)
    if config.strategy not in STRATEGIES:
        raise UserInputError(f"unknown strategy {config.strategy!r}; use one of {', '.join(STRATEGIES)}")
    if config.precision not in PRECISIONS:
        raise UserInputError(f"unknown precision {config.precision!r}; use one of {', '.join(PRECISIONS)}")
    vgg.validate_config(config.extractor)
    if config.architecture in ("johnson", "finetune"):
        min_size = train_johnson.min_image_size(config)
        if config.image_size < min_size or config.style_size < min_size:
            raise UserInputError(
                f"training image size {config.image_size} and style size {config.style_size} must be at least "
                f"{min_size} px for the chosen layers")
    for name, least in (("batch_size", 1), ("num_steps", 1), ("checkpoint_every", 1), ("max_checkpoints", 1),
                        ("summary_every", 0), ("print_every", 0)):
        if getattr(config, name) < least:
            raise UserInputError(f"{name} must be at least {least}; received {getattr(config, name)!r}")
    if not config.learning_rate > 0:
        raise UserInputError(f"learning rate must be greater than 0; received {config.learning_rate!r}")
    if os.path.exists(config.train_dir) and not os.path.isdir(config.train_dir):
        raise UserInputError(f"train_dir {config.train_dir!r} is a file; give a directory")


def _validate_architecture(config):
    if config.architecture not in ARCHITECTURES:
        raise UserInputError(f"unknown architecture {config.architecture!r}; use one of {', '.join(ARCHITECTURES)}")
    if config.finetune not in train_finetune.FINETUNE_MODES:
        raise UserInputError(f"unknown finetune {config.finetune!r}; use one of "
                             f"{', '.join(train_finetune.FINETUNE_MODES)}")
    if config.architecture in ("johnson", "finetune"):
        if config.style_image is None or config.style_dir is not None:
            raise UserInputError(f"the {config.architecture} network learns one style image: give style_image, "
                                 "not style_dir")
        return
    if config.style_dir is None or config.style_image is not None:
        raise UserInputError("the adain network learns from a folder of styles: give style_dir, not style_image")
    if config.image_size < adain.MIN_INPUT_SIDE or config.image_size % adain.DOWNSAMPLING:
        raise UserInputError(f"training image size {config.image_size} must be a multiple of "
                             f"{adain.DOWNSAMPLING} and at least {adain.MIN_INPUT_SIDE} for the adain network")
    if config.resize is not None and config.resize < config.image_size:
        raise UserInputError(f"resize {config.resize} is smaller than the training image size "
                             f"{config.image_size}; give at least {config.image_size}")


def make_strategy(name):
    """The tf.distribute strategy called `name` (see TrainConfig.strategy)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserInputError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}")


def is_chief(strategy):
    """Whether this worker writes summaries and the final model (always, outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker"
                                             and resolver.task_id == 0)


class Trainer:
    """The network, optimiser, step counter, checkpoints and compiled step of one training run.

    It enters the strategy's scope itself. `train_step` takes a batch from `distribute(dataset)` and returns
    the loss terms averaged over the global batch. `model` is what is trained and checkpointed (the
    arbitrary network: its decoder); the config's architecture recipe builds it and gives the loss.
    """

    def __init__(self, config, strategy, style=None):
        """`style`: the style image, float32 [H, W, 3] in [0, 255], for the johnson network; else None."""
        self.config = config
        self.strategy = strategy
        self.recipe = ARCHITECTURES[config.architecture](config, style)
        with strategy.scope():
            self.model = self.recipe.build(config.precision)
            self.optimizer = keras.optimizers.Adam(config.learning_rate)
            if config.precision == "mixed_float16":
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
            self.optimizer.build(self.model.trainable_variables)  # so a checkpoint restores into it
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.recipe.prepare(self.model)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, _checkpoint_dir(config.train_dir, strategy), config.max_checkpoints)
        self.train_step = tf.function(self._train_step)

    def distribute(self, dataset):
        return self.strategy.experimental_distribute_dataset(dataset)

    def restore(self):
        """Restores the latest checkpoint in train_dir, if any. Returns the step training resumes from."""
        latest = tf.train.latest_checkpoint(self.config.train_dir)
        if latest is None:
            return 0
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UserInputError(
                f"cannot resume from {latest!r} ({reason}); it was written by a network of another width, "
                "depth or precision (or architecture): use a new train_dir, or the settings it was trained with") from None
        return int(self.step.numpy())

    def save(self):
        """Saves a checkpoint; a WriteError when it cannot, with its partial files removed and the last kept."""
        step = int(self.step.numpy())
        prefix = os.path.join(self.manager.directory, f"ckpt-{step}")
        try:
            return self.manager.save(checkpoint_number=self.step)
        except (OSError, tf.errors.OpError) as e:
            _remove_partial_checkpoint(prefix)
            raise WriteError(f"cannot write checkpoint {prefix!r} at step {step}: "
                             f"{outputs.describe_write_error(e)}; training stopped, {self.kept_checkpoint()}") from None

    def kept_checkpoint(self):
        """What a run stopped by a write fault leaves, in words: its last good checkpoint, or none."""
        last = self.manager.latest_checkpoint
        return (f"the last good checkpoint {last!r} is kept: rerun the same command to resume from it"
                if last else "no earlier checkpoint exists")

    def summary_error(self, error):
        """The WriteError for an OSError or TensorFlow I/O error met writing the TensorBoard summaries."""
        return WriteError(f"cannot write TensorBoard summaries in {self.config.train_dir!r} at step "
                          f"{int(self.step.numpy())}: {outputs.describe_write_error(error)}; training stopped, "
                          f"{self.kept_checkpoint()}")

    def check_checkpoint(self):
        """Writes a checkpoint beside the real ones and removes it: a full or read-only disk is found before the
        first step, not after checkpoint_every steps of work.

        Raises:
          WriteError: it could not be written; its partial files are removed.
        """
        prefix = outputs.temp_path(self.manager.directory, "-ckpt")  # a stale one is removed by remove_stale_temps
        try:
            self.checkpoint.write(prefix)
        except (OSError, tf.errors.OpError) as e:
            raise WriteError(f"cannot write checkpoint {prefix!r}: {outputs.describe_write_error(e)}; stopped "
                             "before the first step, nothing was trained: free some space or give another "
                             "train_dir") from None
        finally:
            _remove_partial_checkpoint(prefix)

    def _replica_losses(self, batch):
        """One replica's loss terms, each scaled by its share of the global batch (so replicas sum)."""
        total, terms = self.recipe.losses(self.model, batch)
        share = tf.cast(self.recipe.batch_size(batch), tf.float32) / self.config.batch_size
        return {"total": total * share, **{name: value * share for name, value in terms.items()}}

    def _replica_step(self, batch):
        with tf.GradientTape() as tape:
            terms = self._replica_losses(batch)
            scaled_loss = self.optimizer.scale_loss(terms["total"])  # loss scaling for mixed_float16
        variables = self.model.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            gradients = _agree_on_overflow(gradients)
        self.optimizer.apply(gradients, variables)  # all-reduces (sums) them across replicas
        return terms

    def _train_step(self, batch):
        per_replica = self.strategy.run(self._replica_step, args=(batch,))
        self.step.assign_add(1)
        return {name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                for name, value in per_replica.items()}

    def write_summaries(self, writer, terms, preview):
        """Loss scalars and the stylised preview images (recipe.preview of `preview`) at the current step.

        Raises:
          WriteError: they could not be written (a full disk); training stops, the last checkpoint kept.
        """
        try:
            with writer.as_default(step=self.step):
                for name, value in terms.items():
                    tf.summary.scalar(f"loss/{name}", value)
                tf.summary.image("preview/stylized", image_io.to_uint8(self.recipe.preview(self.model, preview)),
                                 max_outputs=NUM_PREVIEW_IMAGES)
        except (OSError, tf.errors.OpError) as e:
            raise self.summary_error(e) from None

    def export(self, path):
        """Saves the whole network as a float32 `.keras` file (atomically), whatever the training precision."""
        model = self.recipe.export_model(self.model)
        try:
            with outputs.atomic_output(path) as temp_path:
                model.save(temp_path)
        except OSError as e:
            raise outputs.write_error(path, e) from None
        return path


def _remove_partial_checkpoint(prefix):
    for path in glob.glob(glob.escape(prefix) + "_temp*") + glob.glob(glob.escape(prefix) + ".*"):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)


def _agree_on_overflow(gradients):
    """Makes every replica's gradients non-finite if any replica's are.

    Keras' LossScaleOptimizer decides whether to skip a step from the first replica's gradients alone, before
    they are summed; an overflow on another replica would then reach the weights as NaN.
    """
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients if g is not None])
    overflows = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
    poison = tf.where(overflows > 0, float("nan"), 0.0)
    return [None if g is None else g + tf.cast(poison, g.dtype) for g in gradients]


def _checkpoint_dir(train_dir, strategy):
    """train_dir on the chief; a worker's own folder elsewhere (every worker must save, one may own it)."""
    if is_chief(strategy):
        return train_dir
    return os.path.join(train_dir, "workers", f"{strategy.cluster_resolver.task_type}"
                        f"-{strategy.cluster_resolver.task_id}")


def train(config, callback=None):
    """Trains the config's network, resuming from train_dir's latest checkpoint if there is one.

    Args:
      config: a TrainConfig.
      callback: a Callback for progress (default: LoggingCallback).

    Returns:
      A TrainResult. On SIGINT or SIGTERM the run saves a checkpoint and returns early, with
      `interrupted_by` set; the same call resumes it.

    Raises:
      UserInputError: a bad config, dataset or style folder, style image or train_dir.
      outputs.FolderInUseError: another run trains in train_dir (it holds its lock file, files.train_lock_name).
    """
    config = resolve_defaults(config)
    validate_config(config)
    strategy = make_strategy(config.strategy)  # first: multi-worker training needs it before other TF ops
    if config.batch_size < strategy.num_replicas_in_sync:
        raise UserInputError(f"batch size {config.batch_size} is smaller than the "
                             f"{strategy.num_replicas_in_sync} replicas; use a larger batch size")
    with outputs.folder_lock(config.train_dir, files.train_lock_name(config.strategy), "train_dir"):
        return _train(config, strategy, callback)


def _train(config, strategy, callback):
    """train() once it holds train_dir's lock: two runs never interleave their checkpoints there."""
    dataset_files, style = ARCHITECTURES[config.architecture].find_data(config)
    os.makedirs(config.train_dir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    trainer = Trainer(config, strategy, style)
    start_step = trainer.restore()
    callback = callback or LoggingCallback()
    num_styles = len(dataset_files.style.images) if config.architecture == "adain" else 1
    callback.on_train_begin(TrainInfo(start_step, config.num_steps, len(dataset_files.images), dataset_files.skipped,
                                      strategy.num_replicas_in_sync, num_styles))
    # A resumed run reshuffles with another seed rather than replaying the first epoch's order.
    batches = iter(trainer.distribute(trainer.recipe.dataset(dataset_files, seed=config.seed + start_step)))
    preview = trainer.recipe.preview_inputs(dataset_files, NUM_PREVIEW_IMAGES)
    trainer.check_checkpoint()
    with _summary_writer(trainer) as writer, signals.StopSignals() as stop:
        step, terms = _run_steps(trainer, batches, writer, preview, callback, stop)
    model_path = None
    if stop.signum is None and is_chief(strategy):
        model_path = trainer.export(os.path.join(config.train_dir, MODEL_FILE))
    return TrainResult(step, model_path, dataset_files.skipped, stop.signum, terms)


@contextlib.contextmanager
def _summary_writer(trainer):
    """The TensorBoard writer of the trainer's train_dir (a no-op one off the chief), closed at the end.

    Raises:
      WriteError: the events file cannot be created (full disk, read-only); the empty one is removed. Or the
        summaries still queued cannot be written at the close (trainer.summary_error).
    """
    train_dir = trainer.config.train_dir
    if not is_chief(trainer.strategy):
        writer = tf.summary.create_noop_writer()
    else:
        before = set(glob.glob(os.path.join(glob.escape(train_dir), "events.out.tfevents.*")))
        try:
            writer = tf.summary.create_file_writer(train_dir)
        except (OSError, tf.errors.OpError) as e:
            for path in set(glob.glob(os.path.join(glob.escape(train_dir), "events.out.tfevents.*"))) - before:
                if os.path.getsize(path) == 0:
                    os.remove(path)
            raise WriteError(f"cannot write TensorBoard summaries in {train_dir!r}: "
                             f"{outputs.describe_write_error(e)}; stopped before the first step, nothing was "
                             "trained: free some space or give another train_dir") from None
    try:
        yield writer
    except BaseException:
        try:
            writer.close()
        except (OSError, tf.errors.OpError):
            pass  # the error in flight is the one to report
        raise
    try:
        writer.close()
    except (OSError, tf.errors.OpError) as e:
        raise trainer.summary_error(e) from None


def _run_steps(trainer, batches, writer, preview, callback, stop):
    """The training loop from the trainer's step to num_steps; returns the last (step, {term: float})."""
    config = trainer.config
    start_step = step = int(trainer.step.numpy())
    terms = {}
    batch = next(batches) if step < config.num_steps else None
    if batch is not None:
        trainer.train_step.get_concrete_function(batch)  # traced before the clock, as transfer's step
    callback.on_steps_begin(step)
    while step < config.num_steps and stop.signum is None:
        terms = trainer.train_step(batch if batch is not None else next(batches))
        batch = None
        step += 1
        if config.summary_every and step % config.summary_every == 0:
            trainer.write_summaries(writer, terms, preview)
        if (config.print_every and step % config.print_every == 0) or step == config.num_steps:
            callback.on_progress(step, {name: float(value) for name, value in terms.items()})
        if step % config.checkpoint_every == 0:
            trainer.save()
    if step > start_step and step % config.checkpoint_every:  # at the end, or interrupted in between
        trainer.save()
    return step, {name: float(value) for name, value in terms.items()}
