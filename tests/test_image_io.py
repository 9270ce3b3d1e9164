"""Reading odd images, refusing bad ones, atomic writes, and the VGG pixel conversion."""

import io
import os
import struct
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_nst import image_io
from tf_nst.errors import UserInputError


def _save(tmp_path, name, image, **kwargs):
    path = str(tmp_path / name)
    image.save(path, **kwargs)
    return path


def _gradient_rgb(width=40, height=24):
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    return np.concatenate([np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1)),
                           np.full((height, width, 1), 90, np.float32)], axis=2).astype(np.uint8)


def test_grayscale_palette_and_cmyk_become_rgb(tmp_path):
    rgb = Image.fromarray(_gradient_rgb())
    for name, image in (("gray.png", rgb.convert("L")), ("palette.png", rgb.convert("P")),
                        ("cmyk.jpg", rgb.convert("CMYK"))):
        array = image_io.read_image(_save(tmp_path, name, image))
        assert array.shape == (24, 40, 3) and array.dtype == np.uint8, name
    gray = image_io.read_image(str(tmp_path / "gray.png"))
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :6, 3] = 255  # left half opaque red, right half fully transparent
    array = image_io.read_image(_save(tmp_path, "alpha.png", Image.fromarray(rgba, "RGBA")), min_side=1)
    np.testing.assert_array_equal(array[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(array[0, -1], [255, 255, 255])


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32896, 65535]], np.uint16)  # 32896 = 128 * 257
    path = _save(tmp_path, "deep.png", Image.fromarray(values))
    array = image_io.read_image(path, min_side=1)
    np.testing.assert_array_equal(array[0, :, 0], [0, 128, 255])


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(_gradient_rgb(40, 24))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _save(tmp_path, "rotated.jpg", image, exif=exif)
    assert image_io.read_image(path).shape == (40, 24, 3)


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), color) for color in ((255, 0, 0), (0, 0, 255))]
    path = str(tmp_path / "anim.gif")
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    array = image_io.read_image(path)
    assert array.shape == (16, 16, 3)
    assert array[..., 0].mean() > 200 and array[..., 2].mean() < 50


