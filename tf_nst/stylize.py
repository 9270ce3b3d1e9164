"""Applying a trained stylizer: load it, then stylise an image file or a folder of them into a folder."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tf_nst import adain  # pylint: disable=unused-import  # registers the arbitrary network's layers for loading
from tf_nst import files
from tf_nst import image_io
from tf_nst import transformer  # registers the network's layers for loading
from tf_nst.errors import UserInputError
from tf_nst.files import plan_outputs  # pylint: disable=unused-import  # re-exported


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


def is_arbitrary_style(model):
    """Whether `model` is the arbitrary-style network (adain.build_model), which takes a style image too."""
    return "style" in [tensor.name for tensor in model.inputs]


def require_one_style(model, path):
    """Raises UserInputError for an arbitrary-style network: stylising with it needs a style image, which this
    path does not take yet (issue #11)."""
    if is_arbitrary_style(model):
        raise UserInputError(f"{path!r} is an arbitrary-style network (train --architecture=adain); stylising "
                             "with it needs a style image, which is not supported yet: use tf_nst.adain.stylize")


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


def stylize_image(model, image, max_size=None):
    """Stylises one image.

    Args:
      model: a stylizer (transformer.build_transformer or load_stylizer).
      image: [H, W, 3] uint8 or float in [0, 255].
      max_size: if given, an image whose longer side exceeds it is first downscaled to it.

    Returns:
      The stylised image, [H', W', 3] uint8, the size of the (downscaled) input.

    Raises:
      UserInputError: an image smaller than the network accepts.
    """
    image = prepare_image(image, max_size)
    output = model(tf.convert_to_tensor(image, tf.float32)[None], training=False)[0]
    return np.asarray(image_io.to_uint8(output))


def stylize_files(model, pairs, max_size=None, callback=None):
    """Stylises each (input, output) pair; an input that cannot be read is reported and skipped.

    Args:
      model: a stylizer.
      pairs: (input file, output file) pairs, as from plan_outputs.
      max_size: see stylize_image.
      callback: optional callback(input_path, output_path, error) after each file, where error is None or
        the reason the file was skipped.

    Returns:
      A StylizeResult. Outputs are written atomically, so a failure never leaves a partial file.
    """
    written, failed = [], []
    for path, output in pairs:
        error = None
        try:
            image_io.write_image(output, stylize_image(model, image_io.read_image(path), max_size))
            written.append(output)
        except UserInputError as e:
            error = str(e)
            failed.append((path, error))
        if callback is not None:
            callback(path, output, error)
    return StylizeResult(tuple(written), tuple(failed))


def stylize(model_path, input_path, output_dir, max_size=None, overwrite=False, callback=None):
    """Loads a stylizer and stylises a file or a folder into output_dir (see plan_outputs, stylize_files).

    Raises:
      UserInputError: a bad model, input or output path, found before any image is stylised.
    """
    pairs = plan_outputs(input_path, output_dir, overwrite)
    model = load_stylizer(model_path)
    return stylize_files(model, pairs, max_size, callback)
