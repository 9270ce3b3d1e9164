"""Applying a stylizer: load it, then stylise an image file or a folder of them into a folder.

Three model kinds: a one-style transformer takes the images alone; an arbitrary-style network (tf_nst.adain,
or the pretrained tf_nst.magenta one) also takes a Style (its images, blend weights, alpha and colour mode);
the pretrained 26-style network takes a BuiltinStyle (weights over its styles).
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tf_nst import adain  # registers the arbitrary network's layers for loading  # pylint: disable=unused-import
from tf_nst import arbitrary
from tf_nst import defaults
from tf_nst import files
from tf_nst import image_io
from tf_nst import magenta  # registers the pretrained networks' layers for loading
from tf_nst import outputs
from tf_nst import pretrained
from tf_nst import transformer  # registers the network's layers for loading
from tf_nst.errors import UserInputError
from tf_nst.files import plan_outputs  # pylint: disable=unused-import  # re-exported
from tf_nst.pretrained import builtin_weights  # pylint: disable=unused-import  # re-exported


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


@dataclasses.dataclass(frozen=True)
class BuiltinStyle:
    """What the 26-style network stylises with.

    Attributes:
      weights: NUM_BUILTIN_STYLES non-negative weights (builtin_weights), normalised to sum to 1.
      preserve_color: "none", or "luminance": keep the content's colours.
    """

    weights: tuple
    preserve_color: str = "none"

    def __post_init__(self):
        if len(self.weights) != magenta.NUM_BUILTIN_STYLES or min(self.weights) < 0 or not sum(self.weights) > 0:
            raise UserInputError(f"built-in style weights {list(self.weights)}: give {magenta.NUM_BUILTIN_STYLES} "
                                 "non-negative weights, not all zero")
        if self.preserve_color not in ("none", "luminance"):
            raise UserInputError(f"preserve_color {self.preserve_color!r} for the built-in styles: use none or "
                                 "luminance (histogram matching needs a style image)")


def check_model_kind(model, style, path="the model"):
    """Refuses a style for a one-style model, no style for an arbitrary-style one, and a mismatched kind.

    Raises:
      UserInputError: the mismatch, in one line.
    """
    if arbitrary.is_multistyle(model) != isinstance(style, BuiltinStyle):
        if arbitrary.is_multistyle(model):
            raise UserInputError(f"{path} is the 26-style network; pick its style by index (--builtin_style=7)")
        raise UserInputError(f"{path} takes no built-in style index; --builtin_style is for {pretrained.MULTISTYLE}")
    if arbitrary.is_arbitrary(model) and style is None:
        raise UserInputError(f"{path} is an arbitrary-style network; give it a style image (--style)")
    if not arbitrary.is_arbitrary(model) and isinstance(style, Style):
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
      A list of float32 [1, arbitrary.embedding_size(model)], one per style image.
    """
    images = [tf.convert_to_tensor(image, tf.float32) for image in images]
    if preserve_color == "luminance":
        images = [image_io.match_luminance(image, content) for image in images]
    elif preserve_color == "histogram":
        images = [image_io.match_color(image, content) for image in images]
    return [arbitrary.style_embedding(model, image[tf.newaxis]) for image in images]


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
      masks: optional, one [H, W] mask per style at the image's size (arbitrary.stylize_with_embeddings).

    Returns:
      float32 [H, W, 3] in [0, 255] (a little outside with "luminance", where the colours are out of gamut).
    """
    content = tf.convert_to_tensor(image, tf.float32)
    seen = image_io.luminance_image(content) if preserve_color == "luminance" else content
    output = arbitrary.stylize_with_embeddings(model, seen[tf.newaxis], statistics, blend_weights, alpha, masks)[0]
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


def stylize_builtin(model, image, style):
    """One [H, W, 3] image through the 26-style network with a BuiltinStyle: float32 [H, W, 3] in [0, 255]."""
    content = tf.convert_to_tensor(image, tf.float32)
    seen = image_io.luminance_image(content) if style.preserve_color == "luminance" else content
    output = magenta.stylize_builtin(model, seen[tf.newaxis], [style.weights])[0]
    return image_io.keep_content_colors(output, content) if style.preserve_color == "luminance" else output


CONTACT_SHEET_TILE = 256
_SHEET_COLUMNS = 7
_SHEET_PAD = 6
_SHEET_LABEL = 16


def contact_sheet(model, image, preserve_color="none"):
    """The 26-style network's styles on one image: uint8 [H, W, 3], the original first, each tile labelled with
    the index that --builtin_style takes."""
    from PIL import Image, ImageDraw  # pylint: disable=import-outside-toplevel

    image = np.asarray(image_io.to_uint8(image))
    tiles = [("original", image)] + [
        (str(index), np.asarray(image_io.to_uint8(stylize_builtin(
            model, image, BuiltinStyle(tuple(float(i == index) for i in range(magenta.NUM_BUILTIN_STYLES)),
                                       preserve_color)))))
        for index in range(magenta.NUM_BUILTIN_STYLES)]
    height, width = image.shape[:2]
    rows = -(-len(tiles) // _SHEET_COLUMNS)
    sheet = Image.new("RGB", (_SHEET_COLUMNS * (width + _SHEET_PAD) + _SHEET_PAD,
                              rows * (height + _SHEET_LABEL + _SHEET_PAD) + _SHEET_PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for number, (label, tile) in enumerate(tiles):
        row, column = divmod(number, _SHEET_COLUMNS)
        x = _SHEET_PAD + column * (width + _SHEET_PAD)
        y = _SHEET_PAD + row * (height + _SHEET_LABEL + _SHEET_PAD)
        sheet.paste(Image.fromarray(tile), (x, y + _SHEET_LABEL))
        draw.text((x + 2, y + 2), label, fill="black")
    return np.asarray(sheet)


def load_stylizer(path):
    """Loads a stylizer: a built-in network by name (pretrained.NETWORKS), a `.keras` file, or a train_dir
    holding files.MODEL_FILE.

    Raises:
      UserInputError: no such file, or a file that is not a saved stylizer.
    """
    if pretrained.is_builtin(path):
        return pretrained.load(path)
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
      style: a Style, for an arbitrary-style network only; a BuiltinStyle for the 26-style network.
      statistics: style_statistics(model, style), when the caller computed them once for many images.

    Returns:
      The stylised image, [H', W', 3] uint8, the size of the (downscaled) input.

    Raises:
      UserInputError: an image smaller than the network accepts.
    """
    image = prepare_image(image, max_size)
    return np.asarray(image_io.to_uint8(stylize_float(model, image, style, statistics)))


