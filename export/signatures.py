"""Calling an exported arbitrary-style SavedModel from Python, as tf_nst.load_stylizer and the batch job do:
a style's statistics once (`style_embedding`), then any number of images with them (`stylize_with_embedding`),
or one style per image with the colour option (`stylize_with_options`). Rows travel as PNG, which is lossless.
A 26-style export (magenta-26) takes a style_weights row per image instead (stylize_builtin)."""

import numpy as np
import tensorflow as tf

from export import saved_model
from tf_nst import image_io
from tf_nst.errors import UserInputError


def is_arbitrary(loaded):
    """Whether a tf.saved_model.load result is an arbitrary-style export (it takes a style image)."""
    return saved_model.STYLE_EMBEDDING in loaded.signatures


def is_multistyle(loaded):
    """Whether a tf.saved_model.load result is a 26-style export (it takes style weights)."""
    return saved_model.STYLE_WEIGHTS in loaded.signatures[saved_model.SERVING_DEFAULT].structured_input_signature[1]


def stylize_builtin(loaded, images, style_weights, strength=1.0, preserve_color=False):
    """Stylises images with one row of 26 style weights through a 26-style export's `stylize_with_options`.

    Returns:
      As stylize_with_statistics.
    """
    count = len(images)
    result = loaded.signatures[saved_model.WITH_OPTIONS](
        image_bytes=encode(images), style_weights=tf.constant(np.tile(np.asarray(style_weights, np.float32),
                                                                       (count, 1))),
        strength=tf.fill([count], float(strength)), preserve_color=tf.fill([count], bool(preserve_color)))
    return _decoded(result)


def encode(images):
    """[H, W, 3] images (uint8, or float in [0, 255]) -> a string tensor [N] of PNGs."""
    return tf.stack([image_io.encode_png(image) for image in images]) if images else tf.constant([], tf.string)


def style_statistics(loaded, styles):
    """The export's style_statistics of each style image, each resized by the export's own --style_size.

    Args:
      loaded: an arbitrary-style export, as tf.saved_model.load gives it.
      styles: [H, W, 3] style images in [0, 255].

    Returns:
      float32 [len(styles), STATISTICS_SIZE].

    Raises:
      UserInputError: a style the export refuses (its reason, in one line).
    """
    result = loaded.signatures[saved_model.STYLE_EMBEDDING](style_bytes=encode(styles))
    for index, error in enumerate(result["error"].numpy()):
        if error:
            raise UserInputError(f"the exported model refuses style {index + 1} of {len(styles)}: "
                                 f"{error.decode()}")
    return result["style_statistics"].numpy()


def blend(statistics, blend_weights=None):
    """One style_statistics vector for a blend of styles: their weighted mean.

    AdaIN's target for a style, std * normalised content + mean (adain.blend_targets), is linear in the style's
    mean and std, so the weighted mean of the vectors gives the weighted sum of the targets: the blend that
    `stylize --style_blend_weights` makes.

    Args:
      statistics: float32 [S, STATISTICS_SIZE].
      blend_weights: S non-negative weights, not all zero (None: equal).
    """
    weights = np.ones(len(statistics)) if blend_weights is None else np.asarray(blend_weights, np.float64)
    return (weights / weights.sum()) @ np.asarray(statistics, np.float64)


def check_options(style, model, hint=""):
    """Raises UserInputError for style options an arbitrary-style export cannot apply: it has no histogram
    colour mode, and its luminance mode (stylize_with_options) takes one style image per row.

    Args:
      style: a stylize.Style.
      model: how the message names the model, e.g. "an arbitrary-style export".
      hint: appended to the message (what to do instead).
    """
    color = style.preserve_color
    if color == "histogram" or (color == "luminance" and len(style.images) > 1):
        raise UserInputError(f"{model} takes preserve_color 'none' (with any blend of styles) or 'luminance' with "
                             f"one style; received {color!r} with {len(style.images)} style(s){hint}")


def shared_statistics(loaded, style):
    """The blended statistics that every image of a job shares (computed once), or None with preserve_color
    "luminance", where the style image goes with each image (its luminance is matched to each content)."""
    if style.preserve_color == "luminance":
        return None
    return blend(style_statistics(loaded, style.images), style.blend_weights)


def stylize(loaded, images, style, statistics):
    """Stylises images with a stylize.Style (checked by check_options) and its shared_statistics.

    Returns:
      As stylize_with_statistics.
    """
    if statistics is None:
        return stylize_with_style(loaded, images, style.images[0], style.alpha, preserve_color=True)
    return stylize_with_statistics(loaded, images, statistics, style.alpha)


def stylize_with_statistics(loaded, images, statistics, alpha=1.0):
    """Stylises images with one style's statistics vector through `stylize_with_embedding`.

    The export downscales an image whose longer side exceeds its --export_max_size, so an output can be
    smaller than its input.

    Returns:
      A list with, per image, (uint8 [H, W, 3], "") or (None, the export's one-line reason for refusing it).
    """
    count = len(images)
    result = loaded.signatures[saved_model.WITH_EMBEDDING](
        content_bytes=encode(images), alpha=tf.fill([count], float(alpha)),
        style_statistics=tf.constant(np.repeat(np.asarray(statistics, np.float32)[None], count, axis=0)))
    return _decoded(result)


def stylize_with_style(loaded, images, style, alpha=1.0, preserve_color=False):
    """Stylises images with one style image through `stylize_with_options` (the style encoded with each image:
    `preserve_color` needs the style's luminance matched to each content).

    Returns:
      As stylize_with_statistics.
    """
    count = len(images)
    result = loaded.signatures[saved_model.WITH_OPTIONS](
        content_bytes=encode(images), style_bytes=tf.repeat(encode([style]), count),
        alpha=tf.fill([count], float(alpha)), preserve_color=tf.fill([count], bool(preserve_color)))
    return _decoded(result)


def _decoded(result):
    return [(tf.io.decode_png(data, channels=3).numpy(), "") if not error else (None, error.decode())
            for data, error in zip(result["output_bytes"].numpy(), result["error"].numpy())]
