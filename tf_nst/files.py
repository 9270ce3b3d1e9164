"""Files without TensorFlow: image files read with Pillow, input and output paths checked, folder runs planned
and output names given. Writing them (atomic files, writability probes) is tf_nst/outputs.py.

Nothing here imports TensorFlow, so the command line checks every path and input image before TensorFlow
loads (about 5 s) and a mistake is reported at once. `image_io` re-exports the readers.
"""

import io
import json
import os
import re
import warnings
import zipfile

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tf_nst.errors import UserInputError

# Refuse images with more pixels than this before decoding them (a decompression bomb guard).
MAX_PIXELS = 100_000_000

# The smallest side of every input image: transfer's content, style and init files, `stylize` and
# `serve-request` inputs, training images and served images (after their downscaling). Smaller ones hold too
# little to upscale into a picture: a 1x1 content image came out as a flat one.
MIN_IMAGE_SIDE = 16
MIN_SIDE_RULE = f"tf_nst needs at least {MIN_IMAGE_SIDE} px on each side of an input image"

# Output format by file extension.
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}

# Input images searched for in folders (training data, `stylize` and `serve-request` inputs).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

# What `train` writes into its train_dir, and what a model path that is a folder stands for.
MODEL_FILE = "stylizer.keras"
# The lock file a `train` run holds in its train_dir (outputs.folder_lock), so that a second run there is refused.
TRAIN_LOCK = ".lock"


def train_lock_name(strategy, environ=os.environ):
    """The lock file name of a `train` run in its train_dir: TRAIN_LOCK, or for --strategy=multi_worker one per
    task of TF_CONFIG (.lock-worker-1), since the workers of one cluster may share a train_dir."""
    if strategy != "multi_worker":
        return TRAIN_LOCK
    try:
        task = json.loads(environ.get("TF_CONFIG") or "{}").get("task") or {}
        return f"{TRAIN_LOCK}-{task['type']}-{int(task['index'])}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return TRAIN_LOCK

_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


def read_image(path, max_pixels=MAX_PIXELS, min_side=MIN_IMAGE_SIDE):
    """Reads an image file as uint8 RGB.

    Grayscale, palette, 16-bit, CMYK and transparent images are converted to RGB (transparency is
    composited on white), EXIF orientation is applied, and an animated image gives its first frame.

    Args:
      path: the file to read.
      max_pixels: images with more pixels than this are refused before they are decoded.
      min_side: images with a shorter side are refused (the one rule of every command; 1 reads any).

    Returns:
      A uint8 array of shape [height, width, 3].

    Raises:
      UserInputError: the file is missing, not an image, truncated, or too large.
    """
    if not os.path.isfile(path):
        raise UserInputError(f"image file not found: {path!r}")
    return _decode(path, path, max_pixels, min_side)


def decode_image_bytes(contents, name, max_pixels=MAX_PIXELS, min_side=MIN_IMAGE_SIDE):
    """Decodes the bytes of an image file as read_image reads the file (for files read elsewhere, as by Beam).

    Args:
      contents: the encoded bytes.
      name: where they came from, for error messages.
      max_pixels: images with more pixels than this are refused before they are decoded.
      min_side: images with a shorter side are refused.

    Raises:
      UserInputError: not an image, truncated, too large or too small.
    """
    return _decode(io.BytesIO(contents), name, max_pixels, min_side)


def _decode(source, name, max_pixels, min_side):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is checked below
            with Image.open(source) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise UserInputError(
                        f"image {name!r} is {width}x{height} = {width * height} pixels; the limit is "
                        f"{max_pixels} pixels")
                check_min_side(f"image {name!r}", width, height, min_side)
                img.seek(0)
                img = ImageOps.exif_transpose(img)
                return pil_to_rgb(img)
    except Image.DecompressionBombError as e:  # Pillow's own limit, checked in Image.open, before ours above
        count = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{count.group(1)} pixels" if count else f"more than {2 * Image.MAX_IMAGE_PIXELS} pixels"
        limit = min(max_pixels, 2 * Image.MAX_IMAGE_PIXELS)  # the one that applies: Pillow's if below ours
        raise UserInputError(f"image {name!r} is {size}; the limit is {limit} pixels") from None
    except _READ_ERRORS as e:
        if isinstance(e, UserInputError):
            raise
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        reason = reason.replace(repr(source), repr(name))  # Pillow names a BytesIO by its repr
        raise UserInputError(
            f"cannot read image {name!r} ({reason}); expected a PNG, JPEG, GIF, BMP, WebP or TIFF "
            "file") from None


