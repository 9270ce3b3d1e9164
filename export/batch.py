"""A batch job on Apache Beam: stylises images with an exported SavedModel, on any Beam runner.

Pipeline: fileio.MatchFiles (--input: a file, a folder searched recursively, or a glob; any Beam filesystem,
so gs:// where apache-beam[gcp] is installed) -> group by output name (two inputs for one output both fail)
-> skip the outputs that exist -> fileio.ReadMatches, decode (size guard) and downscale -> RunInference (our
SavedModelHandler, the `stylize_images` signature) -> strength and preserve_color -> write atomically under
output_dir. Files that fail go to `<output_dir>/_failures.jsonl`; the counters `stylized`, `failed` and
`skipped` say what happened.

An arbitrary-style export stylises every image with the job's one style (BatchConfig.style, a stylize.Style):
StyleHandler computes the style's statistics once per worker, in load_model, through the export's
`style_embedding` signature, and passes them with each batch to `stylize_with_embedding`
(export/signatures.py); with preserve_color "luminance" the style goes with each image to
`stylize_with_options`, as `stylize` then also computes the style per image.

A 26-style export (magenta-26) stylises every image with the job's style weights (BatchConfig.builtin_weights,
26 normalised floats): BuiltinHandler sends them with each image, and strength and preserve_color, to the
export's `stylize_with_options`, which applies them as `stylize --builtin_style` does.

Outputs are named as `stylize` names them (tf_nst.files.output_name), and images are decoded and prepared by
the same functions (files.decode_image_bytes, stylize.prepare_image), so the job and `stylize` agree within
one grey level. Paths and writes are in export/batch_paths.py; the launcher lists no files.
"""

import contextlib
import dataclasses
import json
import logging
import os
import re

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.io import fileio
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference import base
from apache_beam.options.pipeline_options import PipelineOptions

from export import batch_paths
from export import signatures
from tf_nst import files
from tf_nst import image_io
from tf_nst import outputs
from tf_nst import signals
from tf_nst import stylize
from tf_nst.errors import UserInputError
from tf_nst.errors import WriteError

FAILURES_FILE = "_failures.jsonl"
COUNTERS = ("stylized", "failed", "skipped")
# Runs in this process, offline. Beam's default DirectRunner first tries to download the Prism runner.
DEFAULT_RUNNER = "FnApiRunner"
# The exported signature the job calls (export/saved_model.py): uint8 [N, H, W, 3] in and out.
SIGNATURE = "stylize_images"
# The serving export's header limit (export/saved_model.py): what one image may cost a worker at most.
DEFAULT_MAX_PIXELS = 8192 * 8192
_NAMESPACE = "tf_nst.batch"
_FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class BatchConfig:
    """What the job does to each image; the options behave as in the served `stylize_with_options`.

    Attributes:
      strength: 0 gives the content back, 1 the stylised image; in between, a linear mix.
      preserve_color: keep the content's colours, take only the brightness from the stylised image.
      max_size: downscale images whose longer side exceeds this many pixels (None: keep the size).
      max_pixels: refuse images with more pixels than this, before decoding them.
      max_batch_size: images that RunInference hands the model at once (those of one size share a call).
      style: for an arbitrary-style export, and only there: a stylize.Style (its images as files.read_image
        reads them, blend weights, alpha, preserve_color "none" or "luminance"). strength and preserve_color
        above are for one-style and 26-style exports.
      builtin_weights: for a 26-style export, and only there: 26 non-negative weights, not all zero
        (pretrained.builtin_weights).
    """

    strength: float = 1.0
    preserve_color: bool = False
    max_size: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_batch_size: int = 8
    style: stylize.Style | None = None
    builtin_weights: tuple | None = None


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """What a run did: counts of the Beam counters, and where the failures are listed."""

    stylized: int
    failed: int
    skipped: int
    failures_path: str