def stylize_float(model, image, style=None, statistics=None):
    """One [H, W, 3] image through any stylizer in TensorFlow ops alone, so that a tf.function can hold it (video
    compiles it once per frame size): float32 [H, W, 3] in [0, 255]; style and statistics as stylize_image's."""
    if isinstance(style, BuiltinStyle):
        return stylize_builtin(model, image, style)
    if style is not None:
        return _stylize_arbitrary(model, image, style, statistics)
    return model(tf.convert_to_tensor(image, tf.float32)[None], training=False)[0]


def stylize_files(model, pairs, max_size=None, callback=None, style=None, replace=True):
    """Stylises each (input, output) pair; an input that cannot be read is reported and skipped.

    Args:
      model: a stylizer.
      pairs: (input file, output file) pairs, as from plan_outputs.
      max_size: see stylize_image.
      callback: optional callback(input_path, output_path, error) after each file, where error is None or
        the reason the file was skipped.
      style: a Style, for an arbitrary-style network (required there, refused by a one-style network).
      replace: whether an output file may be replaced; without it, an output that appeared since plan_outputs
        checked it (another run) is kept, the input counted as failed and its result kept beside it.

    Returns:
      A StylizeResult. Outputs are written atomically, so a failure never leaves a partial file.

    Raises:
      UserInputError: a style for a one-style network, or none for an arbitrary-style one.
    """
    check_model_kind(model, style)
    statistics = None
    if isinstance(style, Style) and style.preserve_color == "none":  # the same for every image: computed once
        statistics = style_statistics(model, style.images)
    written, failed = [], []
    for path, output in pairs:
        error = None
        try:
            image = image_io.read_image(path)
            image_io.write_image(output, stylize_image(model, image, max_size, style, statistics), replace)
            written.append(output)
        except (UserInputError, outputs.OutputAppearedError) as e:
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
    return stylize_files(model, pairs, max_size, callback, style, replace=overwrite)
