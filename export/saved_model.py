"""Exports the feed-forward stylizer for TF Serving: a versioned SavedModel, warmup requests, server config.

Layout written by `export()` (TF Serving's file-system source watches `<export_dir>/<model_name>`):

  <export_dir>/models.config                  ModelServerConfig listing every model in export_dir
  <export_dir>/batching_parameters.txt        BatchingParameters for --enable_batching
  <export_dir>/<model_name>/<version>/saved_model.pb, variables/, assets.extra/tf_serving_warmup_requests

Signatures (all core TensorFlow ops, no XLA, no Python callbacks):
  serving_default       image_bytes: string [N] (JPEG, PNG, GIF, BMP; any size) -> output_bytes: string [N]
                        (PNG), error: string [N]
  stylize_with_options  image_bytes, strength: float [N] in [0, 1], preserve_color: bool [N] -> output_bytes,
                        error
  stylize_images        images: uint8 [N, H, W, 3] -> stylized: uint8 [N, H, W, 3] (the images not resized)

An arbitrary-style network (tf_nst.adain, or the pretrained magenta-arbitrary) takes a style image per row
instead, and its style embedding (E = arbitrary.embedding_size: 1920 for AdaIN, 100 for magenta-arbitrary):
  serving_default         content_bytes, style_bytes: string [N] -> output_bytes: string [N] (PNG), error
  stylize_with_options    content_bytes, style_bytes, alpha: float [N] in [0, 1], preserve_color: bool [N]
                          -> output_bytes, error
  style_embedding         style_bytes -> style_statistics: float [N, E], error (arbitrary.style_embedding:
                          AdaIN's relu1_1..relu4_1 channel means, then their stds; Magenta's predictor output)
  stylize_with_embedding  content_bytes, style_statistics: float [N, E], alpha -> output_bytes, error
  stylize_images          images: uint8 [N, H, W, 3], style_images: uint8 [N, H', W', 3] -> stylized: uint8
Each style image is resized so that its shorter side is `style_size`, as `stylize --style_size` resizes it
(default 512 for AdaIN, 256 for magenta-arbitrary), so the served model and `stylize` give the same picture.

The 26-style network (magenta-26) takes a row of style_weights: float [N, 26] beside each image; each row is
normalised to sum to 1 in the graph, and a row that is not finite, has a negative weight or sums to 0 is refused
(its own error) in the byte signatures, while stylize_images fails its request with InvalidArgument:
  serving_default       image_bytes, style_weights -> output_bytes, error
  stylize_with_options  image_bytes, style_weights, strength: float [N], preserve_color: bool [N] -> output_bytes,
                        error (preserve_color as `stylize --builtin_style --preserve_color=luminance`)
  stylize_images        images: uint8 [N, H, W, 3], style_weights -> stylized: uint8 [N, H, W, 3]
files.export_kind tells the three kinds apart from saved_model.pb without TensorFlow. Style bytes pass the content's header
checks; once resized, a style may have at most max_size x max_size pixels (the most a content image has).

The byte signatures answer row by row: each row is checked from its header before it is decoded (a known
format, a positive size of at most `max_pixels`, sides of at least `min_side` once downscaled, a strength in
[0, 1]). A row that fails gets output_bytes b"" and a one-line error (bytes quoted in hex); the others are
stylised (error ""), so under TF Serving's batching one client's bad upload never fails another's request.
Bytes whose header passes and whose body is corrupt (a PNG with a bad CRC, a truncated PNG or JPEG, a bare
header) fail their own row too: a graph cannot catch a decoder's error, so each row is decoded through a
one-element tf.data pipeline that drops the error (image_io.try_decode). A decoded image whose longer side exceeds
`max_size` is downscaled (antialiased) to `max_size`, so the PNG that comes back can be smaller than the
input.
"""

import dataclasses
import os
import re

import keras
import numpy as np
import tensorflow as tf

from tf_nst import adain
from tf_nst import arbitrary
from tf_nst import defaults
from tf_nst import files
from tf_nst import image_io
from tf_nst import magenta
from tf_nst import optional
from tf_nst import outputs
from tf_nst import stylize
from tf_nst import transformer
from tf_nst.errors import UserInputError
from tf_nst.errors import WriteError

SERVING_DEFAULT = "serving_default"
WITH_OPTIONS = "stylize_with_options"
IMAGES = "stylize_images"
SIGNATURES = (SERVING_DEFAULT, WITH_OPTIONS, IMAGES)
STYLE_EMBEDDING = files.ARBITRARY_SIGNATURE
WITH_EMBEDDING = "stylize_with_embedding"
ARBITRARY_SIGNATURES = (SERVING_DEFAULT, WITH_OPTIONS, STYLE_EMBEDDING, WITH_EMBEDDING, IMAGES)
# The 26-style network's signatures: the one-style names, each with a style_weights input.
STYLE_WEIGHTS = files.MULTISTYLE_INPUT
MULTISTYLE_SIGNATURES = SIGNATURES