def _png_header_only(path, width, height):
    """A PNG whose header claims a huge size, with no pixel data (a decompression-bomb stand-in)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width", [12_000, 40_000])  # under and over Pillow's own bomb limit
def test_pixel_limit_is_checked_before_decoding(tmp_path, width):
    path = str(tmp_path / "bomb.png")
    _png_header_only(path, width, 12_000)
    with pytest.raises(UserInputError) as raised:
        image_io.read_image(path)
    size = "12000x12000 = 144000000" if width == 12_000 else "480000000"
    assert str(raised.value) == f"image {path!r} is {size} pixels; the limit is 100000000 pixels"  # one limit


def test_small_pixel_limit_refuses_a_normal_image(tmp_path):
    path = _save(tmp_path, "ok.png", Image.fromarray(_gradient_rgb()))
    with pytest.raises(UserInputError, match=r"40x24 = 960 pixels; the limit is 100 pixels"):
        image_io.read_image(path, max_pixels=100)


def test_missing_empty_text_and_truncated_files_are_user_errors(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    good = _save(tmp_path, "good.png", Image.fromarray(_gradient_rgb(200, 200)))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(open(good, "rb").read()[:300])
    for path in (tmp_path / "missing.png", empty, text, truncated):
        with pytest.raises(UserInputError, match=repr(str(path)).replace("\\", "\\\\")[1:-1]):
            image_io.read_image(str(path))


def test_resize_max_side_keeps_the_aspect_ratio():
    image = np.zeros((300, 451, 3), np.uint8)
    assert tuple(image_io.resize_max_side(image, 128).shape) == (85, 128, 3)
    assert tuple(image_io.resize_max_side(image, 902).shape) == (600, 902, 3)


def test_vgg_preprocess_matches_keras_applications():
    rgb = np.random.default_rng(0).uniform(0, 255, size=(2, 5, 6, 3)).astype(np.float32)
    expected = keras.applications.vgg19.preprocess_input(rgb.copy())
    np.testing.assert_allclose(image_io.vgg_preprocess(rgb).numpy(), expected, rtol=1e-6, atol=1e-4)
    expected16 = keras.applications.vgg16.preprocess_input(rgb.copy())
    np.testing.assert_allclose(image_io.vgg_preprocess(rgb).numpy(), expected16, rtol=1e-6, atol=1e-4)


def test_to_uint8_rounds_and_clips():
    np.testing.assert_array_equal(image_io.to_uint8(np.array([-5.0, 0.4, 0.6, 254.5, 300.0])).numpy(),
                                  [0, 0, 1, 254, 255])


@pytest.mark.parametrize("extension,magic", [(".png", b"\x89PNG"), (".jpg", b"\xff\xd8"),
                                             (".webp", b"RIFF"), (".bmp", b"BM")])
def test_format_follows_extension_and_parent_is_created(tmp_path, extension, magic):
    path = str(tmp_path / "new" / "dir" / f"out{extension}")
    image_io.write_image(path, _gradient_rgb())
    assert open(path, "rb").read(4).startswith(magic)
    assert Image.open(path).size == (40, 24)
    assert os.listdir(os.path.dirname(path)) == [f"out{extension}"]  # no temp file left


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(Exception):
        image_io.write_image(str(tmp_path / "out.png"), np.zeros((4, 4, 7)))  # 7 channels: not an image
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_umask_permissions(tmp_path, umask):
    previous = os.umask(umask)
    try:
        image_io.write_image(str(tmp_path / "out.png"), _gradient_rgb())
        image_io.write_file(str(tmp_path / "data.bin"), b"x")
    finally:
        os.umask(previous)
    for name in ("out.png", "data.bin"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o666 & ~umask  # mkstemp alone gives 0o600


def test_check_output_path_rules(tmp_path):
    existing = tmp_path / "exists.png"
    existing.write_bytes(b"x")
    image_io.check_output_path(str(tmp_path / "new.png"))
    with pytest.raises(UserInputError, match="already exists; pass --overwrite"):
        image_io.check_output_path(str(existing))
    image_io.check_output_path(str(existing), overwrite=True)
    with pytest.raises(UserInputError, match="also an input file"):
        image_io.check_output_path(str(existing), inputs=[str(existing)], overwrite=True)
    with pytest.raises(UserInputError, match=r"extension '\.gif'; use one of"):
        image_io.check_output_path(str(tmp_path / "x.gif"))


def _encoded(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP"])
def test_read_header_reads_the_format_and_size(fmt):
    image = Image.fromarray(_gradient_rgb(width=53, height=37))
    kind, size = image_io.read_header(tf.constant(_encoded(image, fmt)))
    assert image_io.HEADER_FORMATS[kind.numpy()][0] == fmt
    assert size.numpy().tolist() == [37, 53]


def test_read_header_of_a_top_down_bmp_and_a_header_only_png(tmp_path):
    bmp = bytearray(_encoded(Image.fromarray(_gradient_rgb(width=20, height=9)), "BMP"))
    bmp[22:26] = struct.pack("<i", -9)  # negative height: rows stored top-down
    assert image_io.read_header(tf.constant(bytes(bmp)))[1].numpy().tolist() == [9, 20]
    path = str(tmp_path / "bomb.png")
    _png_header_only(path, 40_000, 30_000)
    with open(path, "rb") as f:
        assert image_io.read_header(tf.constant(f.read()))[1].numpy().tolist() == [30_000, 40_000]


def _jpeg_with_exif_thumbnail_and_icc(width, height):
    """A JPEG whose EXIF segment embeds a 160x120 thumbnail JPEG (its own frame header comes first in the
    file) and whose ICC profile spans several APP2 segments."""
    thumbnail = io.BytesIO()
    Image.fromarray(_gradient_rgb(width=160, height=120)).save(thumbnail, format="JPEG")
    image = Image.fromarray(_gradient_rgb(width=width, height=height))
    exif = image.getexif()
    exif[0x010E] = "described"
    exif_bytes = bytearray(exif.tobytes())
    exif_bytes += thumbnail.getvalue()  # a thumbnail's bytes, where a bare search would find its SOF first
    data = _encoded(image, "JPEG", exif=bytes(exif_bytes), icc_profile=b"\0" * 150_000)
    assert data.index(b"\xff\xc0") < data.rindex(b"\xff\xc0")
    return data


def test_read_header_walks_jpeg_segments_to_the_frame_as_libjpeg_does():
    jpeg = _jpeg_with_exif_thumbnail_and_icc(width=70, height=45)
    app0_end = 4 + int.from_bytes(jpeg[4:6], "big")
    variants = {
        "exif thumbnail and icc": jpeg,
        "fill bytes before a marker": jpeg[:app0_end] + b"\xff" * 5 + jpeg[app0_end:],
        "stray bytes before a marker": jpeg[:app0_end] + b"\x00\x13" + jpeg[app0_end:],
        # A fill byte is stepped over whatever follows it, even bytes that would read as a length under 2.
        "a fill byte before stuffed zeros": jpeg[:app0_end] + b"\xff\xff\x00\x00\x04\x00\x00" + jpeg[app0_end:],
        "progressive": _encoded(Image.fromarray(_gradient_rgb(width=70, height=45)), "JPEG", progressive=True),
    }
    read_header = tf.function(image_io.read_header)
    for name, data in variants.items():
        kind, size = read_header(tf.constant(data))
        assert kind.numpy() == 0, name
        # libjpeg (through TensorFlow) reads the same size.
        assert size.numpy().tolist() == tf.image.extract_jpeg_shape(data)[:2].numpy().tolist() == [45, 70], name


@pytest.mark.parametrize("contents, kind", [
    (b"", image_io.UNKNOWN_FORMAT), (b"not an image at all", image_io.UNKNOWN_FORMAT),
    (b"\x89PNG", image_io.UNKNOWN_FORMAT), (b"RIFF\0\0\0\0WEBPVP8 ", image_io.UNKNOWN_FORMAT),
    (b"\xff\xd8\xff", 0), (b"\xff\xd8\xff\xe0\x00\x00", 0), (b"\xff\xd8" + b"\xff" * 5000, 0),
    (b"\xff\xd8\xff\xda\x00\x02\xff\xc0\x00\x11\x08\x00\x10\x00\x10", 0), (b"\x89PNG\r\n\x1a\n", 1),
])
def test_read_header_never_raises_and_finds_no_size_where_there_is_none(contents, kind):
    found_kind, size = tf.function(image_io.read_header)(tf.constant(contents))
    assert (found_kind.numpy(), size.numpy().tolist()) == (kind, [0, 0])


@pytest.mark.parametrize("height, width", [(40, 96), (96, 40), (20, 300), (64, 64), (65, 3), (1000, 1)])
def test_shrunk_size_is_the_size_shrink_to_max_side_gives(height, width):
    image = np.zeros((height, width, 3), np.uint8)
    shrunk = image_io.shrunk_size(tf.constant([height, width]), 64).numpy().tolist()
    expected = list(image_io.scaled_size(height, width, 64)) if max(height, width) > 64 else [height, width]
    assert shrunk == expected == list(image_io.shrink_to_max_side(image, 64).shape[:2])


def test_shrink_to_max_side_only_shrinks():
    image = _gradient_rgb(width=96, height=40)
    assert image_io.shrink_to_max_side(image, 48).shape == (20, 48, 3)
    unchanged = image_io.shrink_to_max_side(image, 96)
    assert unchanged.dtype == tf.float32
    np.testing.assert_array_equal(unchanged.numpy(), image.astype(np.float32))
    assert tuple(tf.function(image_io.shrink_to_max_side)(tf.constant(image), 30).shape) == (12, 30, 3)


def test_encode_png_round_trips():
    image = _gradient_rgb()
    png = image_io.encode_png(image).numpy()
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), image)


def test_blend_and_keep_content_colors():
    rng = np.random.default_rng(0)
    content, stylized = (rng.uniform(40, 215, (6, 7, 3)).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(image_io.blend(stylized, content, 0.0), content)
    np.testing.assert_allclose(image_io.blend(stylized, content, 1.0), stylized, rtol=1e-6)
    np.testing.assert_allclose(image_io.blend(stylized, content, 0.25), 0.75 * content + 0.25 * stylized,
                               rtol=1e-6)
    # Keeping U and V (scaled B - Y and R - Y) while taking Y from `stylized` shifts every channel of the
    # content by the same amount: the difference in luma (BT.601 weights).
    luma = lambda rgb: rgb @ np.array([0.299, 0.587, 0.114], np.float32)  # noqa: E731
    expected = content + (luma(stylized) - luma(content))[..., None]
    np.testing.assert_allclose(image_io.keep_content_colors(stylized, content), expected, atol=1e-3)


def test_read_mask_is_the_luminance_in_zero_one(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, :2] = 255
    rgb[:, 2:4] = (255, 0, 0)
    rgb[:, 4:] = 0
    for name, image in (("rgb.png", Image.fromarray(rgb)), ("gray.png", Image.fromarray(rgb).convert("L")),
                        ("gray16.png", Image.fromarray(rgb[..., 0].astype(np.uint16) * 257))):
        mask = image_io.read_mask(_save(tmp_path, name, image), min_side=1)
        assert mask.shape == (4, 6) and mask.dtype == np.float32, name
        np.testing.assert_allclose(mask[:, :2], 1.0, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(mask[:, 4:], 0.0, err_msg=name)
    np.testing.assert_allclose(image_io.read_mask(str(tmp_path / "rgb.png"), min_side=1)[:, 2:4], 0.299, atol=1e-6)
    with pytest.raises(UserInputError, match="cannot read image"):
        image_io.read_mask(_save_text(tmp_path, "mask.png"))


def _save_text(tmp_path, name):
    path = tmp_path / name
    path.write_text("not an image")
    return str(path)


def test_pool_mask_follows_vgg_poolings_and_falls_back_to_area():
    mask = np.random.default_rng(0).uniform(size=(85, 128)).astype(np.float32)
    expected = mask[:84].reshape(42, 2, 64, 2).mean(axis=(1, 3))  # 2x2 "valid" pooling drops the odd row
    np.testing.assert_allclose(image_io.pool_mask(mask, (42, 64)).numpy(), expected, rtol=1e-5)
    deep = image_io.pool_mask(mask, (5, 8)).numpy()  # 85 -> 42 -> 21 -> 10 -> 5: rows 80 to 84 dropped
    np.testing.assert_allclose(deep, mask[:80].reshape(5, 16, 8, 16).mean(axis=(1, 3)), rtol=1e-4)
    np.testing.assert_allclose(image_io.pool_mask(mask, (85, 128)).numpy(), mask)
    other = image_io.pool_mask(np.ones((30, 40), np.float32), (7, 9)).numpy()
    assert other.shape == (7, 9)
    np.testing.assert_allclose(other, 1.0, rtol=1e-6)


def test_resize_mask_stays_in_zero_one_and_aligned():
    mask = np.zeros((40, 60), np.float32)
    mask[:, :30] = 1
    resized = image_io.resize_mask(mask, (20, 30)).numpy()
    assert resized.shape == (20, 30) and resized.min() >= 0 and resized.max() <= 1
    np.testing.assert_allclose(resized[:, :14], 1.0, atol=1e-6)
    np.testing.assert_allclose(resized[:, 16:], 0.0, atol=1e-6)


@pytest.mark.parametrize("extension", [".webp", ".tif"])
def test_webp_and_tiff_inputs_read_back(tmp_path, extension):
    """The README lists WebP and TIFF: both decode to the pixels written (lossless)."""
    pixels = _gradient_rgb(40, 24)
    options = {"lossless": True} if extension == ".webp" else {}
    path = _save(tmp_path, f"image{extension}", Image.fromarray(pixels), **options)
    np.testing.assert_array_equal(np.asarray(image_io.read_image(path)), pixels)


def test_exif_orientation_turns_the_picture_the_right_way(tmp_path):
    """Orientation 6 means the stored picture is shown turned 90 degrees clockwise."""
    pixels = _gradient_rgb(40, 24)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    path = _save(tmp_path, "rotated.png", image, exif=exif)
    shown = np.asarray(image_io.read_image(path))
    np.testing.assert_array_equal(shown, np.rot90(pixels, k=-1))  # k=-1: clockwise


def test_images_below_the_minimum_side_are_refused_in_one_message(tmp_path):
    path = _save(tmp_path, "thin.png", Image.new("RGB", (40, 15)))
    with pytest.raises(UserInputError, match=r"is 40x15 px; tf_nst needs at least 16 px on each side"):
        image_io.read_image(path)
    assert image_io.read_image(path, min_side=1).shape == (15, 40, 3)


def test_resize_antialiases_a_downscale():
    """An 8x downscale of noise follows the means of its 8x8 blocks (the documented antialiasing); bilinear
    sampling without it keeps most of the noise. Guards `antialias=True` (a mutation survivor)."""
    noise = np.random.default_rng(0).uniform(0, 255, (256, 256, 3)).astype(np.float32)
    small = image_io.resize(noise, (32, 32)).numpy()
    block_means = noise.reshape(32, 8, 32, 8, 3).mean(axis=(1, 3))
    assert small.std() < 15  # the block means spread by 73.5 / 8 = 9; without antialiasing, by 37
    assert np.corrcoef(small.ravel(), block_means.ravel())[0, 1] > 0.7  # 0.86; without antialiasing 0.27


def test_signed_unit_range_and_luminance_image_against_numpy():
    """to_signed_unit maps [0, 255] to float32 [-1, 1]; luminance_image is BT.601 luma (the Y of YUV) in all
    three channels. Their only other tests ran on real VGG features, too slow for the mutation pass."""
    pixels = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 200, 30]]], np.uint8)
    signed = image_io.to_signed_unit(pixels)
    assert signed.dtype == tf.float32
    np.testing.assert_allclose(signed.numpy(), pixels / 127.5 - 1.0, atol=1e-6)
    luma = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(image_io.luminance_image(pixels).numpy(), np.repeat(luma[..., None], 3, axis=-1),
                               atol=1e-3)


def test_match_luminance_returns_three_equal_channels_the_size_of_the_source():
    rng = np.random.default_rng(2)
    source, target = rng.uniform(0, 255, (6, 5, 3)), rng.uniform(0, 255, (4, 7, 3))
    matched = image_io.match_luminance(source, target).numpy()
    assert matched.shape == (6, 5, 3)
    np.testing.assert_array_equal(matched[..., 1], matched[..., 0])
    np.testing.assert_array_equal(matched[..., 2], matched[..., 0])


def test_scaled_size_keeps_the_aspect_and_at_least_one_pixel_a_side():
    assert image_io.scaled_size(300, 200, 150) == (150, 100)
    assert image_io.scaled_size(1000, 1, 100) == (100, 1)
    assert image_io.scaled_size(1, 1000, 100) == (1, 100)
    assert image_io.scaled_size(1000, 3, 100) == (100, 1)  # 0.3 px rounds to 0: kept at 1


def test_pool_mask_off_the_vgg_grid_falls_back_to_a_mean_keeping_area_resize():
    """10 x 10 halves to 5 x 5, then an area resize reaches 3 x 3: every step averages, so the mask's mean
    (its coverage) is kept; a bilinear fallback would give 0.111 here (a mutation survivor)."""
    mask = np.zeros((10, 10), np.float32)
    mask[:, 0] = 1.0
    pooled = image_io.pool_mask(mask, (3, 3)).numpy()
    assert pooled.shape == (3, 3)
    assert pooled.mean() == pytest.approx(0.1, abs=1e-6)


def test_hex_bytes_quotes_raw_bytes_as_spaced_hex():
    assert image_io.hex_bytes(tf.constant(b"\xfe\xfa\x00")).numpy() == b"fe fa 00"


def test_read_header_of_truncated_png_bytes_reads_zeros():
    """The padding that lets a truncated header be read is zeros, so missing fields read as size 0 (which
    the caller refuses); other padding would invent a size (a mutation survivor)."""
    truncated = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"  # the signature and the chunk head, no width or height
    kind, size = image_io.read_header(tf.constant(truncated))
    assert image_io.HEADER_FORMATS[int(kind)][0] == "PNG" and size.numpy().tolist() == [0, 0]


def test_decode_gives_rgb_uint8_as_pillow_reads_it():
    """Gray, RGBA (alpha dropped), palette and RGB bytes all decode to the pixels Pillow's RGB conversion
    gives, with three channels known in a graph (tf.data needs them). Its other tests are slow CLI runs."""
    rgb = Image.fromarray(_gradient_rgb())
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(np.full((24, 40), 100, np.uint8)))
    for image in (rgb.convert("L"), rgba, rgb.convert("P"), rgb):
        data = _encoded(image, "PNG")
        decoded = image_io.decode(tf.constant(data))
        assert decoded.dtype == tf.uint8, image.mode
        np.testing.assert_array_equal(decoded.numpy(), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")),
                                      err_msg=image.mode)
    graph = tf.function(image_io.decode).get_concrete_function(tf.TensorSpec([], tf.string))
    assert graph.structured_outputs.shape.as_list() == [None, None, 3]


@pytest.mark.parametrize("height,width,side,expected", [(30, 45, 20, (20, 30)), (50, 31, 20, (32, 20)),
                                                        (16, 16, 40, (40, 40))])
def test_resize_shorter_side_scales_the_shorter_side_to_side(height, width, side, expected):
    """The longer side is rounded from the same scale (50 * 20 / 31 = 32.3); up- and downscales, static
    and dynamic shapes, give the pixels `resize` gives at that size."""
    image = np.random.default_rng(3).uniform(0, 255, (height, width, 3)).astype(np.float32)
    reference = image_io.resize(image, expected).numpy()
    np.testing.assert_array_equal(image_io.resize_shorter_side(image, side).numpy(), reference)
    dynamic = tf.function(lambda image: image_io.resize_shorter_side(image, side),
                          input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
    np.testing.assert_allclose(dynamic(image).numpy(), reference, atol=1e-4)


def test_from_signed_unit_maps_minus_one_one_to_the_pixel_range_against_numpy():
    signed = np.array([-1.0, -0.5, 0.0, 0.25, 1.0], np.float32)
    pixels = image_io.from_signed_unit(signed)
    assert pixels.dtype == tf.float32
    np.testing.assert_allclose(pixels.numpy(), (signed.astype(np.float64) + 1.0) * 127.5, atol=1e-4)
    np.testing.assert_allclose(image_io.to_signed_unit(pixels).numpy(), signed, atol=1e-6)


def test_encode_image_refuses_an_unknown_extension_naming_the_writable_ones():
    with pytest.raises(UserInputError) as raised:
        image_io.encode_image("out.tiff", _gradient_rgb())
    assert "'out.tiff'" in str(raised.value) and "'.tiff'" in str(raised.value)
    assert "use one of .png, .jpg, .jpeg, .webp, .bmp" in str(raised.value)


def _numpy_match_color(source, target, mode):
    """Gatys et al. 2017, §5.2 in NumPy: x' = A (x - mu_s) + mu_t, each covariance with a 1e-5 ridge."""
    pixels, goal = source.reshape(-1, 3), target.reshape(-1, 3)
    cov_s, cov_t = (np.cov(x.T, bias=True) + np.eye(3) * 1e-5 for x in (pixels, goal))
    if mode == "chol":
        transform = np.linalg.cholesky(cov_t) @ np.linalg.inv(np.linalg.cholesky(cov_s))
    else:
        def sqrtm(matrix):
            values, vectors = np.linalg.eigh(matrix)
            return vectors @ np.diag(np.sqrt(values)) @ vectors.T
        transform = sqrtm(cov_t) @ np.linalg.inv(sqrtm(cov_s))
    return ((pixels - pixels.mean(axis=0)) @ transform.T + goal.mean(axis=0)).reshape(source.shape)


@pytest.mark.parametrize("flat", [False, True])
def test_match_color_against_numpy_defaults_to_cholesky(flat):
    """Both modes against NumPy; "chol" is the default (test_optimize.py's tests always name the mode). A
    flat target (one colour) is matched through the ridge alone: the source's spread shrinks to +-0.005."""
    rng = np.random.default_rng(4)
    source = rng.uniform(0, 255, (6, 5, 3))
    target = rng.uniform(0, 255, (4, 7, 3)) * np.array([1.0, 0.5, 0.2]) + np.array([0.0, 60.0, 20.0])
    if flat:
        target = np.full((4, 7, 3), [200.0, 30.0, 90.0])
    np.testing.assert_allclose(image_io.match_color(source, target).numpy(),
                               _numpy_match_color(source, target, "chol"), atol=1e-4)
    np.testing.assert_allclose(image_io.match_color(source, target, "sym").numpy(),
                               _numpy_match_color(source, target, "sym"), atol=1e-4)


# A baseline frame header (SOF0) of a 16 x 32 image with its three components.
_SOF_16_BY_32 = b"\xff\xc0\x00\x11\x08\x00\x10\x00\x20\x03" + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"


def test_read_header_of_a_jpeg_cut_inside_its_frame_header():
    """The size is read once the frame header's height and width are in (9 bytes from its marker), [0, 0]
    one byte earlier; reads past the end see zeros, never bytes clipped back inside the data."""
    jpeg = b"\xff\xd8" + _SOF_16_BY_32
    read_header = tf.function(image_io.read_header)
    assert read_header(tf.constant(jpeg[:11]))[1].numpy().tolist() == [16, 32]
    assert read_header(tf.constant(jpeg[:10]))[1].numpy().tolist() == [0, 0]


def test_read_header_walks_at_most_jpeg_max_segments():
    """JPEG_MAX_SEGMENTS steps: a frame header after 255 comment segments is found, after 256 it is not."""
    read_header = tf.function(image_io.read_header)
    for comments, size in ((image_io.JPEG_MAX_SEGMENTS - 1, [16, 32]), (image_io.JPEG_MAX_SEGMENTS, [0, 0])):
        jpeg = b"\xff\xd8" + b"\xff\xfe\x00\x02" * comments + _SOF_16_BY_32
        assert read_header(tf.constant(jpeg))[1].numpy().tolist() == size, comments
