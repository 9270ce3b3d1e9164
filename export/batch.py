"""A batch job on Apache Beam: stylises a folder of images with an exported SavedModel, on any Beam runner.

Pipeline: the planned (input, output) pairs -> skip the outputs that exist -> read, size guard, downscale ->
RunInference (our SavedModelHandler, the `stylize_images` signature) -> strength and preserve_color ->
write atomically. Files that fail go to `<output_dir>/_failures.jsonl`; the counters `stylized`, `failed`
and `skipped` say what happened.

Outputs are named as `stylize` names them (tf_nst.stylize.plan_outputs), and images are read and prepared by
the same functions (image_io.read_image, stylize.prepare_image), so the job and `stylize` agree within one
grey level. The plan is made on the launching machine from a local folder or file, which every worker must
see at the same path: the local runners do, a cluster needs a shared file system.
"""

import dataclasses
import json
import os

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference import base
from apache_beam.options.pipeline_options import PipelineOptions

from tf_nst import image_io
from tf_nst import stylize
from tf_nst.errors import UserInputError

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
    """

    strength: float = 1.0
    preserve_color: bool = False
    max_size: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_batch_size: int = 8


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

    Takes uint8 [H, W, 3] examples; one call of the signature per image size in a batch.

    Extension point: an arbitrary-style model (not in tf_nst yet) takes a style image beside the content. Its
    handler would override load_model to compute the style's statistics once per worker, and _call to pass
    them with every batch, so `--style` stays fixed for the job.
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


class _ReadImage(beam.DoFn):
    """(input, output) -> ((input, output), uint8 image), after skipping finished outputs and bad files."""

    def __init__(self, config):
        super().__init__()
        self._config = config
        self._skipped = Metrics.counter(_NAMESPACE, "skipped")
        self._failed = Metrics.counter(_NAMESPACE, "failed")

    def process(self, pair):
        path, output = pair
        if os.path.exists(output):
            self._skipped.inc()
            return
        try:
            image = image_io.read_image(path, self._config.max_pixels)
            image = stylize.prepare_image(image, self._config.max_size)
        except UserInputError as e:
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(_FAILED, {"path": path, "reason": str(e).splitlines()[0]})
            return
        yield pair, np.asarray(image_io.to_uint8(image))


class _WriteImage(beam.DoFn):
    """((input, output), PredictionResult) -> the output path, written atomically with the options applied."""

    def __init__(self, config):
        super().__init__()
        self._config = config
        self._stylized = Metrics.counter(_NAMESPACE, "stylized")

    def process(self, element):
        (_, output), result = element
        image_io.write_image(output, finish(result.inference, result.example, self._config))
        self._stylized.inc()
        yield output


def finish(stylized, content, config):
    """Applies preserve_color, then strength, to a stylised image (as the stylize_with_options signature)."""
    if config.strength == 1.0 and not config.preserve_color:
        return stylized
    if config.preserve_color:
        stylized = image_io.keep_content_colors(stylized, content)
    return image_io.blend(stylized, content, config.strength)


def _write_failures(failures, path):
    lines = "".join(json.dumps(failure) + "\n" for failure in sorted(failures, key=lambda f: f["path"]))
    image_io.write_file(path, lines.encode("utf-8"))


def build(pipeline, pairs, model_dir, output_dir, config):
    """Adds the job's transforms to `pipeline` for (input, output) pairs (as from stylize.plan_outputs)."""
    images = (pipeline
              | "Plan" >> beam.Create(pairs)
              | "Spread" >> beam.Reshuffle()
              | "SkipAndRead" >> beam.ParDo(_ReadImage(config)).with_outputs(_FAILED, main="images"))
    handler = base.KeyedModelHandler(SavedModelHandler(model_dir, config.max_batch_size))
    _ = (images.images
         | "Stylize" >> base.RunInference(handler)
         | "Write" >> beam.ParDo(_WriteImage(config)))
    _ = (images[_FAILED]
         | "CollectFailures" >> beam.combiners.ToList()
         | "WriteFailures" >> beam.Map(_write_failures, os.path.join(output_dir, FAILURES_FILE)))


def check_arguments(model_dir, config):
    """Raises UserInputError for a model folder without a SavedModel, or options out of range."""
    if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        raise UserInputError(f"no SavedModel in {model_dir!r}; pass a version folder that `export` wrote, "
                             "such as exports/stylizer/1")
    if not 0.0 <= config.strength <= 1.0:
        raise UserInputError(f"strength must be in [0, 1]; received {config.strength}")
    if config.max_size is not None and config.max_size < 1:
        raise UserInputError(f"max size must be a positive number of pixels; received {config.max_size}")


def run(model_dir, input_path, output_dir, config=BatchConfig(), pipeline_args=()):
    """Stylises an image file or a folder into output_dir with a Beam pipeline, and waits for it.

    Args:
      model_dir: a SavedModel version folder written by export.saved_model.export.
      input_path: a local image file, or a folder searched recursively (as `stylize` searches it).
      output_dir: where the outputs go, named as `stylize` names them; outputs that exist are skipped, so a
        rerun resumes the job. `_failures.jsonl` there lists this run's failures (empty when none).
      config: a BatchConfig.
      pipeline_args: Beam pipeline options (`--runner=...`, `--direct_num_workers=2`, ...); the runner
        defaults to DEFAULT_RUNNER.

    Returns:
      A BatchResult.

    Raises:
      UserInputError: a missing model or input, an output path that may not be written, a bad option.
    """
    check_arguments(model_dir, config)
    pairs = stylize.plan_outputs(input_path, output_dir, overwrite=True)
    pipeline_args = list(pipeline_args)
    if not any(arg.startswith("--runner") for arg in pipeline_args):
        pipeline_args.append(f"--runner={DEFAULT_RUNNER}")
    pipeline = beam.Pipeline(options=PipelineOptions(pipeline_args))
    build(pipeline, pairs, os.path.abspath(model_dir), output_dir, config)
    result = pipeline.run()
    result.wait_until_finish()
    counts = counter_values(result)
    return BatchResult(failures_path=os.path.join(output_dir, FAILURES_FILE),
                       **{name: counts.get(name, 0) for name in COUNTERS})


def counter_values(result):
    """{counter name: committed value summed over steps} for the job's counters in a finished pipeline."""
    query = result.metrics().query(MetricsFilter().with_namespace(_NAMESPACE))
    counts = {}
    for counter in query["counters"]:
        if counter.key.metric.name in COUNTERS:
            value = counter.committed if counter.committed is not None else counter.attempted
            counts[counter.key.metric.name] = counts.get(counter.key.metric.name, 0) + value
    return counts