class SavedModelHandler(base.ModelHandler):
    """RunInference's model: the exported SavedModel, loaded with tf.saved_model.load, called by signature.

    Beam's stock TensorFlow handlers (apache_beam.ml.inference.tensorflow_inference) are not used: they load
    models with tf.keras (Keras 2), which cannot load a Keras-3 SavedModel, and they need the
    tensorflow-hub and tf-keras packages.

    Takes uint8 [H, W, 3] examples; one call of the signature per image size in a batch. An arbitrary-style
    export takes StyleHandler instead.
    """

    def __init__(self, model_dir, max_batch_size=8):
        super().__init__(max_batch_size=max_batch_size)
        self._model_dir = model_dir

    def load_model(self):
        return tf.saved_model.load(self._model_dir)

    def _call(self, model, images):
        """uint8 [N, H, W, 3] -> uint8 [N, H, W, 3], the stylised images."""
        return model.signatures[SIGNATURE](images=tf.constant(images))["stylized"].numpy()

    def run_inference(self, batch, model, inference_args=None):
        outputs = [None] * len(batch)
        by_shape = {}
        for index, image in enumerate(batch):
            by_shape.setdefault(image.shape, []).append(index)
        for indices in by_shape.values():
            stylized = self._call(model, np.stack([batch[index] for index in indices]))
            for index, image in zip(indices, stylized):
                outputs[index] = image
        return [base.PredictionResult(example, output) for example, output in zip(batch, outputs)]

    def get_num_bytes(self, batch):
        return sum(image.nbytes for image in batch)

    def get_metrics_namespace(self):
        return _NAMESPACE


@dataclasses.dataclass(frozen=True)
class StyledModel:
    """What StyleHandler.load_model gives each worker: the loaded export, and the style's blended statistics
    (None with preserve_color "luminance", which needs the style's luminance matched to each image)."""

    loaded: object
    statistics: np.ndarray | None


class StyleHandler(SavedModelHandler):
    """RunInference's model for an arbitrary-style export: the job's one style on every image.

    The style's statistics are computed once per worker, in load_model (style_embedding, blended), and passed
    with each batch to stylize_with_embedding, so the style is not encoded again per image. Images of any
    sizes share a call (they travel as PNG); the export downscales those above its --export_max_size. An image
    the export refuses gets its one-line reason (a str) as its inference.
    """

    def __init__(self, model_dir, style, max_batch_size=8):
        super().__init__(model_dir, max_batch_size)
        self._style = style

    def load_model(self):
        loaded = super().load_model()
        return StyledModel(loaded, signatures.shared_statistics(loaded, self._style))

    def run_inference(self, batch, model, inference_args=None):
        results = signatures.stylize(model.loaded, list(batch), self._style, model.statistics)
        return [base.PredictionResult(example, error or image) for example, (image, error) in zip(batch, results)]


class BuiltinHandler(SavedModelHandler):
    """RunInference's model for a 26-style export: the job's style weights on every image, through
    stylize_with_options (with the job's strength and preserve_color). Images of any sizes share a call (they
    travel as PNG); an image the export refuses gets its one-line reason (a str) as its inference."""

    def __init__(self, model_dir, config):
        super().__init__(model_dir, config.max_batch_size)
        self._config = config

    def run_inference(self, batch, model, inference_args=None):
        config = self._config
        results = signatures.stylize_builtin(model, list(batch), config.builtin_weights, config.strength,
                                             config.preserve_color)
        return [base.PredictionResult(example, error or image) for example, (image, error) in zip(batch, results)]


def _handler(model_dir, config):
    if config.builtin_weights is not None:
        return BuiltinHandler(model_dir, config)
    if config.style is not None:
        return StyleHandler(model_dir, config.style, config.max_batch_size)
    return SavedModelHandler(model_dir, config.max_batch_size)


class _KeyByOutput(beam.DoFn):
    """FileMetadata of a match -> (output path, metadata), for the matches that are input images."""

    def __init__(self, inputs, output_dir):
        super().__init__()
        self._inputs = inputs
        self._output_dir = output_dir

    def process(self, metadata):
        if batch_paths.is_input(metadata.path, self._inputs, self._output_dir):
            yield batch_paths.output_path(metadata.path, self._inputs, self._output_dir), metadata