def check_min_side(name, width, height, min_side=MIN_IMAGE_SIDE):
    """Raises UserInputError, in the one message every command uses, for a side under MIN_IMAGE_SIDE."""
    if min(width, height) < min_side:
        rule = MIN_SIDE_RULE if min_side == MIN_IMAGE_SIDE else f"the limit is {min_side} px on each side"
        raise UserInputError(f"{name} is {width}x{height} px; {rule}")


def read_mask(path, max_pixels=MAX_PIXELS, min_side=MIN_IMAGE_SIDE):
    """Reads a grayscale mask file as float32 [H, W] in [0, 1]: white 1, black 0.

    Any image `read_image` reads works; colour is reduced to its luminance (Y of YUV, ITU-R BT.601) and
    transparency counts as white, as `read_image` composites it.

    Raises:
      UserInputError: the file is missing, not an image, truncated, or too large.
    """
    rgb = read_image(path, max_pixels, min_side).astype(np.float32)
    return np.clip(rgb @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0, 0.0, 1.0)


def pil_to_rgb(img):
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


def plan_outputs(input_path, output_dir, overwrite=False):
    """Pairs each input image with its output path, and checks every output before any work is done.

    Args:
      input_path: an image file, or a folder searched recursively for IMAGE_EXTENSIONS.
      output_dir: outputs keep their input's path relative to the folder (a file keeps its name); an
        extension that cannot be written (.gif) becomes .png. The folder is skipped if it is under input_path.
      overwrite: whether existing output files may be replaced (never an input file).

    Returns:
      A list of (input file, output file).

    Raises:
      UserInputError: a missing input, a folder without images, or an output that may not be written.
    """
    if os.path.isfile(input_path):
        pairs = [(input_path, os.path.join(output_dir, output_name(input_path, os.path.dirname(input_path))))]
    elif os.path.isdir(input_path):
        pairs = [(path, os.path.join(output_dir, output_name(path, input_path)))
                 for path in _find_images(input_path, skip_dir=output_dir)]
        if not pairs:
            raise UserInputError(f"no images under {input_path!r}; expected files ending in "
                                 f"{', '.join(IMAGE_EXTENSIONS)}")
    else:
        raise UserInputError(f"input not found: {input_path!r}; give an image file or a folder of images")
    inputs = {os.path.realpath(path) for path, _ in pairs}
    outputs = set()
    for path, output in pairs:
        real = os.path.realpath(output)
        if real in inputs:
            raise UserInputError(
                f"output {output!r} would replace an input file; choose another --output_dir")
        if real in outputs:
            raise UserInputError(f"two inputs would both be written to {output!r}; rename one of them")
        outputs.add(real)
        check_output_path(output, (path,), overwrite)
    return pairs


def _find_images(folder, skip_dir):
    skip = os.path.realpath(skip_dir)
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(name for name in dirs if os.path.realpath(os.path.join(root, name)) != skip)
        for name in sorted(names):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                yield os.path.join(root, name)


def output_name(path, input_root):
    """The name an input file keeps under the output folder: its path below input_root, where an extension
    that cannot be written (.gif) becomes .png. `stylize` and `batch` both name outputs with it.

    Plain string work, so it serves local paths and URLs (gs://bucket/photos/a.jpg) alike.

    Args:
      path: the input file: input_root, "/", then the rest (as os.walk or a Beam filesystem match gives it).
      input_root: the folder it was found under; "" for a bare file name.

    Raises:
      ValueError: path is not under input_root.
    """
    prefix = input_root if not input_root or input_root.endswith("/") else input_root + "/"
    if not path.startswith(prefix) or len(path) == len(prefix):
        raise ValueError(f"{path!r} is not a file under {input_root!r}")
    return _writable_name(path[len(prefix):])


def _writable_name(name):
    stem, extension = os.path.splitext(name)
    return name if extension.lower() in WRITE_FORMATS else f"{stem}.png"


def find_model(path):
    """The stylizer file that `path` names: a `.keras` file, or a train_dir holding MODEL_FILE.

    Raises:
      UserInputError: no such file.
    """
    if os.path.isdir(path):
        path = os.path.join(path, MODEL_FILE)
    if not os.path.isfile(path):
        raise UserInputError(
            f"model not found: {path!r}; pass a .keras file written by `train`, or its --train_dir")
    return path


# The layer class that only the arbitrary-style network holds (tf_nst.adain), as a .keras config names it.
ARBITRARY_LAYER = "AdaptiveInstanceNormalization"


