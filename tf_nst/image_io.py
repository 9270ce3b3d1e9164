"""Image files in and out, and every pixel conversion in tf_nst.

This is the only module that converts pixels: file or encoded bytes <-> uint8 RGB (header sizes and PNG
encoding included; reading files with Pillow lives in tf_nst.files, without TensorFlow, and is re-exported
here), uint8 <-> float [0, 255], grayscale masks, resizing, colour blending, the feed-forward
network's [-1, 1] range, and VGG's "caffe" preprocessing. Per-image optimisation, training, `stylize` and the
serving graph all call it, so the network never sees differently prepared pixels in two places.
"""

import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_nst.errors import UserInputError
# Reading, checking and writing files needs no TensorFlow; they live in tf_nst.files and are re-exported here.
from tf_nst.files import MAX_PIXELS  # pylint: disable=unused-import
from tf_nst.files import WRITE_FORMATS
from tf_nst.files import check_output_path  # pylint: disable=unused-import
from tf_nst.files import read_image  # pylint: disable=unused-import
from tf_nst.files import read_mask  # pylint: disable=unused-import
from tf_nst.outputs import write_file
from tf_nst.sizes import scaled_size  # pylint: disable=unused-import  # re-exported

# Keras VGG16/VGG19 ("caffe" mode): BGR channel order, ImageNet mean subtracted, no scaling.
VGG_MEAN_BGR = (103.939, 116.779, 123.68)

def decode(contents):
    """Encoded PNG, JPEG, GIF, BMP or WebP bytes (a string tensor) -> [H, W, 3] uint8 RGB tensor.

    The graph-side reader for tf.data pipelines. Unlike `read_image`, it ignores EXIF orientation and drops
    transparency instead of compositing it on white; an animation gives its first frame. Raises
    tf.errors.InvalidArgumentError on bytes it cannot decode.
    """
    image = tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def try_decode(contents):
    """decode() that never raises: (uint8 [H, W, 3], True), or (uint8 [0, 0, 3], False) where the decoder
    refuses the bytes (a PNG with a bad CRC, a truncated PNG or JPEG, a bare header).

    A graph cannot catch an op's error, but a tf.data pipeline can drop the element whose computation raised
    (ignore_errors): the bytes are decoded as a one-element dataset, with the fallback queued behind it. Core
    TensorFlow ops only, so it runs in TF Serving; it cost about 0.2 ms a row here.
    """
    decoded = tf.data.Dataset.from_tensors(contents).map(lambda data: (decode(data), True)).ignore_errors()
    fallback = tf.data.Dataset.from_tensors((tf.zeros([0, 0, 3], tf.uint8), False))
    image, ok = decoded.concatenate(fallback).take(1).get_single_element()
    image.set_shape([None, None, 3])
    return image, ok


def resize(image, size):
    """Resizes float or uint8 images ([H, W, C] or [B, H, W, C]) to `size`, antialiased.

    Returns float32 in the input's value range.
    """
    image = tf.cast(image, tf.float32)
    return tf.image.resize(image, size, method="bilinear", antialias=True)


def resize_mask(mask, size):
    """Resizes an [H, W] mask like `resize` resizes an image (so the two stay aligned); float32 in [0, 1]."""
    mask = tf.convert_to_tensor(mask, tf.float32)
    if tuple(mask.shape) == tuple(size):
        return mask
    return tf.clip_by_value(resize(mask[..., None], size)[..., 0], 0.0, 1.0)


def pool_mask(mask, size):
    """Brings an [H, W] mask to a VGG feature map's [h, w] grid: each cell is the mean of the pixels it covers.

    VGG's 2x2, stride-2, "valid" poolings (max or average) take a feature map from H to floor(H / 2), dropping
    an odd last row or column. Halving the mask by 2x2 average pooling repeats exactly that geometry, so each
    cell of the result averages the same pixels as the feature it weights; tf.image.resize(method="area")
    would spread the mask over the dropped rows too, shifting it by up to a cell at the far edge. Sizes that
    halving cannot reach (not a VGG grid) fall back to an area resize.

    Args:
      mask: [H, W] weights.
      size: (h, w) of the feature map, at most (H, W).

    Returns:
      float32 [h, w].
    """
    pooled = tf.convert_to_tensor(mask, tf.float32)[None, :, :, None]
    height, width = size
    while int(pooled.shape[1]) // 2 >= height and int(pooled.shape[2]) // 2 >= width:
        pooled = tf.nn.avg_pool2d(pooled, 2, 2, "VALID")
    if tuple(pooled.shape[1:3]) != (height, width):
        pooled = tf.image.resize(pooled, size, method="area")
    return pooled[0, :, :, 0]