class _OneInputPerOutput(beam.DoFn):
    """(output, [metadata]) -> (output, metadata) when one input has that output; otherwise each one fails
    (a.gif and a.png both become a.png), as `stylize` refuses them."""

    def __init__(self):
        super().__init__()
        self._failed = Metrics.counter(_NAMESPACE, "failed")

    def process(self, element):
        output, matches = element
        matches = sorted(matches, key=lambda metadata: metadata.path)
        if len(matches) == 1:
            yield output, matches[0]
            return
        for metadata in matches:
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(_FAILED, {
                "path": metadata.path,
                "reason": f"{len(matches)} inputs would be written to {output!r}; rename all but one"})


class _SkipFinished(beam.DoFn):
    """(output, metadata) -> metadata, unless the output exists already."""

    def __init__(self):
        super().__init__()
        self._skipped = Metrics.counter(_NAMESPACE, "skipped")

    def process(self, element):
        output, metadata = element
        if batch_paths.exists(output):
            self._skipped.inc()
            return
        yield metadata


class _DecodeImage(beam.DoFn):
    """fileio.ReadableFile -> ((input, output), uint8 image), downscaled; bad files to the failures output."""

    def __init__(self, inputs, output_dir, config):
        super().__init__()
        self._inputs = inputs
        self._output_dir = output_dir
        self._config = config
        self._failed = Metrics.counter(_NAMESPACE, "failed")

    def process(self, readable_file):
        path = readable_file.metadata.path
        try:
            image = files.decode_image_bytes(_read(readable_file), path, self._config.max_pixels)
            image = stylize.prepare_image(image, self._config.max_size)
        except UserInputError as e:
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(_FAILED, {"path": path, "reason": str(e).splitlines()[0]})
            return
        output = batch_paths.output_path(path, self._inputs, self._output_dir)
        yield (path, output), np.asarray(image_io.to_uint8(image))


def _read(readable_file):
    """The bytes of a fileio.ReadableFile; a file that vanished or cannot be read is a UserInputError."""
    try:
        return readable_file.read()
    except (OSError, BeamIOError) as e:
        raise UserInputError(f"cannot read {readable_file.metadata.path!r} ({str(e).splitlines()[0]})") from None


class _WriteImage(beam.DoFn):
    """((input, output), PredictionResult) -> the output path, written atomically with the options applied; an
    image the model refused (its inference a reason) to the failures output."""

    def __init__(self, config):
        super().__init__()
        self._config = config
        self._stylized = Metrics.counter(_NAMESPACE, "stylized")
        self._failed = Metrics.counter(_NAMESPACE, "failed")

    def process(self, element):
        (path, output), result = element
        if isinstance(result.inference, str):
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(_FAILED, {"path": path, "reason": result.inference})
            return
        image = finish(result.inference, result.example, self._config)
        try:  # never over an output that appeared since _SkipFinished: another run's, into the same folder
            batch_paths.write_file(output, image_io.encode_image(output, image), replace=False)
        except outputs.OutputAppearedError as e:
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(_FAILED, {"path": path, "reason": str(e)})
            return
        self._stylized.inc()
        yield output


def finish(stylized, content, config):
    """Applies preserve_color, then strength, to a stylised image (as the stylize_with_options signature); an
    arbitrary-style or 26-style export's image as it is (its options are applied inside the export)."""
    if (config.style is not None or config.builtin_weights is not None
            or (config.strength == 1.0 and not config.preserve_color)):
        return stylized
    if config.preserve_color:
        stylized = image_io.keep_content_colors(stylized, content)
    return image_io.blend(stylized, content, config.strength)


def _write_failures(failures, path):
    lines = "".join(json.dumps(failure) + "\n" for failure in sorted(failures, key=lambda f: f["path"]))
    batch_paths.write_file(path, lines.encode("utf-8"))


def build(pipeline, inputs, model_dir, output_dir, config):
    """Adds the job's transforms to `pipeline`.

    Args:
      pipeline: a beam.Pipeline.
      inputs: what to read, a batch_paths.Inputs (batch_paths.plan_inputs(--input)).
      model_dir: the SavedModel version folder, a path every worker can read.
      output_dir: where outputs and the failures file go (absolute, when local).
      config: a BatchConfig.
    """
    inputs_by_output = (pipeline
                        | "Match" >> fileio.MatchFiles(inputs.pattern, fileio.EmptyMatchTreatment.ALLOW)
                        | "KeyByOutput" >> beam.ParDo(_KeyByOutput(inputs, output_dir))
                        | "GroupByOutput" >> beam.GroupByKey()  # also spreads the files over the workers
                        | "OneInputPerOutput" >> beam.ParDo(_OneInputPerOutput()).with_outputs(
                            _FAILED, main="inputs"))
    images = (inputs_by_output.inputs
              | "SkipFinished" >> beam.ParDo(_SkipFinished())
              | "Read" >> fileio.ReadMatches()
              | "Decode" >> beam.ParDo(_DecodeImage(inputs, output_dir, config)).with_outputs(
                  _FAILED, main="images"))
    handler = _handler(model_dir, config)
    written = (images.images
               | "Stylize" >> base.RunInference(base.KeyedModelHandler(handler))
               | "Write" >> beam.ParDo(_WriteImage(config)).with_outputs(_FAILED, main="outputs"))
    _ = ((inputs_by_output[_FAILED], images[_FAILED], written[_FAILED])
         | "Failures" >> beam.Flatten()
         | "CollectFailures" >> beam.combiners.ToList()
         | "WriteFailures" >> beam.Map(_write_failures, FileSystems.join(output_dir, FAILURES_FILE)))


def check_arguments(model_dir, config):
    """Raises UserInputError for a model folder without a SavedModel, options out of range, or a style given to
    a one-style export, missing for an arbitrary-style one, or with options its signatures do not take."""
    if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        raise UserInputError(f"no SavedModel in {model_dir!r}; pass a version folder that `export` wrote, "
                             "such as exports/stylizer/1")
    kind = files.export_kind(model_dir)
    if kind == files.ARBITRARY:
        _check_style(model_dir, config)
    elif config.style is not None:
        raise UserInputError(f"{model_dir!r} is a {'26-style' if kind == files.MULTISTYLE else 'one-style'} "
                             "model and takes no style image; a style is for arbitrary-style exports "
                             "(magenta-arbitrary, train --architecture=adain)")
    if kind == files.MULTISTYLE and config.builtin_weights is None:
        raise UserInputError(f"{model_dir!r} is a 26-style model; give the job its style weights "
                             "(--builtin_style=7)")
    if kind != files.MULTISTYLE and config.builtin_weights is not None:
        raise UserInputError(f"{model_dir!r} takes no built-in style weights; they are for magenta-26 exports")
    if config.builtin_weights is not None:
        weights = config.builtin_weights
        if len(weights) != 26 or not all(0 <= w < float("inf") for w in weights) or not sum(weights) > 0:
            raise UserInputError(f"builtin_weights must be 26 finite, non-negative weights, not all zero; "
                                 f"received {list(weights)}")
    if not 0.0 <= config.strength <= 1.0:
        raise UserInputError(f"strength must be in [0, 1]; received {config.strength}")
    if config.max_size is not None and config.max_size < 1:
        raise UserInputError(f"max size must be a positive number of pixels; received {config.max_size}")


def _check_style(model_dir, config):
    style = config.style
    if style is None:
        raise UserInputError(f"{model_dir!r} is an arbitrary-style model; give the job a style (--style=FILE)")
    if config.strength != 1.0 or config.preserve_color:
        raise UserInputError("strength and preserve_color are for one-style models; an arbitrary-style model's "
                             "are its style's alpha and preserve_color (--alpha, --preserve_color)")
    if style.content_masks is not None:
        raise UserInputError("batch takes no content masks; stylize takes them (--content_mask)")
    signatures.check_options(style, "an arbitrary-style export")


