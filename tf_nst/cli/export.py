"""`export`: turns a trained stylizer into a versioned SavedModel for TF Serving.

Writes <export_dir>/<model_name>/<version>/ (never overwriting a version) plus models.config and
batching_parameters.txt beside it.
"""

from absl import flags
from absl import logging

from tf_nst import files
from tf_nst.cli import common
from tf_nst.cli import flag_groups

_MODEL = flag_groups.define_model()
_MODEL_NAME = flag_groups.define_model_name()
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", "exports",
    "The serving root; writes <export_dir>/<model_name>/<version>/ plus models.config and "
    "batching_parameters.txt beside it.")
_VERSION = flags.DEFINE_integer(
    "version", 0, "The version number to write (0: the next free one); a version is never overwritten.",
    lower_bound=0)
_EXPORT_MAX_SIZE = flags.DEFINE_integer(
    "export_max_size", 1024, "The served model downscales encoded images whose longer side exceeds this many "
    "pixels.", lower_bound=16)

flags.adopt_module_key_flags(flag_groups)


def _run():
    common.require_flags("export", _MODEL)
    model_path = files.find_model(_MODEL.value)
    common.import_tensorflow()
    from export import saved_model  # pylint: disable=import-outside-toplevel

    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TF's SavedModel writer logs its tracing notes at INFO
    version_dir = saved_model.export(model_path, _EXPORT_DIR.value, model_name=_MODEL_NAME.value,
                                     version=_VERSION.value or None, max_size=_EXPORT_MAX_SIZE.value)
    print(f"tf-nst: wrote {version_dir} (signatures: {', '.join(saved_model.SIGNATURES)})", flush=True)
    return 0


def main(argv):
    return common.run_command("export", _run, argv)
