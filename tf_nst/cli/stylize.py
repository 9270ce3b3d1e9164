"""`stylize`: applies a stylizer to an image file or a folder of them (names and subfolders kept).

Without --model it uses the pretrained arbitrary-style network (magenta-arbitrary, Ghiasi et al. 2017): give
--style, one or several files, with --style_blend_weights, --alpha, --preserve_color, --style_size and
--content_mask (a style per region); a trained AdaIN network takes the same flags. --model=magenta-26 takes
--builtin_style (an index 0-25 or a blend such as 3:0.5,12:0.5) and --contact_sheet (all 26 styles on the first
input). A one-style network (train) takes the images alone. The model's kind is read before TensorFlow loads.
Outputs are written atomically and never replace an input; unreadable images are named, skipped, and make the
exit status 1.
"""

import os

from absl import flags

from tf_nst import defaults
from tf_nst import files
from tf_nst import memory
from tf_nst import outputs
from tf_nst import pretrained
from tf_nst.cli import common
from tf_nst.cli import flag_groups
from tf_nst.errors import UserInputError

_MODEL = flag_groups.define_model()
_INPUT = flag_groups.define_input()
_OUTPUT_DIR = flag_groups.define_output_dir(default="stylized")
_OVERWRITE = flag_groups.define_overwrite()
_MAX_SIZE = flag_groups.define_max_size()
_STYLE = flag_groups.define_style()
_STYLE_BLEND_WEIGHTS = flag_groups.define_style_blend_weights()
_PRESERVE_COLOR = flag_groups.define_preserve_color()
_ALPHA = flag_groups.define_alpha()
_CONTENT_MASK = flag_groups.define_content_mask()
_STYLE_SIZE = flag_groups.define_style_size()
_BUILTIN_STYLE = flag_groups.define_builtin_style()
_CONTACT_SHEET = flags.DEFINE_string(
    "contact_sheet", None, "For --model=magenta-26: write one PNG of the first --input image in each of the 26 "
    "built-in styles, labelled with their indices, to this file (instead of stylising into --output_dir).")

flags.adopt_module_key_flags(flag_groups)

# Flags that only an arbitrary-style model reads, and those of the 26-style network.
_STYLE_FLAGS = (_STYLE, _STYLE_BLEND_WEIGHTS, _ALPHA, _STYLE_SIZE, _CONTENT_MASK)
_BUILTIN_FLAGS = (_BUILTIN_STYLE, _CONTACT_SHEET)


def _check_flags(kind, model):
    def given(holders):
        return [f"--{holder.name}" for holder in holders if holder.present]

    if kind == "arbitrary" and not _STYLE.present:
        raise UserInputError(f"--model={model!r} is an arbitrary-style model; give it --style=FILE "
                             "(comma-separated files to blend)")
    if kind == "multistyle" and not (_BUILTIN_STYLE.present or _CONTACT_SHEET.present):
        raise UserInputError(f"--model={model!r} has 26 built-in styles; pick one with --builtin_style=7 (or a blend: "
                             "3:0.5,12:0.5), or see them all with --contact_sheet=sheet.png")
    wrong = {"arbitrary": given(_BUILTIN_FLAGS), "multistyle": given(_STYLE_FLAGS),
             "one-style": given(_STYLE_FLAGS + _BUILTIN_FLAGS)}[kind]
    if _PRESERVE_COLOR.present and kind == "one-style":
        wrong.append("--preserve_color")
    if kind == "multistyle" and _PRESERVE_COLOR.value == "histogram":
        wrong.append("--preserve_color=histogram")
    if wrong and kind == "one-style":
        raise UserInputError(f"--model={model!r} learnt one style and takes no {', '.join(wrong)}; those flags are "
                             f"for the pretrained networks (the default {pretrained.DEFAULT}, {pretrained.MULTISTYLE}) "
                             "and arbitrary-style models (train --architecture=adain)")
    if wrong:
        takes = {"arbitrary": "a style image (--style and its flags)",
                 "multistyle": "--builtin_style, --contact_sheet and --preserve_color=luminance"}[kind]
        raise UserInputError(f"--model={model!r} takes {takes}, not {', '.join(wrong)}")


def _read_masks(count):
    if len(_CONTENT_MASK.value) != count:
        raise UserInputError(f"--content_mask has {len(_CONTENT_MASK.value)} file(s) but --style has {count}; "
                             "give one mask per --style file, in the same order")
    return tuple(files.read_mask(path) for path in _CONTENT_MASK.value)


def _style(stylize, kind, model):
    """The Style or BuiltinStyle of the flags (None for a one-style network)."""
    if kind == "multistyle":
        return stylize.BuiltinStyle(stylize.builtin_weights(_BUILTIN_STYLE.value or "0"), _PRESERVE_COLOR.value)
    if kind != "arbitrary":
        return None
    style_paths = _STYLE.value.split(",")
    masks = _read_masks(len(style_paths)) if _CONTENT_MASK.value else None
    size = _style_size(model)
    weights = _STYLE_BLEND_WEIGHTS.value
    return stylize.Style(stylize.read_styles(style_paths, size), tuple(map(float, weights)) if weights else None,
                         _ALPHA.value, _PRESERVE_COLOR.value, masks)