def run(model_dir, input_path, output_dir, config=BatchConfig(), pipeline_args=()):
    """Stylises an image file, a folder or a glob into output_dir with a Beam pipeline, and waits for it.

    Args:
      model_dir: a SavedModel version folder written by export.saved_model.export.
      input_path: an image file, a folder searched recursively (as `stylize` searches it) or a glob
        (photos/*.jpg, photos/**/*.png); local, or on any Beam filesystem (gs://... with apache-beam[gcp]).
      output_dir: where the outputs go, named as `stylize` names them (a glob's outputs keep their path below
        the glob's fixed folder); outputs that exist are skipped, so a rerun resumes the job.
        `_failures.jsonl` there lists this run's failures (empty when none).
      config: a BatchConfig; for an arbitrary-style export, its `style` is required.
      pipeline_args: Beam pipeline options (`--runner=...`, `--direct_num_workers=2`, ...); the runner
        defaults to DEFAULT_RUNNER.

    Returns:
      A BatchResult.

    Raises:
      UserInputError: a missing model, an input that matches nothing or no image, an output folder that is
        the input folder, a bad option, a style missing, refused by the export or given to a one-style one.
      WriteError: an output or the failures file could not be written (a full disk); nothing half-written.
      signals.Interrupted: SIGINT or SIGTERM (where signals.raising is in force, as on the command line).
    An output that another run wrote meanwhile is never replaced: that file is listed as a failure, this
    run's result kept beside it (outputs.OutputAppearedError's message).
    """
    check_arguments(model_dir, config)
    inputs = batch_paths.plan_inputs(input_path)
    output_dir = batch_paths.absolute(output_dir)
    batch_paths.check_output_dir(inputs, output_dir)
    if config.style is not None:
        # A style the export refuses is one line here, not a worker's traceback. The workers compute the
        # statistics again, once each: they may run on other machines.
        signatures.style_statistics(tf.saved_model.load(model_dir), config.style.images)
    pipeline_args = list(pipeline_args)
    if not any(arg.startswith("--runner") for arg in pipeline_args):
        pipeline_args.append(f"--runner={DEFAULT_RUNNER}")
    pipeline = beam.Pipeline(options=PipelineOptions(pipeline_args))
    build(pipeline, inputs, os.path.abspath(model_dir), output_dir, config)
    result = _run_pipeline(pipeline)
    counts = counter_values(result)
    if not any(counts.values()):
        raise UserInputError(f"no images in {input_path!r}; expected files ending in "
                             f"{', '.join(files.IMAGE_EXTENSIONS)}")
    return BatchResult(failures_path=FileSystems.join(output_dir, FAILURES_FILE),
                       **{name: counts.get(name, 0) for name in COUNTERS})


def _run_pipeline(pipeline):
    """Runs `pipeline` and waits for it; returns its result.

    Raises:
      signals.Interrupted: SIGINT or SIGTERM arrived (Beam wraps it in a RuntimeError; it is unwrapped).
      WriteError: an output could not be written (a full disk), without Beam's step annotation.
    """
    with _without_logs_of_reported_faults():
        try:
            result = pipeline.run()
            result.wait_until_finish()
            return result
        except Exception as e:  # pylint: disable=broad-exception-caught  # re-raised unless it is one of ours
            cause = reported_cause(e)
            if cause is None:
                raise
    raise cause


_BEAM_STEP = re.compile(r" \[while running '[^']*'\]$")


def reported_cause(error):
    """The signals.Interrupted or WriteError that Beam wrapped in `error` (its chain of contexts), as it was
    raised, without Beam's " [while running 'STEP']"; None for any other error, which stays loud."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, signals.Interrupted) and isinstance(error.signum, int):
            return signals.Interrupted(error.signum)
        if isinstance(error, WriteError):
            return WriteError(_BEAM_STEP.sub("", str(error)))
        error = error.__cause__ or error.__context__
    return None


class _ReportedFaultFilter(logging.Filter):
    """Drops Beam's log (a traceback per step it unwinds) of a fault that the caller reports in one line."""

    def filter(self, record):
        return not (record.exc_info and reported_cause(record.exc_info[1]))


@contextlib.contextmanager
def _without_logs_of_reported_faults():
    handlers = logging.getLogger().handlers  # Beam's loggers propagate to the root logger's (absl's) handlers
    log_filter = _ReportedFaultFilter()
    for handler in handlers:
        handler.addFilter(log_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(log_filter)


def counter_values(result):
    """{counter name: committed value summed over steps} for the job's counters in a finished pipeline."""
    query = result.metrics().query(MetricsFilter().with_namespace(_NAMESPACE))
    counts = {}
    for counter in query["counters"]:
        if counter.key.metric.name in COUNTERS:
            value = counter.committed if counter.committed is not None else counter.attempted
            counts[counter.key.metric.name] = counts.get(counter.key.metric.name, 0) + value
    return counts
