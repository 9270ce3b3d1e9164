"""Image files in and out, and every pixel conversion in tf_nst.

This is the only module that converts pixels: file or encoded bytes <-> uint8 RGB, uint8 <-> float [0, 255],
resizing, the feed-forward network's [-1, 1] range, and VGG's "caffe" preprocessing. Per-image
optimisation, training, `stylize` and the serving graph all call it, so the network never sees differently
prepared pixels in two places.
"""

import os
import tempfile
import warnings

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps, UnidentifiedImageError

from tf_nst.errors import UserInputError

# Refuse images with more pixels than this before decoding them (a decompression bomb guard).
MAX_PIXELS = 100_000_000

# Output format by file extension.
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}

# Keras VGG16/VGG19 ("caffe" mode): BGR channel order, ImageNet mean subtracted, no scaling.
VGG_MEAN_BGR = (103.939, 116.779, 123.68)

_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


def read_image(path, max_pixels=MAX_PIXELS):
    """Reads an image file as uint8 RGB.

    Grayscale, palette, 16-bit, CMYK and transparent images are converted to RGB (transparency is
    composited on white), EXIF orientation is applied, and an animated image gives its first frame.

    Args:
      path: the file to read.
      max_pixels: images with more pixels than this are refused before they are decoded.

    Returns:
      A uint8 array of shape [height, width, 3].

    Raises:
      UserInputError: the file is missing, not an image, truncated, or too large.
    """
    if not os.path.isfile(path):
        raise UserInputError(f"image file not found: {path!r}")
    try:
        with warnings.catch_warnings(), Image.open(path) as img:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is checked here
            width, height = img.size
            if width * height > max_pixels:
                raise UserInputError(
                    f"image {path!r} is {width}x{height} = {width * height} pixels; the limit is "
                    f"{max_pixels} pixels")
            img.seek(0)
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except Image.DecompressionBombError as e:
        raise UserInputError(f"image {path!r} is too large ({e}); the limit is {max_pixels} pixels") from None
    except _READ_ERRORS as e:
        if isinstance(e, UserInputError):
            raise
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserInputError(
            f"cannot read image {path!r} ({reason}); expected a PNG, JPEG, GIF, BMP, WebP or TIFF "
            "file") from None


def decode(contents):
    """Encoded PNG, JPEG, GIF, BMP or WebP bytes (a string tensor) -> [H, W, 3] uint8 RGB tensor.

    The graph-side reader for tf.data pipelines. Unlike `read_image`, it ignores EXIF orientation and drops
    transparency instead of compositing it on white; an animation gives its first frame. Raises
    tf.errors.InvalidArgumentError on bytes it cannot decode.
    """
    image = tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _to_rgb(img):
    """Converts a loaded PIL image of any mode to a uint8 RGB array."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        gray = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or gray.max(initial=0) > 255:
            gray = gray / 257.0
        gray = np.clip(np.round(gray), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def scaled_size(height, width, max_side):
    """The (height, width) that makes the longer side `max_side`, keeping the aspect ratio."""
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(image, size):
    """Resizes float or uint8 images ([H, W, C] or [B, H, W, C]) to `size`, antialiased.

    Returns float32 in the input's value range.
    """
    image = tf.cast(image, tf.float32)
    return tf.image.resize(image, size, method="bilinear", antialias=True)


def resize_shorter_side(image, side):
    """Resizes an [H, W, C] image so that its shorter side is `side`; works on dynamic shapes (tf.data)."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scaled = tf.cast(tf.round(shape * (side / tf.reduce_min(shape))), tf.int32)
    return resize(image, tf.maximum(scaled, side))


def resize_max_side(image, max_side):
    """Resizes an [H, W, C] image so that its longer side is `max_side` (up or down)."""
    height, width = int(image.shape[0]), int(image.shape[1])
    return resize(image, scaled_size(height, width, max_side))


def to_float(image):
    """uint8 [0, 255] -> float32 [0, 255]."""
    return tf.cast(image, tf.float32)


def to_uint8(image):
    """float [0, 255] -> uint8, rounded and clipped."""
    image = tf.cast(image, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def to_signed_unit(image):
    """float [0, 255] -> float32 [-1, 1], the feed-forward network's input range."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def from_signed_unit(image):
    """float [-1, 1] -> float32 [0, 255], the feed-forward network's output range."""
    return (tf.cast(image, tf.float32) + 1.0) * 127.5


def vgg_preprocess(image):
    """RGB float in [0, 255] -> the "caffe" input that Keras VGG16/VGG19 weights expect."""
    image = tf.cast(image, tf.float32)
    return tf.reverse(image, axis=[-1]) - tf.constant(VGG_MEAN_BGR, dtype=tf.float32)


def check_output_path(path, inputs=(), overwrite=False):
    """Validates an output path before any work is done.

    Args:
      path: where an image will be written.
      inputs: input file paths; the output may never be one of them, even with `overwrite`.
      overwrite: whether an existing output file may be replaced.

    Raises:
      UserInputError: unknown extension, an input file, or an existing file without `overwrite`.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in WRITE_FORMATS:
        raise UserInputError(
            f"output {path!r} has extension {extension!r}; use one of {', '.join(WRITE_FORMATS)}")
    real = os.path.realpath(path)
    for input_path in inputs:
        if input_path and os.path.realpath(input_path) == real:
            raise UserInputError(f"output {path!r} is also an input file; choose another output path")
    if os.path.isdir(path):
        raise UserInputError(f"output {path!r} is a directory; give a file name such as out.png")
    if os.path.exists(path) and not overwrite:
        raise UserInputError(f"output {path!r} already exists; pass --overwrite to replace it")


def write_image(path, image):
    """Writes an RGB image atomically (temp file, then rename); the format follows the extension.

    Args:
      path: the destination; its parent directory is created.
      image: [H, W, 3] uint8, or float in [0, 255] (rounded and clipped).
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in WRITE_FORMATS:
        raise UserInputError(
            f"output {path!r} has extension {extension!r}; use one of {', '.join(WRITE_FORMATS)}")
    array = np.asarray(to_uint8(image))
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    handle, temp_path = tempfile.mkstemp(dir=parent, prefix=".tmp-", suffix=extension)
    try:
        with os.fdopen(handle, "wb") as f:
            Image.fromarray(array).save(f, format=WRITE_FORMATS[extension])
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise
