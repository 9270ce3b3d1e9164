"""Applying a trained stylizer: load it, then stylise an image file or a folder of them into a folder.

Both model kinds: a one-style transformer takes the images alone; an arbitrary-style network (tf_nst.adain)
also takes a Style (its images, blend weights, alpha and colour mode).
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tf_nst import adain  # registers the arbitrary network's layers for loading
from tf_nst import defaults
from tf_nst import files
from tf_nst import image_io
from tf_nst import transformer  # registers the network's layers for loading
from tf_nst.errors import UserInputError
from tf_nst.files import plan_outputs  # pylint: disable=unused-import  # re-exported


# --preserve_color for an arbitrary-style network: as `transfer` does it (optimize.py), with the style's
# statistics in place of its Gram matrices.
COLOR_MODES = ("none", "luminance", "histogram")
DEFAULT_STYLE_SIZE = defaults.STYLE_SIZE


@dataclasses.dataclass(frozen=True)
class Style:
    """What an arbitrary-style network stylises with.

    Attributes:
      images: [H, W, 3] RGB style images in [0, 255], at the size the encoder sees them (read_styles).
      blend_weights: one non-negative weight per image (None: equal); normalised to sum to 1.
      alpha: 0 keeps the content's features, 1 is full style (Huang & Belongie 2017, §7.1).
      preserve_color: "none"; "luminance": stylise the content's luminance with luminance-matched styles and
        keep the content's colours; "histogram": recolour each style to the content's colour mean and
        covariance first (Gatys et al. 2017, §5).
      content_masks: optional spatial control, one [H, W] mask in [0, 1] per image (files.read_mask), resized
        to each content image: each style applies where its mask is white, in feature space (adain.blend_targets).
    """

    images: tuple
    blend_weights: tuple = None
    alpha: float = 1.0
    preserve_color: str = "none"
    content_masks: tuple = None

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise UserInputError(f"alpha must be in [0, 1]; received {self.alpha!r}")
        if self.preserve_color not in COLOR_MODES:
            raise UserInputError(f"unknown preserve_color {self.preserve_color!r}; use one of "
                                 f"{', '.join(COLOR_MODES)}")
        weights = self.blend_weights
        if weights is not None and (len(weights) != len(self.images) or min(weights) < 0 or not sum(weights) > 0):
            raise UserInputError(f"blend weights {list(weights)} for {len(self.images)} style(s): give one "
                                 "non-negative weight per style, not all zero")
        if self.content_masks is not None and len(self.content_masks) != len(self.images):
            raise UserInputError(f"{len(self.content_masks)} content mask(s) for {len(self.images)} style(s); "
                                 "give one mask per style, in the same order")


def read_styles(paths, style_size=DEFAULT_STYLE_SIZE):
    """Reads style image files, each resized so that its shorter side is `style_size` (Huang & Belongie
    2017 train and test at 512), as uint8 [H, W, 3] arrays.

    Raises:
      UserInputError: a missing or unreadable file.
    """
    return tuple(np.asarray(image_io.to_uint8(image_io.resize_shorter_side(files.read_image(path), style_size)))
                 for path in paths)


def check_model_kind(model, style, path="the model"):
    """Refuses a style for a one-style model, and no style for an arbitrary-style one.

    Raises:
      UserInputError: the mismatch, in one line.
    """
    if adain.is_arbitrary(model) and style is None:
        raise UserInputError(f"{path} is an arbitrary-style network; give it a style image (--style)")
    if not adain.is_arbitrary(model) and style is not None:
        raise UserInputError(f"{path} learnt one style and takes no style image; --style is for "
                             "arbitrary-style models (train --architecture=adain)")


def style_statistics(model, images, preserve_color="none", content=None):
    """The style_statistics of each style image, as the content's colour mode sees them.

    Args:
      model: an arbitrary-style network.
      images: [H, W, 3] style images in [0, 255] (arrays or tensors).
      preserve_color: a Style's colour mode.
      content: float32 [H, W, 3]; needed only when preserve_color is not "none".

    Returns:
      A list of float32 [1, adain.STATISTICS_SIZE], one per style image.
    """
    images = [tf.convert_to_tensor(image, tf.float32) for image in images]
    if preserve_color == "luminance":
        images = [image_io.match_luminance(image, content) for image in images]
    elif preserve_color == "histogram":
        images = [image_io.match_color(image, content) for image in images]
    return [adain.style_statistics(model, image[tf.newaxis]) for image in images]


def stylize_arbitrary(model, image, statistics, blend_weights=None, alpha=1.0, preserve_color="none",
                      masks=None):
    """One content image through an arbitrary-style network, in TensorFlow ops alone (the serving graph runs
    it too).

    Args:
      model: an arbitrary-style network.
      image: [H, W, 3] in [0, 255].
      statistics: style_statistics(model, images, preserve_color, image), or style vectors from elsewhere
        (the served style_embedding) when preserve_color is "none".
      blend_weights: one per style (None: equal). alpha: a float or a scalar tensor in [0, 1].
      preserve_color: a Style's colour mode.
      masks: optional, one [H, W] mask per style at the image's size (adain.stylize_with_statistics).

    Returns:
      float32 [H, W, 3] in [0, 255] (a little outside with "luminance", where the colours are out of gamut).
    """
    content = tf.convert_to_tensor(image, tf.float32)
    seen = image_io.luminance_image(content) if preserve_color == "luminance" else content
    output = adain.stylize_with_statistics(model, seen[tf.newaxis], statistics, blend_weights, alpha, masks)[0]
    return image_io.keep_content_colors(output, content) if preserve_color == "luminance" else output


def _stylize_arbitrary(model, image, style, statistics=None):
    """[H, W, 3] image -> float32 [H, W, 3]; statistics: style_statistics of the style, if they were computed
    already (they do not depend on the content when style.preserve_color is "none")."""
    content = tf.convert_to_tensor(image, tf.float32)
    if statistics is None:
        statistics = style_statistics(model, style.images, style.preserve_color, content)
    masks = None
    if style.content_masks is not None:
        masks = [image_io.resize_mask(mask, content.shape[:2]) for mask in style.content_masks]
    return stylize_arbitrary(model, content, statistics, style.blend_weights, style.alpha, style.preserve_color,
                             masks)


@dataclasses.dataclass(frozen=True)
class StylizeResult:
    """What a run wrote.

    Attributes:
      written: the output files written.
      failed: (input file, reason) for each input that could not be stylised; its output is not written.
    """

    written: tuple
    failed: tuple


def load_stylizer(path):
    """Loads a stylizer from a `.keras` file, or from a train_dir holding files.MODEL_FILE.

    Raises:
      UserInputError: no such file, or a file that is not a saved stylizer.
    """
    path = files.find_model(path)
    try:
        return keras.models.load_model(path, compile=False)
    except (ValueError, OSError, KeyError, TypeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserInputError(
            f"cannot load model {path!r} ({reason}); pass a .keras file written by `train`") from None


def prepare_image(image, max_size=None):
    """What the network gets: the image downscaled to max_size, checked against the network's minimum.

    Args:
      image: [H, W, 3] uint8 or float in [0, 255].
      max_size: if given, an image whose longer side exceeds it is downscaled (antialiased) to it.

    Returns:
      The image, unchanged, or downscaled and rounded to uint8 [H', W', 3], as a stored image would be: the
      batch job feeds the exported uint8 signature, and an untrained network can turn the half grey level
      of rounding into several grey levels of output.

    Raises:
      UserInputError: an image smaller than the network accepts.
    """
    height, width = image.shape[:2]
    if max_size and max(height, width) > max_size:
        image = np.asarray(image_io.to_uint8(image_io.resize_max_side(image, max_size)))
    files.check_min_side("the image" if max(image.shape[:2]) == max(height, width)
                         else f"the image, downscaled from {width}x{height} px,", image.shape[1], image.shape[0])
    return image


def stylize_image(model, image, max_size=None, style=None, statistics=None):
    """Stylises one image.

    Args:
      model: a stylizer (transformer.build_transformer, adain.build_model or load_stylizer).
      image: [H, W, 3] uint8 or float in [0, 255].
      max_size: if given, an image whose longer side exceeds it is first downscaled to it.
      style: a Style, for an arbitrary-style network only.
      statistics: style_statistics(model, style), when the caller computed them once for many images.

    Returns:
      The stylised image, [H', W', 3] uint8, the size of the (downscaled) input.

    Raises:
      UserInputError: an image smaller than the network accepts.
    """
    image = prepare_image(image, max_size)
    if style is not None:
        return np.asarray(image_io.to_uint8(_stylize_arbitrary(model, image, style, statistics)))
    output = model(tf.convert_to_tensor(image, tf.float32)[None], training=False)[0]
    return np.asarray(image_io.to_uint8(output))


def stylize_files(model, pairs, max_size=None, callback=None, style=None):
    """Stylises each (input, output) pair; an input that cannot be read is reported and skipped.

    Args:
      model: a stylizer.
      pairs: (input file, output file) pairs, as from plan_outputs.
      max_size: see stylize_image.
      callback: optional callback(input_path, output_path, error) after each file, where error is None or
        the reason the file was skipped.
      style: a Style, for an arbitrary-style network (required there, refused by a one-style network).

    Returns:
      A StylizeResult. Outputs are written atomically, so a failure never leaves a partial file.

    Raises:
      UserInputError: a style for a one-style network, or none for an arbitrary-style one.
    """
    check_model_kind(model, style)
    statistics = None
    if style is not None and style.preserve_color == "none":  # the same for every image: computed once
        statistics = style_statistics(model, style.images)
    written, failed = [], []
    for path, output in pairs:
        error = None
        try:
            image = image_io.read_image(path)
            image_io.write_image(output, stylize_image(model, image, max_size, style, statistics))
            written.append(output)
        except UserInputError as e:
            error = str(e)
            failed.append((path, error))
        if callback is not None:
            callback(path, output, error)
    return StylizeResult(tuple(written), tuple(failed))


def stylize(model_path, input_path, output_dir, max_size=None, overwrite=False, callback=None, style=None):
    """Loads a stylizer and stylises a file or a folder into output_dir (see plan_outputs, stylize_files;
    `style` a Style for an arbitrary-style network).

    Raises:
      UserInputError: a bad model, input or output path, found before any image is stylised.
    """
    pairs = plan_outputs(input_path, output_dir, overwrite)
    model = load_stylizer(model_path)
    return stylize_files(model, pairs, max_size, callback, style)