DEFAULT_MAX_SIZE = 1024
# Header limit: a decoded RGB image of this many pixels takes 192 MiB as uint8 (plus 4x that as float32
# while it is downscaled), which is what one request may cost the server at most.
DEFAULT_MAX_PIXELS = 8192 * 8192
# Where the sample models.config expects export_dir: the Docker image's model root.
DEFAULT_SERVING_ROOT = "/models"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"
# Side of the synthetic image in the warmup requests: small, so loading stays fast on a CPU.
WARMUP_SIDE = 64

_WARMUP_FEATURE = "export's warmup requests"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# BatchingParameters (tensorflow_serving/servables/tensorflow/session_bundle_config.proto).
_BATCHING_PARAMETERS_TEXT = """\
# TF Serving BatchingParameters, read with --enable_batching --batching_parameters_file=<this file>.
# Requests of a signature are merged into batches of up to max_batch_size rows. serving_default and
# stylize_with_options take one encoded image per row, so any mix of image sizes merges (each row is still
# stylised at its own size). stylize_images takes a uint8 [N, H, W, 3] tensor: requests of different sizes
# that meet in one batch fail it (FAILED_PRECONDITION; padding would change the result, so it stays off):
# send stylize_images one image size, or serve it without batching.
max_batch_size { value: 8 }
batch_timeout_micros { value: 5000 }
max_enqueued_batches { value: 64 }
num_batch_threads { value: 4 }
pad_variable_length_inputs: false
"""


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """What the serving graph accepts.

    Attributes:
      max_size: decoded images with a longer side above this are downscaled to it (pixels).
      max_pixels: encoded images whose header claims more pixels than this are refused before decoding.
      min_side: images with a shorter side below this (after downscaling) are refused; files.MIN_IMAGE_SIDE,
        the rule of every command.
      style_size: an arbitrary-style network's style images are resized so that their shorter side is this
        (`stylize --style_size`); one that would then have more than max_size x max_size pixels is refused.
    """

    max_size: int = DEFAULT_MAX_SIZE
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = files.MIN_IMAGE_SIDE
    style_size: int = defaults.STYLE_SIZE


def export(model_or_path, export_dir, model_name="stylizer", version=None, max_size=DEFAULT_MAX_SIZE,
           max_pixels=DEFAULT_MAX_PIXELS, serving_root=DEFAULT_SERVING_ROOT, style_size=None):
    """Writes `<export_dir>/<model_name>/<version>/` for TF Serving, and models.config and batching beside it.

    The version folder is written to a temporary folder beside it and renamed into place, so a server that
    watches the model folder never sees half an export.

    Args:
      model_or_path: a keras.Model (RGB float [0, 255] in and out), or what stylize.load_stylizer reads: a
        `.keras` file, or a training folder holding one.
      export_dir: the serving root on this machine; created if missing.
      model_name: the name clients use (`/v1/models/<model_name>:predict`).
      version: a positive integer; None takes the next free version (1 for a new model).
      max_size: longer side, in pixels, above which encoded images are downscaled.
      max_pixels: encoded images whose header claims more pixels are refused before decoding.
      serving_root: where export_dir is mounted on the server, for models.config's base_path.
      style_size: an arbitrary-style network's style images are resized to this shorter side, in pixels, as
        `stylize --style_size` resizes them; at most max_size. None: default_style_size(model).

    Returns:
      The path of the version folder.

    Raises:
      UserInputError: a missing or unreadable model, a bad name, version or size, or a version that exists.
    """
    config = ServingConfig(max_size=max_size, max_pixels=max_pixels, style_size=style_size or defaults.STYLE_SIZE)
    _check_arguments(model_name, version, config)
    optional.require("tensorflow_serving.apis.prediction_log_pb2", _WARMUP_FEATURE)  # before any work
    model_dir = os.path.join(export_dir, model_name)
    version = next_version(model_dir) if version is None else version
    version_dir = os.path.join(model_dir, str(version))
    if os.path.exists(version_dir):
        raise UserInputError(f"version {version} of {model_name!r} already exists at {version_dir!r}; "
                             "versions are never overwritten: choose another version or leave it unset")
    if not isinstance(model_or_path, keras.Model):
        model_or_path = stylize.load_stylizer(os.fspath(model_or_path))
    if style_size is None:
        config = dataclasses.replace(config, style_size=default_style_size(model_or_path))
    _check_style_size(model_or_path, config)
    kind = model_kind(model_or_path)
    try:
        with outputs.atomic_output(version_dir, directory=True) as temp_dir:
            build_archive(model_or_path, config).write_out(temp_dir, verbose=False)
            write_warmup_requests(os.path.join(temp_dir, WARMUP_FILE), model_name, kind,
                                  _embedding_size(model_or_path))
    except (OSError, tf.errors.OpError) as e:
        raise WriteError(f"cannot write {version_dir!r}: {outputs.describe_write_error(e)}; nothing was written "
                         "there") from None
    write_server_config(export_dir, serving_root)
    return version_dir


