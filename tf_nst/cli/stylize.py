"""`stylize`: applies a trained stylizer to an image file or a folder of them (names and subfolders kept).

A one-style model takes the images alone; an arbitrary-style model (train --architecture=adain) takes
--style, one or several files, with --style_blend_weights, --alpha, --preserve_color, --style_size and
--content_mask (a style per region). The
model's kind is read from its file before TensorFlow loads. Outputs are written atomically and never replace
an input; unreadable images are named, skipped, and make the exit status 1.
"""

from absl import flags

from tf_nst import files
from tf_nst import outputs
from tf_nst.cli import common
from tf_nst.cli import flag_groups
from tf_nst.errors import UserInputError

_MODEL = flag_groups.define_model()
_INPUT = flag_groups.define_input()
_OUTPUT_DIR = flag_groups.define_output_dir()
_OVERWRITE = flag_groups.define_overwrite()
_MAX_SIZE = flag_groups.define_max_size()
_STYLE = flag_groups.define_style()
_STYLE_BLEND_WEIGHTS = flag_groups.define_style_blend_weights()
_PRESERVE_COLOR = flag_groups.define_preserve_color()
_ALPHA = flag_groups.define_alpha()
_CONTENT_MASK = flag_groups.define_content_mask()
_STYLE_SIZE = flag_groups.define_style_size()

flags.adopt_module_key_flags(flag_groups)

# Flags that only an arbitrary-style model reads.
_STYLE_FLAGS = (_STYLE, _STYLE_BLEND_WEIGHTS, _PRESERVE_COLOR, _ALPHA, _STYLE_SIZE, _CONTENT_MASK)


def _check_model_kind(model_path):
    """Whether the model takes a style; a style flag for a one-style model, or no --style for an arbitrary
    one, is a UserInputError."""
    arbitrary = files.is_arbitrary_model(model_path)
    if arbitrary and not _STYLE.present:
        raise UserInputError(f"--model={_MODEL.value!r} is an arbitrary-style model; give it --style=FILE "
                             "(comma-separated files to blend)")
    given = [f"--{holder.name}" for holder in _STYLE_FLAGS if holder.present]
    if not arbitrary and given:
        raise UserInputError(f"--model={_MODEL.value!r} learnt one style and takes no {', '.join(given)}; those "
                             "flags are for arbitrary-style models (train --architecture=adain)")
    return arbitrary


def _read_masks(count):
    if len(_CONTENT_MASK.value) != count:
        raise UserInputError(f"--content_mask has {len(_CONTENT_MASK.value)} file(s) but --style has {count}; "
                             "give one mask per --style file, in the same order")
    return tuple(files.read_mask(path) for path in _CONTENT_MASK.value)


def _run():
    common.require_flags("stylize", _MODEL, _INPUT, _OUTPUT_DIR)
    model_path = files.find_model(_MODEL.value)
    arbitrary = _check_model_kind(model_path)
    style_paths = _STYLE.value.split(",") if arbitrary else []
    for path in style_paths:
        files.read_image(path)  # a bad style file is an error before TensorFlow loads
    masks = _read_masks(len(style_paths)) if _CONTENT_MASK.value else None
    pairs = files.plan_outputs(_INPUT.value, _OUTPUT_DIR.value, _OVERWRITE.value)
    outputs.check_writable_files([output for _, output in pairs], "--output_dir")
    common.import_tensorflow()
    from tf_nst import stylize  # pylint: disable=import-outside-toplevel

    style = None
    if arbitrary:
        weights = _STYLE_BLEND_WEIGHTS.value
        style = stylize.Style(stylize.read_styles(style_paths, _STYLE_SIZE.value),
                              tuple(map(float, weights)) if weights else None, _ALPHA.value,
                              _PRESERVE_COLOR.value, masks)
    result = stylize.stylize_files(stylize.load_stylizer(model_path), pairs, _MAX_SIZE.value or None,
                                   callback=common.report_file, style=style)
    failed = f"; {len(result.failed)} failed" if result.failed else ""
    print(f"tf-nst: wrote {len(result.written)} image(s) to {_OUTPUT_DIR.value}{failed}", flush=True)
    return 1 if result.failed else 0


def main(argv):
    return common.run_command("stylize", _run, argv)