def resize_shorter_side(image, side):
    """Resizes an [H, W, C] image so that its shorter side is `side`; works on dynamic shapes (tf.data)."""
    return resize(image, shorter_side_size(tf.shape(image)[:2], side))


def shorter_side_size(size, side):
    """The int32 [height, width] that resize_shorter_side gives an image of int32 `size` [height, width]."""
    shape = tf.cast(size, tf.float32)
    scaled = tf.cast(tf.round(shape * (side / tf.reduce_min(shape))), tf.int32)
    return tf.maximum(scaled, side)


def resize_max_side(image, max_side):
    """Resizes an [H, W, C] image so that its longer side is `max_side` (up or down)."""
    height, width = int(image.shape[0]), int(image.shape[1])
    return resize(image, scaled_size(height, width, max_side))


def shrink_to_max_side(image, max_side):
    """Downscales an [H, W, C] image, antialiased, so that its longer side is at most `max_side`.

    Works on dynamic shapes (inside tf.function and tf.map_fn); a smaller image passes through unchanged.
    Returns float32 in the input's value range.
    """
    shape = tf.shape(image)[:2]
    return tf.cond(tf.reduce_max(shape) > max_side, lambda: resize(image, shrunk_size(shape, max_side)),
                   lambda: to_float(image))


def shrunk_size(size, max_side):
    """The int32 [height, width] that shrink_to_max_side gives an image of int32 `size` [height, width]."""
    longer = tf.reduce_max(size)
    scale = tf.constant(max_side, tf.float64) / tf.cast(tf.maximum(longer, 1), tf.float64)
    scaled = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float64) * scale), tf.int32), 1)
    return tf.where(longer > max_side, scaled, size)


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


def encode_png(image):
    """[H, W, 3] uint8, or float in [0, 255] (rounded and clipped) -> PNG bytes as a scalar string tensor."""
    return tf.io.encode_png(to_uint8(image))


def blend(stylized, content, strength):
    """Linear mix of two float [0, 255] images: `content` at strength 0, `stylized` at strength 1."""
    strength = tf.cast(strength, tf.float32)
    content = tf.cast(content, tf.float32)
    return content + strength * (tf.cast(stylized, tf.float32) - content)


def keep_content_colors(stylized, content):
    """Luminance-only transfer: the brightness (Y) of `stylized` with the colour (U, V) of `content`.

    Gatys, Bethge, Hertzmann and Shechtman 2016, "Preserving color in neural artistic style transfer"
    (arXiv:1606.05897), which uses YIQ; YUV differs only by a rotation of the chroma plane. Both images are
    float RGB in [0, 255] of the same shape; returns float32, which may fall slightly outside [0, 255]
    where the combination is out of gamut (`to_uint8` clips it).
    """
    stylized_yuv = tf.image.rgb_to_yuv(tf.cast(stylized, tf.float32) / 255.0)
    content_yuv = tf.image.rgb_to_yuv(tf.cast(content, tf.float32) / 255.0)
    yuv = tf.concat([stylized_yuv[..., :1], content_yuv[..., 1:]], axis=-1)
    return tf.image.yuv_to_rgb(yuv) * 255.0


# The formats whose size `read_header` reads, by leading bytes, in branch order: what decode() takes, less
# WebP, whose size no core op reads.
HEADER_FORMATS = (("JPEG", b"\xff\xd8\xff"), ("PNG", b"\x89PNG\r\n\x1a\n"), ("GIF", b"GIF8"), ("BMP", b"BM"))
# read_header's kind for bytes of none of those formats (empty ones included).
UNKNOWN_FORMAT = len(HEADER_FORMATS)
# Bytes the PNG, GIF and BMP headers need (BMP's width and height end at byte 26).
_HEADER_BYTES = 26
# Segments walked to find a JPEG's frame header. Files hold a handful before it (APPn, DQT, DHT; an ICC
# profile splits into 64 KB APP2 segments); more means a forged file.
JPEG_MAX_SEGMENTS = 256
# Frame header markers (SOF0-SOF15 less DHT C4, JPG C8 and DAC CC), and the markers that carry no length.
_JPEG_SOF = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
_JPEG_STANDALONE = (0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8)
_JPEG_SOS, _JPEG_EOI = 0xDA, 0xD9


def hex_bytes(data):
    """A scalar string tensor of raw bytes -> ASCII hex, "fe fa 00": an error message that quotes an upload
    stays valid text (raw bytes in it made the caller's decoding fail with UnicodeDecodeError; TensorFlow's
    Assert would double any backslash escape)."""
    table = tf.constant([f"{value:02x}" for value in range(256)])
    values = tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32)
    return tf.strings.reduce_join(tf.gather(table, values), separator=" ")


