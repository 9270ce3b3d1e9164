"""`stylize`: applies a trained stylizer to an image file or a folder of them (names and subfolders kept).

Outputs are written atomically and never replace an input; unreadable images are named, skipped, and make the
exit status 1.
"""

from absl import flags

from tf_nst import files
from tf_nst import outputs
from tf_nst.cli import common
from tf_nst.cli import flag_groups

_MODEL = flag_groups.define_model()
_INPUT = flag_groups.define_input()
_OUTPUT_DIR = flag_groups.define_output_dir()
_OVERWRITE = flag_groups.define_overwrite()
_MAX_SIZE = flag_groups.define_max_size()

flags.adopt_module_key_flags(flag_groups)


def _run():
    common.require_flags("stylize", _MODEL, _INPUT, _OUTPUT_DIR)
    model_path = files.find_model(_MODEL.value)
    pairs = files.plan_outputs(_INPUT.value, _OUTPUT_DIR.value, _OVERWRITE.value)
    outputs.check_writable_files([output for _, output in pairs], "--output_dir")
    common.import_tensorflow()
    from tf_nst import stylize  # pylint: disable=import-outside-toplevel

    model = stylize.load_stylizer(model_path)
    stylize.require_one_style(model, model_path)
    result = stylize.stylize_files(model, pairs, _MAX_SIZE.value or None, callback=common.report_file)
    failed = f"; {len(result.failed)} failed" if result.failed else ""
    print(f"tf-nst: wrote {len(result.written)} image(s) to {_OUTPUT_DIR.value}{failed}", flush=True)
    return 1 if result.failed else 0


def main(argv):
    return common.run_command("stylize", _run, argv)