def _check_arguments(model_name, version, config):
    if not _MODEL_NAME.match(model_name or ""):
        raise UserInputError(f"model name {model_name!r} is not usable in a URL or folder name; use letters, "
                             "digits, '_', '-' and '.' (not first)")
    if version is not None and (not isinstance(version, int) or version < 1):
        raise UserInputError(f"version must be a positive integer; received {version!r}")
    if config.max_size < config.min_side:
        raise UserInputError(
            f"max size must be at least {config.min_side} pixels; received {config.max_size}")
    if config.max_pixels < 1:
        raise UserInputError(f"max pixels must be a positive number; received {config.max_pixels}")
    if config.style_size < config.min_side:
        raise UserInputError(
            f"style size must be at least {config.min_side} pixels; received {config.style_size}")


def _check_style_size(model, config):
    if not arbitrary.is_arbitrary(model):
        return
    if config.style_size > config.max_size:
        raise UserInputError(f"style size {config.style_size} is more than max size {config.max_size}: every "
                             "style would be refused; give a style size of at most the max size")
    if config.style_size < arbitrary.min_style_side(model):
        raise UserInputError(f"style size must be at least {arbitrary.min_style_side(model)} pixels for "
                             f"{model.name!r}; received {config.style_size}")


def model_kind(model):
    """files.ONE_STYLE, ARBITRARY (takes a style image) or MULTISTYLE (takes weights over built-in styles)."""
    if arbitrary.is_multistyle(model):
        return files.MULTISTYLE
    return files.ARBITRARY if arbitrary.is_arbitrary(model) else files.ONE_STYLE


def default_style_size(model):
    """The shorter side styles are resized to when none is given: as `stylize` sizes them for `model`
    (defaults.PRETRAINED_STYLE_SIZE for Magenta's network, defaults.STYLE_SIZE for AdaIN)."""
    return defaults.PRETRAINED_STYLE_SIZE if magenta.is_arbitrary(model) else defaults.STYLE_SIZE


def _embedding_size(model):
    return arbitrary.embedding_size(model) if arbitrary.is_arbitrary(model) else None


def _kind(kind):
    """A files kind; True and False, as older callers passed them, are ARBITRARY and ONE_STYLE."""
    if isinstance(kind, bool):
        return files.ARBITRARY if kind else files.ONE_STYLE
    return kind


def signature_names(kind):
    """The signatures export() writes for a model of `kind` (files.ONE_STYLE, ARBITRARY or MULTISTYLE)."""
    return {files.ARBITRARY: ARBITRARY_SIGNATURES, files.MULTISTYLE: MULTISTYLE_SIGNATURES}.get(_kind(kind),
                                                                                                 SIGNATURES)


def next_version(model_dir):
    """One more than the highest numeric version folder in `model_dir` (1 when there is none)."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(name) for name in os.listdir(model_dir) if name.isdigit()]
    return max(versions, default=0) + 1


class _Stylizer:
    """The per-image computations the signatures share: the pre-check of a row, decoding, the network, options."""

    def __init__(self, model, config):
        self._model = model
        self._config = config

    def network(self, images):
        """Float [B, H, W, 3] in [0, 255] -> float32 in [0, 255], whatever the model's dtype policy."""
        return tf.cast(self._model(images, training=False), tf.float32)

    def check(self, contents):
        """What is wrong with a row of encoded bytes, from its header alone: a one-line message, "" if nothing.

        Never raises, so one bad row cannot fail the rows it is batched with (TF Serving's batching merges
        the rows of different clients). A row that passes gives decode() the format and size it expects;
        a corrupt body behind a good header is decode()'s error, for that row alone.
        """
        config = self._config
        size, claimed, problems = self._header_problems(contents)
        shrunk = image_io.shrunk_size(size, config.max_size)
        rule = self._rule()
        shrunk_text = tf.strings.join([", ", _size_text(shrunk), f" px once downscaled to {config.max_size} px"])
        problems.append((tf.reduce_min(shrunk) < config.min_side,
                         tf.strings.join(["image too small: ", claimed,
                                          tf.where(tf.reduce_any(shrunk != size), shrunk_text, ""), "; ", rule])))
        return _first_problem(problems)

    def check_style(self, contents):
        """check() for a style image's bytes: the same header checks, at least min_side px on each side as
        uploaded (the rule of every input image); then, once resized to style_size on its shorter side, at most
        max_size x max_size pixels (a long thin style would grow without bound)."""
        config = self._config
        size, claimed, problems = self._header_problems(contents)
        problems.append((tf.reduce_min(size) < config.min_side,
                         tf.strings.join(["image too small: ", claimed, "; ", self._rule()])))
        resized = image_io.shorter_side_size(tf.maximum(size, 1), config.style_size)
        problems.append((tf.reduce_prod(tf.cast(resized, tf.int64)) > config.max_size * config.max_size,
                         tf.strings.join(["image too elongated: ", claimed, ", ", _size_text(resized),
                                          f" px once resized to a shorter side of {config.style_size} px, more "
                                          f"than {config.max_size} x {config.max_size} pixels"])))
        return _first_problem(problems)

    def _rule(self):
        return (files.MIN_SIDE_RULE if self._config.min_side == files.MIN_IMAGE_SIDE
                else f"each side must be at least {self._config.min_side} px")

    def _header_problems(self, contents):
        """(int32 [height, width] from the header, "H x W px" text, [(condition, message)]): the checks that
        every image's bytes pass."""
        config = self._config
        kind, size = image_io.read_header(contents)
        claimed = tf.strings.join([_size_text(size), " px"])
        pixels = tf.reduce_prod(tf.cast(size, tf.int64))
        names = ", ".join(name for name, _ in image_io.HEADER_FORMATS)
        problems = [  # (condition, message), the first that holds is reported
            (tf.strings.length(contents) == 0, tf.constant("not an image: the bytes are empty")),
            (kind == image_io.UNKNOWN_FORMAT,
             tf.strings.join([f"not an image: the bytes are not {names} (WebP is not served); they start with "
                              "(hex) ", image_io.hex_bytes(tf.strings.substr(contents, 0, 8))])),
            ((kind == 0) & tf.reduce_all(size == 0),
             tf.constant("not an image: a JPEG whose frame header (SOFn) was not found")),
            (tf.reduce_any(size <= 0), tf.strings.join(["image header gives a zero or negative size: ", claimed])),
            (pixels > config.max_pixels,
             tf.strings.join(["image refused before decoding: its header claims ", claimed,
                              f", more than {config.max_pixels} pixels"])),
        ]
        return size, claimed, problems

    def decode(self, contents):
        """Encoded bytes that passed check() -> (float32 [H, W, 3] downscaled to max_size, error).

        The error is "" or, for a corrupt body the decoder refuses, the row's one-line reason; the image is then
        a blank min_side x min_side one, so that the row's computation runs (and is thrown away).
        """
        image, error = self._try_decode(contents)
        image = image_io.shrink_to_max_side(image, self._config.max_size)
        # The decoders give the size read from the header, so this holds after check(); a safety net.
        check = tf.debugging.assert_greater_equal(
            tf.reduce_min(tf.shape(image)[:2]), self._config.min_side, message="image too small")
        with tf.control_dependencies([check]):
            return tf.identity(image), error

    def decode_style(self, contents):
        """A style's bytes that passed check_style() -> (float32 [H, W, 3], its shorter side style_size, rounded
        to whole grey levels as `stylize` reads it (stylize.read_styles); error, as decode's)."""
        image, error = self._try_decode(contents)
        resized = image_io.resize_shorter_side(image, self._config.style_size)
        return image_io.to_float(image_io.to_uint8(resized)), error

    def _try_decode(self, contents):
        image, ok = image_io.try_decode(contents)
        side = self._config.min_side
        blank = tf.zeros([side, side, 3], tf.uint8)
        image = tf.cond(ok, lambda: image, lambda: blank)
        return image, tf.where(ok, "", "not an image: its data cannot be decoded (a corrupt or truncated body "
                                       "behind a valid header)")

    def stylize(self, image):
        return self.network(image[tf.newaxis])[0]

    def stylize_with_options(self, image, strength, preserve_color):
        stylized = self.stylize(image)
        stylized = tf.cond(preserve_color, lambda: image_io.keep_content_colors(stylized, image),
                           lambda: stylized)
        return image_io.blend(stylized, image, strength)


def _size_text(size):
    """int32 [height, width] -> "H x W"."""
    return tf.strings.reduce_join(tf.strings.as_string(size), separator=" x ")


def _first_problem(problems):
    """The message of the first (condition, message) whose condition holds; "" when none does."""
    message = tf.constant("")
    for condition, text in reversed(problems):
        message = tf.where(condition, text, message)
    return message


_PNG_OUTPUT = ("output_bytes", tf.TensorSpec([], tf.string), lambda: tf.constant(b""))