def read_header(contents):
    """The format and the size that encoded bytes claim in their header, found without decoding or raising.

    What a server checks, one row at a time, before it decodes anything: a graph cannot catch a decoder's
    error, so bytes it would refuse must be told apart first. Layouts: JPEG's frame header (SOFn), found by
    walking the marker segments (a bare search for the marker could find an EXIF thumbnail's); PNG's IHDR
    chunk (big-endian 32-bit width, height at bytes 16-23); GIF's logical screen (little-endian 16-bit
    width, height at bytes 6-9), which is also the size tf.io.decode_gif returns; BMP's info header
    (little-endian 32-bit width, height at bytes 18-25; a negative height means rows stored top-down). Core
    TensorFlow ops only, so it runs in TF Serving.

    Args:
      contents: a scalar string tensor.

    Returns:
      (kind, size): kind is an int32 scalar, the index of the format in HEADER_FORMATS, or UNKNOWN_FORMAT;
      size is int32 [height, width] as the header claims it (a forged header can claim anything, zero or
      negative included), [0, 0] for unknown bytes and for a JPEG whose frame header was not found.
    """
    # Padding lets every substr below read a full field, even from empty or truncated bytes.
    padded = contents + tf.constant(b"\0" * _HEADER_BYTES)

    def field(position, dtype, count, little_endian):
        raw = tf.strings.substr(padded, position, count * dtype.size)
        values = tf.io.decode_raw(raw, dtype, little_endian=little_endian)
        return tf.reshape(tf.cast(values, tf.int32), [count])

    def png():
        is_ihdr = tf.strings.substr(padded, 12, 4) == b"IHDR"
        return tf.where(is_ihdr, tf.reverse(field(16, tf.int32, 2, little_endian=False), [0]), 0)

    def gif():
        return tf.reverse(field(6, tf.uint16, 2, little_endian=True), [0])

    def bmp():
        width, height = tf.unstack(field(18, tf.int32, 2, little_endian=True))
        return tf.stack([tf.abs(height), width])

    matches = [tf.strings.substr(padded, 0, len(magic)) == magic for _, magic in HEADER_FORMATS]
    kind = tf.cast(tf.reduce_min(tf.where(tf.stack(matches + [tf.constant(True)]))), tf.int32)
    size = tf.switch_case(kind, [lambda: jpeg_frame_size(contents), png, gif, bmp,
                                 lambda: tf.zeros([2], tf.int32)])
    return kind, size


def jpeg_frame_size(contents):
    """[height, width] from a JPEG's frame header, or [0, 0] where none is found; never raises.

    Walks the marker segments from the start, as libjpeg reads them: fill bytes (0xFF) and stray bytes
    before a marker are skipped, markers without a length are stepped over, and the walk stops at the first
    SOFn marker, at the scan (SOS) or end (EOI), at a bad length, at the end of the bytes or after
    JPEG_MAX_SEGMENTS steps.
    """
    data = tf.cast(tf.io.decode_raw(contents, tf.uint8), tf.int32)
    length = tf.size(data)
    data = tf.concat([data, tf.zeros([9], tf.int32)], 0)  # every read below stays inside

    def byte(position):
        return tf.gather(data, tf.clip_by_value(position, 0, length + 8))

    def big_endian_16(position):
        return byte(position) * 256 + byte(position + 1)

    def next_ff(position):
        """The position of the next 0xFF at or after `position`; `length` when there is none."""
        rest = tf.concat([data[tf.minimum(position, length):length], [255]], 0)
        return position + tf.cast(tf.argmax(tf.cast(rest == 255, tf.int32)), tf.int32)

    searching, found, failed = 0, 1, 2

    def step(count, position, size, state):
        marker = byte(position + 1)
        at_ff = byte(position) == 255
        is_sof = tf.reduce_any(marker == tf.constant(_JPEG_SOF))
        standalone = tf.reduce_any(marker == tf.constant(_JPEG_STANDALONE))
        segment = big_endian_16(position + 2)
        stop = (marker == _JPEG_SOS) | (marker == _JPEG_EOI) | (~standalone & ~is_sof & (marker != 255)
                                                               & (segment < 2))
        next_position = tf.where(marker == 255, position + 1,
                                 tf.where(standalone, position + 2, position + 2 + segment))
        next_position = tf.cond(at_ff, lambda: next_position, lambda: next_ff(position))
        frame = tf.stack([big_endian_16(position + 5), big_endian_16(position + 7)])
        complete = position + 9 <= length
        state = tf.where(at_ff & is_sof, tf.where(complete, found, failed),
                         tf.where((at_ff & stop) | (next_position >= length), failed, searching))
        size = tf.where(state == found, frame, size)
        return count + 1, next_position, size, state

    _, _, size, state = tf.while_loop(
        lambda count, position, size, state: (state == searching) & (count < JPEG_MAX_SEGMENTS), step,
        (tf.constant(0), tf.constant(2), tf.zeros([2], tf.int32), tf.constant(searching)))
    return tf.where(state == found, size, 0)