def _run():
    common.require_flags("stylize", _INPUT)
    model = _MODEL.value or pretrained.DEFAULT
    kind = common.model_kind(model)
    _check_flags(kind, model)
    style_shapes = []
    if kind == "arbitrary":
        for path in _STYLE.value.split(","):
            style_shapes.append((path, files.read_image(path).shape[:2]))  # a bad file: an error before TensorFlow
    if _BUILTIN_STYLE.present:
        _builtin_weights_early()
    if _CONTACT_SHEET.present:
        return _contact_sheet(model)
    pairs = files.plan_outputs(_INPUT.value, _OUTPUT_DIR.value, _OVERWRITE.value)
    outputs.check_writable_files([output for _, output in pairs], "--output_dir")
    _check_memory(kind, model, style_shapes, [source for source, _ in pairs])
    common.import_tensorflow()
    from tf_nst import stylize  # pylint: disable=import-outside-toplevel

    style = _style(stylize, kind, model)
    result = stylize.stylize_files(stylize.load_stylizer(model), pairs, _MAX_SIZE.value or None,
                                   callback=common.report_file, style=style, replace=_OVERWRITE.value)
    failed = f"; {len(result.failed)} failed" if result.failed else ""
    print(f"tf-nst: wrote {len(result.written)} image(s) to {_OUTPUT_DIR.value}{failed}", flush=True)
    return 1 if result.failed else 0


def _style_size(model):
    return _STYLE_SIZE.value or (defaults.PRETRAINED_STYLE_SIZE if pretrained.is_builtin(model)
                                 else defaults.STYLE_SIZE)


def _check_memory(kind, model, style_shapes, inputs):
    """Refuses, before TensorFlow loads, a run whose largest style (at --style_size) or content (at --max_size)
    would not fit in the available memory by memory.estimate_stylize_bytes. One-style networks are not
    checked (their cost is unmeasured)."""
    if kind == "one-style":
        return
    from PIL import Image  # pylint: disable=import-outside-toplevel

    network = pretrained.is_builtin(model)
    available = memory.available_bytes()
    size = _style_size(model)
    for path, (height, width) in style_shapes:
        scale = size / min(height, width)
        resized = (round(width * scale), round(height * scale))
        needed = memory.estimate_stylize_bytes(0, resized[0] * resized[1], network)
        if not memory.within(needed, available):
            raise UserInputError(
                f"--style_size={size} makes the style image {path!r} {resized[0]}x{resized[1]} px, which needs "
                f"about {needed / 1e9:.1f} GB by tf_nst's estimate but {available / 1e9:.1f} GB is available; "
                "lower --style_size")
    if not network:
        return
    for path in inputs:
        with Image.open(path) as image:  # the header only; the file was checked as an image already
            width, height = image.size
        scale = min(1.0, _MAX_SIZE.value / max(width, height)) if _MAX_SIZE.value else 1.0
        resized = (round(width * scale), round(height * scale))
        needed = memory.estimate_stylize_bytes(resized[0] * resized[1], 0, network)
        if not memory.within(needed, available):
            raise UserInputError(
                f"the input {path!r} at {resized[0]}x{resized[1]} px needs about {needed / 1e9:.1f} GB by tf_nst's "
                f"estimate but {available / 1e9:.1f} GB is available; pass a smaller --max_size")


def _builtin_weights_early():
    """--builtin_style parsed before TensorFlow loads (stylize.builtin_weights imports it, so the rule is here)."""
    for part in _BUILTIN_STYLE.value.split(","):
        index, _, weight = part.strip().partition(":")
        try:
            ok = 0 <= int(index) <= 25 and (not weight or float(weight) >= 0)
        except ValueError:
            ok = False
        if not ok:
            raise UserInputError(f"--builtin_style={_BUILTIN_STYLE.value!r}: give a style index 0-25 (7) or "
                                 "index:weight pairs (3:0.5,12:0.5)")


def _contact_sheet(model):
    sheet = _CONTACT_SHEET.value
    if not os.path.isfile(_INPUT.value):
        raise UserInputError(f"--contact_sheet shows one photo: give --input an image file; received "
                             f"{_INPUT.value!r}")
    image = files.read_image(_INPUT.value)
    files.check_output_path(sheet, (_INPUT.value,), _OVERWRITE.value)
    outputs.check_writable_files([sheet], "--contact_sheet")
    common.import_tensorflow()
    from tf_nst import image_io  # pylint: disable=import-outside-toplevel
    from tf_nst import stylize  # pylint: disable=import-outside-toplevel

    image = stylize.prepare_image(image, _MAX_SIZE.value or stylize.CONTACT_SHEET_TILE)
    image_io.write_image(sheet, stylize.contact_sheet(stylize.load_stylizer(model), image, _PRESERVE_COLOR.value),
                         replace=_OVERWRITE.value)
    print(f"tf-nst: wrote {sheet} (the 26 built-in styles on {_INPUT.value})", flush=True)
    return 0


def main(argv):
    return common.run_command("stylize", _run, argv)