def _rows(one, inputs, check, output=_PNG_OUTPUT):
    """Runs one(inputs of a row) on each row whose check(inputs of a row) is ""; the others give output's empty
    value. one() returns (its result, its own error: "" or why the row fails after all, a corrupt body), and a
    row with an error gives the empty value too.

    Args:
      output: (name, TensorSpec of one row's result, function giving the value of a refused row); by default
        a PNG, b"" when refused.

    Returns {output name: [N, ...], "error": string [N]}: a row is either computed (error "") or refused with
    its one-line reason, and no row's fault reaches another row.
    """
    name, spec, refused = output

    def row(values):
        def run():
            result, error = one(values)
            return tf.where(tf.equal(error, ""), result, refused()), error

        error = check(values)
        return tf.cond(tf.equal(error, ""), run, lambda: (refused(), error))

    results, errors = tf.map_fn(row, inputs, fn_output_signature=(spec, tf.TensorSpec([], tf.string)))
    return {name: results, "error": errors}


def _pair_error(content_error, style_error):
    """A content-and-style row's error: the content's (prefixed "content: "), else the style's ("style: ")."""
    return tf.where(tf.equal(content_error, ""),
                    tf.where(tf.equal(style_error, ""), "", tf.strings.join(["style: ", style_error])),
                    tf.strings.join(["content: ", content_error]))


def _same_length(first, *others):
    """`first`, once every other input has as many rows (InvalidArgument otherwise: TF Serving's batching
    refuses a request whose inputs disagree in length before it merges anything)."""
    checks = [tf.debugging.assert_equal(tf.shape(other)[0], tf.shape(first)[0],
                                        message=f"give one {name} per image")
              for name, other in others]
    with tf.control_dependencies(checks):
        return tf.identity(first)


def _check_strength(error, value, name):
    """The row's error: `error`, or else a strength (alpha) outside [0, 1] (nan included)."""
    in_range = (value >= 0.0) & (value <= 1.0)
    strength_error = tf.where(in_range, "", tf.strings.join(
        [f"{name} must be in [0, 1]; received ", tf.strings.as_string(value)]))
    return tf.where(tf.equal(error, ""), strength_error, error)


def _pad_empty(images):
    """A uint8 [N, H, W, 3] batch as float, one small blank image when N is 0: the networks' mirror padding
    refuses an empty batch ([0, H, W, 3], often [0, 0, 0, 3])."""
    empty = tf.cast(tf.shape(images)[0] == 0, tf.int32)
    grow = empty * files.MIN_IMAGE_SIDE
    return tf.pad(image_io.to_float(images), tf.stack([[0, empty], [0, grow], [0, grow], [0, 0]]))


def serving_functions(model, config):
    """{signature name: (function, input signature)}: the endpoints of `model`'s kind, as plain functions of
    tensors."""
    if arbitrary.is_multistyle(model):
        return _multistyle_functions(model, config)
    if arbitrary.is_arbitrary(model):
        return _arbitrary_functions(model, config)
    stylizer = _Stylizer(model, config)

    def serve_bytes(image_bytes):
        def one(contents):
            image, error = stylizer.decode(contents)
            return image_io.encode_png(stylizer.stylize(image)), error

        return _rows(one, image_bytes, stylizer.check)

    def serve_with_options(image_bytes, strength, preserve_color):
        # A strength out of range is the fault of its row alone.
        image_bytes = _same_length(image_bytes, ("strength", strength), ("preserve_color", preserve_color))

        def one(row):
            contents, row_strength, row_preserve_color = row
            image, error = stylizer.decode(contents)
            return image_io.encode_png(stylizer.stylize_with_options(image, row_strength, row_preserve_color)), error

        def check(row):
            contents, row_strength, _ = row
            return _check_strength(stylizer.check(contents), row_strength, "strength")

        return _rows(one, (image_bytes, strength, preserve_color), check)

    def serve_images(images):
        shape = tf.shape(images)  # an empty batch runs on one blank image and returns none
        stylized = stylizer.network(_pad_empty(images))[:shape[0], :shape[1], :shape[2]]
        return {"stylized": image_io.to_uint8(stylized)}

    return {
        SERVING_DEFAULT: (serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]),
        WITH_OPTIONS: (serve_with_options, [tf.TensorSpec([None], tf.string, name="image_bytes"),
                                            tf.TensorSpec([None], tf.float32, name="strength"),
                                            tf.TensorSpec([None], tf.bool, name="preserve_color")]),
        IMAGES: (serve_images, [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]),
    }