def write_image(path, image, replace=True):
    """Writes an RGB image atomically (outputs.write_file); the format follows the extension.

    Args:
      path: the destination; its parent directory is created.
      image: [H, W, 3] uint8, or float in [0, 255] (rounded and clipped).
      replace: whether a file at `path` may be replaced (see outputs.write_file).
    """
    write_file(path, encode_image(path, image), replace)


def encode_image(path, image):
    """The bytes of an RGB image in the format that `path`'s extension names (the bytes write_image writes).

    Raises:
      UserInputError: an extension with no writable format.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in WRITE_FORMATS:
        raise UserInputError(
            f"output {path!r} has extension {extension!r}; use one of {', '.join(WRITE_FORMATS)}")
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(to_uint8(image))).save(buffer, format=WRITE_FORMATS[extension])
    return buffer.getvalue()


def luminance_image(image):
    """RGB [0, 255] -> its luminance (Y of YUV) repeated in three channels, float32 [0, 255]."""
    luma = tf.image.rgb_to_yuv(tf.cast(image, tf.float32) / 255.0)[..., :1] * 255.0
    return tf.repeat(luma, 3, axis=-1)


def match_luminance(source, target):
    """Shifts and scales the luminance of `source` to the mean and standard deviation of `target`'s.

    Gatys et al. 2017, §5.1: before a luminance-only transfer, the style's luminance histogram is matched to
    the content's. Both are RGB [0, 255]; returns a float32 luminance image (three equal channels).
    """
    source_y, target_y = luminance_image(source)[..., 0], luminance_image(target)[..., 0]
    mean_s, std_s = tf.reduce_mean(source_y), tf.math.reduce_std(source_y)
    mean_t, std_t = tf.reduce_mean(target_y), tf.math.reduce_std(target_y)
    matched = (source_y - mean_s) * (std_t / (std_s + 1e-6)) + mean_t
    return tf.repeat(matched[..., None], 3, axis=-1)


def match_color(source, target, mode="chol"):
    """Linearly maps the colours of `source` so that their mean and covariance equal `target`'s.

    Gatys et al. 2017, §5.2: x' = A (x - mu_s) + mu_t with A Sigma_s A^T = Sigma_t. "chol" uses
    A = L_t L_s^-1 from Cholesky factors; "sym" uses the symmetric (PCA) square roots
    A = Sigma_t^1/2 Sigma_s^-1/2, which rotates colours least.

    Args:
      source, target: [H, W, 3] RGB in [0, 255] (sizes may differ).
      mode: "chol" or "sym".

    Returns:
      float32 [H, W, 3], the recoloured `source` (not clipped, so the statistics match exactly).
    """
    source = tf.cast(source, tf.float64)
    target = tf.cast(target, tf.float64)
    mean_s, cov_s = _color_stats(source)
    mean_t, cov_t = _color_stats(target)
    eye = tf.eye(3, dtype=tf.float64) * 1e-5
    if mode == "chol":
        chol_s, chol_t = tf.linalg.cholesky(cov_s + eye), tf.linalg.cholesky(cov_t + eye)
        transform = chol_t @ tf.linalg.inv(chol_s)
    elif mode == "sym":
        transform = _sqrtm(cov_t + eye) @ tf.linalg.inv(_sqrtm(cov_s + eye))
    else:
        raise ValueError(f"unknown colour matching mode {mode!r}; use 'chol' or 'sym'")
    pixels = tf.reshape(source, [-1, 3]) - mean_s
    matched = pixels @ tf.transpose(transform) + mean_t
    return tf.cast(tf.reshape(matched, tf.shape(source)), tf.float32)


def _color_stats(image):
    pixels = tf.reshape(image, [-1, 3])
    mean = tf.reduce_mean(pixels, axis=0)
    centred = pixels - mean
    return mean, tf.transpose(centred) @ centred / tf.cast(tf.shape(pixels)[0], pixels.dtype)


def _sqrtm(matrix):
    values, vectors = tf.linalg.eigh(matrix)
    return vectors @ tf.linalg.diag(tf.sqrt(tf.maximum(values, 0.0))) @ tf.transpose(vectors)