def is_arbitrary_model(path):
    """Whether the `.keras` file at `path` holds an arbitrary-style network (it takes a style image), read from
    the file's config.json without TensorFlow; False for a one-style network or a file that is not a model
    (loading it then says why)."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    pending = [config]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("class_name") == ARBITRARY_LAYER:
                return True
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False


# The signature that only an arbitrary-style export holds (export/saved_model.py).
ARBITRARY_SIGNATURE = "style_embedding"
# The input that only a 26-style export's signatures take (export/saved_model.py).
MULTISTYLE_INPUT = "style_weights"
# A model's kind: what it takes besides the images (the kinds of tf_nst.pretrained.NETWORKS, and one-style).
ONE_STYLE, ARBITRARY, MULTISTYLE = "one-style", "arbitrary", "multistyle"
SAVED_MODEL_FILE = "saved_model.pb"


def exported_signatures(version_dir):
    """The signature names of the SavedModel in `version_dir`, read from saved_model.pb without TensorFlow.

    Walks the protobuf wire format of SavedModel.meta_graphs (field 2), then each MetaGraphDef.signature_def
    map (field 5, entries whose key is field 1), skipping everything else, the graph included, by its length.

    Returns:
      A sorted tuple of names; () for a missing or unreadable file (loading it then says why).
    """
    try:
        with open(os.path.join(version_dir, SAVED_MODEL_FILE), "rb") as f:
            data = memoryview(f.read())
        names = {bytes(key).decode("utf-8")
                 for meta_graph in _wire_fields(data, 2) for entry in _wire_fields(meta_graph, 5)
                 for key in _wire_fields(entry, 1)}
    except (OSError, ValueError, IndexError):
        return ()
    return tuple(sorted(names))


def is_arbitrary_export(version_dir):
    """Whether the SavedModel in `version_dir` is an arbitrary-style export (it takes a style image)."""
    return ARBITRARY_SIGNATURE in exported_signatures(version_dir)


def exported_inputs(version_dir, signature="serving_default"):
    """The input names of one signature of the SavedModel in `version_dir`, read without TensorFlow as
    exported_signatures reads the names (SignatureDef.inputs is field 1, a map keyed by field 1).

    Returns:
      A sorted tuple of names; () for a missing signature or an unreadable file.
    """
    try:
        with open(os.path.join(version_dir, SAVED_MODEL_FILE), "rb") as f:
            data = memoryview(f.read())
        names = set()
        for meta_graph in _wire_fields(data, 2):
            for entry in _wire_fields(meta_graph, 5):
                if any(bytes(key).decode("utf-8") == signature for key in _wire_fields(entry, 1)):
                    names.update(bytes(key).decode("utf-8") for definition in _wire_fields(entry, 2)
                                 for inputs in _wire_fields(definition, 1) for key in _wire_fields(inputs, 1))
    except (OSError, ValueError, IndexError):
        return ()
    return tuple(sorted(names))


def is_multistyle_export(version_dir):
    """Whether the SavedModel in `version_dir` is a 26-style export (its serving_default takes style weights)."""
    return MULTISTYLE_INPUT in exported_inputs(version_dir)


def export_kind(version_dir):
    """ONE_STYLE, ARBITRARY or MULTISTYLE: what the SavedModel in `version_dir` takes besides the images."""
    if is_arbitrary_export(version_dir):
        return ARBITRARY
    return MULTISTYLE if is_multistyle_export(version_dir) else ONE_STYLE


def _wire_fields(data, number):
    """The values of the length-delimited fields `number` of one protobuf message's bytes; other fields skipped.

    Raises:
      ValueError, IndexError: bytes that are not a protobuf message.
    """
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        kind = key & 7
        if kind == 0:
            _, position = _varint(data, position)
        elif kind == 1:
            position += 8
        elif kind == 5:
            position += 4
        elif kind == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ValueError("a field runs past the end of its message")
            if key >> 3 == number:
                yield data[position:position + length]
            position += length
        else:
            raise ValueError(f"protobuf wire type {kind} is not used by SavedModel")


def _varint(data, position):
    value, shift = 0, 0
    while True:
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position, shift = position + 1, shift + 7
        if byte < 0x80:
            return value, position


def list_images(folder, kind="dataset", contents="training images"):
    """The files under `folder` (searched recursively) whose names end in IMAGE_EXTENSIONS, sorted.

    Args:
      folder: the folder.
      kind, contents: what the folder is, for the messages ("style", "style images").

    Raises:
      UserInputError: the folder is missing or holds no image files.
    """
    if not os.path.isdir(folder):
        raise UserInputError(f"{kind} folder not found: {folder!r}; give a folder of {contents}")
    paths = sorted(os.path.join(root, name) for root, _, names in os.walk(folder)
                   for name in names if name.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise UserInputError(
            f"no image files under {folder!r}; expected files ending in {', '.join(IMAGE_EXTENSIONS)}")
    return paths