def _arbitrary_functions(model, config):
    """serving_functions of an arbitrary-style network: each row brings its style, as bytes or statistics."""
    stylizer = _Stylizer(model, config)

    def check_pair(contents, style_bytes):
        return _pair_error(stylizer.check(contents), stylizer.check_style(style_bytes))

    size = arbitrary.embedding_size(model)
    unusable = ("style_statistics must be finite, with positive stds" if adain.is_arbitrary(model)
                else "style_statistics must be finite")

    def statistics(style_bytes):
        style, error = stylizer.decode_style(style_bytes)
        return arbitrary.style_embedding(model, style[tf.newaxis])[0], error

    def one(contents, style_bytes, alpha=1.0, preserve_color=None):
        content, content_error = stylizer.decode(contents)
        style, style_error = stylizer.decode_style(style_bytes)
        error = _pair_error(content_error, style_error)

        def with_mode(mode):
            return lambda: stylize.stylize_arbitrary(
                model, content, stylize.style_statistics(model, [style], mode, content), alpha=alpha,
                preserve_color=mode)

        if preserve_color is None:
            return image_io.encode_png(with_mode("none")()), error
        return image_io.encode_png(tf.cond(preserve_color, with_mode("luminance"), with_mode("none"))), error

    def serve_bytes(content_bytes, style_bytes):
        content_bytes = _same_length(content_bytes, ("style_bytes", style_bytes))
        return _rows(lambda row: one(*row), (content_bytes, style_bytes), lambda row: check_pair(*row))

    def serve_with_options(content_bytes, style_bytes, alpha, preserve_color):
        content_bytes = _same_length(content_bytes, ("style_bytes", style_bytes), ("alpha", alpha),
                                     ("preserve_color", preserve_color))
        return _rows(lambda row: one(*row), (content_bytes, style_bytes, alpha, preserve_color),
                     lambda row: _check_strength(check_pair(row[0], row[1]), row[2], "alpha"))

    def serve_embedding(style_bytes):
        vector = tf.TensorSpec([size], tf.float32)
        return _rows(statistics, style_bytes, stylizer.check_style,
                     ("style_statistics", vector, lambda: tf.zeros([size])))

    def serve_with_embedding(content_bytes, style_statistics, alpha):
        content_bytes = _same_length(content_bytes, ("style_statistics", style_statistics), ("alpha", alpha))

        def one_with(row):
            contents, vector, row_alpha = row
            content, error = stylizer.decode(contents)
            return image_io.encode_png(stylize.stylize_arbitrary(
                model, content, [vector[tf.newaxis]], alpha=row_alpha)), error

        def check(row):
            contents, vector, row_alpha = row
            usable = arbitrary.usable_embedding(model, vector[tf.newaxis])[0]
            error = tf.where(usable, stylizer.check(contents),
                             f"{unusable} (use the vector that style_embedding returns)")
            return _check_strength(error, row_alpha, "alpha")

        return _rows(one_with, (content_bytes, style_statistics, alpha), check)

    def serve_images(images, style_images):
        images = _same_length(images, ("style_image", style_images))
        shape = tf.shape(images)  # an empty batch runs on one blank image and returns none
        style_shape = tf.shape(style_images)
        big_enough = tf.debugging.assert_equal(
            (style_shape[0] == 0) | (tf.reduce_min(style_shape[1:3]) >= config.min_side), True,
            message=f"style_images too small: each side must be at least {config.min_side} px (as for every "
                    "input image; serving_default answers row by row)")
        with tf.control_dependencies([big_enough]):
            styles = _pad_empty(style_images)
        styles = image_io.to_float(image_io.to_uint8(
            image_io.resize(styles, image_io.shorter_side_size(tf.shape(styles)[1:3], config.style_size))))
        stylized = arbitrary.stylize(model, _pad_empty(images), [styles])
        return {"stylized": image_io.to_uint8(stylized[:shape[0], :shape[1], :shape[2]])}

    return {
        SERVING_DEFAULT: (serve_bytes, [tf.TensorSpec([None], tf.string, name="content_bytes"),
                                        tf.TensorSpec([None], tf.string, name="style_bytes")]),
        WITH_OPTIONS: (serve_with_options, [tf.TensorSpec([None], tf.string, name="content_bytes"),
                                            tf.TensorSpec([None], tf.string, name="style_bytes"),
                                            tf.TensorSpec([None], tf.float32, name="alpha"),
                                            tf.TensorSpec([None], tf.bool, name="preserve_color")]),
        STYLE_EMBEDDING: (serve_embedding, [tf.TensorSpec([None], tf.string, name="style_bytes")]),
        WITH_EMBEDDING: (serve_with_embedding, [
            tf.TensorSpec([None], tf.string, name="content_bytes"),
            tf.TensorSpec([None, size], tf.float32, name="style_statistics"),
            tf.TensorSpec([None], tf.float32, name="alpha")]),
        IMAGES: (serve_images, [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images"),
                                tf.TensorSpec([None, None, None, 3], tf.uint8, name="style_images")]),
    }


def _check_weights(error, weights):
    """The row's error: `error`, or else a style_weights row that is not finite, has a negative weight or sums
    to zero."""
    received = tf.strings.join(["; received [", tf.strings.reduce_join(
        tf.strings.as_string(weights, precision=3), separator=", "), "]"])
    problems = [
        (~tf.reduce_all(tf.math.is_finite(weights)), "style_weights must be finite"),
        (tf.reduce_any(weights < 0), "style_weights must be non-negative"),
        (~(tf.reduce_sum(weights) > 0), "style_weights must not all be zero"),
    ]
    weights_error = _first_problem([(condition, tf.strings.join([text, received])) for condition, text in problems])
    return tf.where(tf.equal(error, ""), weights_error, error)


def _normalized(weights):
    """Style weights [..., 26] scaled to sum to 1 along the last axis (builtin_weights' rule)."""
    return weights / tf.reduce_sum(weights, axis=-1, keepdims=True)


def _multistyle_functions(model, config):
    """serving_functions of the 26-style network: each row brings its style_weights [26], normalised here."""
    stylizer = _Stylizer(model, config)

    def one(contents, weights, strength=None, preserve_color=None):
        image, error = stylizer.decode(contents)

        def with_colors(keep):  # as stylize.stylize_builtin: the network sees the luminance, colours come back
            def run():
                seen = image_io.luminance_image(image) if keep else image
                output = magenta.stylize_builtin(model, seen[tf.newaxis], _normalized(weights)[tf.newaxis])[0]
                return image_io.keep_content_colors(output, image) if keep else output
            return run

        if preserve_color is None:
            return image_io.encode_png(with_colors(False)()), error
        stylized = tf.cond(preserve_color, with_colors(True), with_colors(False))
        return image_io.encode_png(image_io.blend(stylized, image, strength)), error

    def serve_bytes(image_bytes, style_weights):
        image_bytes = _same_length(image_bytes, (STYLE_WEIGHTS, style_weights))
        return _rows(lambda row: one(*row), (image_bytes, style_weights),
                     lambda row: _check_weights(stylizer.check(row[0]), row[1]))

    def serve_with_options(image_bytes, style_weights, strength, preserve_color):
        image_bytes = _same_length(image_bytes, (STYLE_WEIGHTS, style_weights), ("strength", strength),
                                   ("preserve_color", preserve_color))

        def check(row):
            contents, weights, row_strength, _ = row
            return _check_strength(_check_weights(stylizer.check(contents), weights), row_strength, "strength")

        return _rows(lambda row: one(*row), (image_bytes, style_weights, strength, preserve_color), check)

    def serve_images(images, style_weights):
        images = _same_length(images, (STYLE_WEIGHTS, style_weights))
        errors = tf.map_fn(lambda weights: _check_weights("", weights), style_weights,
                           fn_output_signature=tf.TensorSpec([], tf.string))
        valid = tf.debugging.assert_equal(tf.reduce_all(tf.equal(errors, "")), True, message=(
            "each style_weights row must be finite, non-negative and not all zero (stylize_with_options answers "
            "row by row)"))
        shape = tf.shape(images)  # an empty batch runs on one blank image and returns none
        empty = tf.cast(shape[0] == 0, tf.int32)
        weights = tf.pad(style_weights, [[0, empty], [0, 0]], constant_values=1.0)
        with tf.control_dependencies([valid]):
            stylized = magenta.stylize_builtin(model, _pad_empty(images), _normalized(weights))
        return {"stylized": image_io.to_uint8(stylized[:shape[0], :shape[1], :shape[2]])}

    weights_spec = tf.TensorSpec([None, magenta.NUM_BUILTIN_STYLES], tf.float32, name=STYLE_WEIGHTS)
    return {
        SERVING_DEFAULT: (serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes"), weights_spec]),
        WITH_OPTIONS: (serve_with_options, [tf.TensorSpec([None], tf.string, name="image_bytes"), weights_spec,
                                            tf.TensorSpec([None], tf.float32, name="strength"),
                                            tf.TensorSpec([None], tf.bool, name="preserve_color")]),
        IMAGES: (serve_images, [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images"), weights_spec]),
    }


def build_archive(model, config):
    """A keras.export.ExportArchive tracking `model`, with one endpoint per signature.

    ExportArchive (not a plain tf.Module) is what makes Keras 3 variables restorable by the TF1 session
    loader that TF Serving uses. Endpoints are traced without jit_compile: TF Serving runs no XLA.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, input_signature) in serving_functions(model, config).items():
        archive.add_endpoint(name=name, fn=function, input_signature=input_signature)
    return archive


def warmup_inputs(kind=files.ONE_STYLE, embedding_size=adain.STATISTICS_SIZE):
    """{signature name: {input name: numpy value}}: one small synthetic image per signature (and its style, a
    second synthetic image, for an arbitrary-style network; style 7 for the 26-style network).

    Args:
      kind: files.ONE_STYLE, ARBITRARY or MULTISTYLE (True and False: ARBITRARY and ONE_STYLE).
      embedding_size: an arbitrary-style network's arbitrary.embedding_size.
    """
    kind = _kind(kind)
    ramp = np.linspace(0, 255, WARMUP_SIDE, dtype=np.float32)
    image = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], np.full((1, 1), 128.0)), axis=-1)
    image = np.asarray(image_io.to_uint8(image))
    png = np.array([image_io.encode_png(image).numpy()], dtype=object)
    if kind == files.MULTISTYLE:
        weights = np.eye(magenta.NUM_BUILTIN_STYLES, dtype=np.float32)[[7]]
        return {
            SERVING_DEFAULT: {"image_bytes": png, STYLE_WEIGHTS: weights},
            WITH_OPTIONS: {"image_bytes": png, STYLE_WEIGHTS: weights, "strength": np.array([0.5], np.float32),
                           "preserve_color": np.array([True])},
            IMAGES: {"images": image[np.newaxis], STYLE_WEIGHTS: weights},
        }
    if kind != files.ARBITRARY:
        return {
            SERVING_DEFAULT: {"image_bytes": png},
            WITH_OPTIONS: {"image_bytes": png, "strength": np.array([0.5], np.float32),
                           "preserve_color": np.array([True])},
            IMAGES: {"images": image[np.newaxis]},
        }
    style = np.ascontiguousarray(image[::-1, :, ::-1])
    style_png = np.array([image_io.encode_png(style).numpy()], dtype=object)
    alpha = np.array([0.5], np.float32)
    return {
        SERVING_DEFAULT: {"content_bytes": png, "style_bytes": style_png},
        WITH_OPTIONS: {"content_bytes": png, "style_bytes": style_png, "alpha": alpha,
                       "preserve_color": np.array([True])},
        STYLE_EMBEDDING: {"style_bytes": style_png},
        WITH_EMBEDDING: {"content_bytes": png, "alpha": alpha,
                         "style_statistics": np.ones([1, embedding_size], np.float32)},
        IMAGES: {"images": image[np.newaxis], "style_images": style[np.newaxis]},
    }


def write_warmup_requests(path, model_name, kind=files.ONE_STYLE, embedding_size=None):
    """Writes TF Serving's warmup file: a TFRecord of PredictionLog records, one per signature of the model's
    kind (see warmup_inputs; embedding_size None: AdaIN's)."""
    model_pb2 = optional.require("tensorflow_serving.apis.model_pb2", _WARMUP_FEATURE)
    predict_pb2 = optional.require("tensorflow_serving.apis.predict_pb2", _WARMUP_FEATURE)
    prediction_log_pb2 = optional.require("tensorflow_serving.apis.prediction_log_pb2", _WARMUP_FEATURE)

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in warmup_inputs(kind, embedding_size or adain.STATISTICS_SIZE).items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name))
            for input_name, value in inputs.items():
                request.inputs[input_name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def models_config_text(model_names, serving_root=DEFAULT_SERVING_ROOT):
    """ModelServerConfig text for --model_config_file: each model served from `<serving_root>/<name>`."""
    from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
    model_server_config_pb2 = optional.require("tensorflow_serving.config.model_server_config_pb2",
                                               "export's models.config")

    server_config = model_server_config_pb2.ModelServerConfig()
    for name in model_names:
        server_config.model_config_list.config.add(
            name=name, base_path=f"{serving_root.rstrip('/')}/{name}", model_platform="tensorflow")
    return text_format.MessageToString(server_config)


def exported_models(export_dir):
    """Names of the folders in export_dir holding at least one version with a saved_model.pb."""
    names = []
    for name in sorted(os.listdir(export_dir)):
        model_dir = os.path.join(export_dir, name)
        if os.path.isdir(model_dir) and any(
                version.isdigit() and os.path.isfile(os.path.join(model_dir, version, "saved_model.pb"))
                for version in os.listdir(model_dir)):
            names.append(name)
    return names


def write_server_config(export_dir, serving_root=DEFAULT_SERVING_ROOT):
    """Writes models.config (every exported model) and batching_parameters.txt into export_dir, atomically."""
    _write_text(os.path.join(export_dir, MODELS_CONFIG),
                models_config_text(exported_models(export_dir), serving_root))
    _write_text(os.path.join(export_dir, BATCHING_PARAMETERS), _BATCHING_PARAMETERS_TEXT)


def _write_text(path, text):
    outputs.write_file(path, text.encode("utf-8"))
