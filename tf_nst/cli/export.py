"""`export`: turns a trained stylizer into a versioned SavedModel for TF Serving, and a LiteRT model.

Writes <export_dir>/<model_name>/<version>/ (never overwriting a version) plus models.config and
batching_parameters.txt beside it. --format=litert also converts the SavedModel's stylize_images signature
to LiteRT (uint8 [1, H, W, 3], any H and W) and writes model.tflite into the version folder, or to --output;
given an exported version folder as --model, it only converts that. An arbitrary-style model's export resizes
each style image to --style_size on its shorter side, as `stylize` does. An arbitrary-style model converts from
its .keras file to one model.tflite with two signatures: style_statistics (a style image -> its 1920
statistics) and stylize (an image, style_statistics and alpha -> the stylized image); see export/litert.py.

--model also takes a built-in network by name: magenta-arbitrary exports as an arbitrary-style model (its
style_statistics are the 100-d embedding; --style_size defaults to 256, as `stylize` sizes its styles), and
magenta-26 with a style_weights input [N, 26] on each signature (see export/saved_model.py); --format=litert
converts either from the network itself.
"""

import os

from absl import flags
from absl import logging

from tf_nst import defaults
from tf_nst import files
from tf_nst import outputs
from tf_nst import pretrained
from tf_nst.cli import common
from tf_nst.cli import flag_groups
from tf_nst.errors import UserInputError

# export.litert.QUANTIZATIONS, named here so that flags are checked before TensorFlow loads.
QUANTIZATIONS = ("none", "float16", "dynamic_int8")

_MODEL = flag_groups.define_model()
_MODEL_NAME = flag_groups.define_model_name()
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", "exports",
    "The serving root; writes <export_dir>/<model_name>/<version>/ plus models.config and "
    "batching_parameters.txt beside it.")
_VERSION = flags.DEFINE_integer(
    "version", 0, "The version number to write (0: the next free one); a version is never overwritten.",
    lower_bound=0, upper_bound=defaults.MAX_VERSION)
_EXPORT_MAX_SIZE = flags.DEFINE_integer(
    "export_max_size", 1024, "The served model downscales encoded images whose longer side exceeds this many "
    "pixels.", lower_bound=16, upper_bound=defaults.MAX_IMAGE_SIZE)
_FORMAT = flags.DEFINE_enum(
    "format", "saved_model", ["saved_model", "litert"],
    "saved_model: for TF Serving. litert: also model.tflite for LiteRT (phones, edge devices), converted from "
    "the SavedModel's stylize_images signature; for an arbitrary-style model, from the .keras network, with a "
    "style_statistics and a stylize signature.")
_QUANTIZE = flags.DEFINE_enum(
    "quantize", "float16", QUANTIZATIONS,
    "--format=litert: how the weights are stored. none: float32; float16: half the size, computed in float32 "
    "on CPUs; dynamic_int8: a quarter, with activations quantised on the fly (least accurate).")
_OUTPUT = flag_groups.define_output()
_STYLE_SIZE = flag_groups.define_style_size()

flags.adopt_module_key_flags(flag_groups)


def _litert_output():
    """The --output path for --format=litert, checked; None for the default beside the SavedModel."""
    if not _OUTPUT.present:
        return None
    if not _OUTPUT.value.endswith(".tflite"):
        raise UserInputError(f"--output={_OUTPUT.value!r} must end in .tflite for --format=litert")
    if os.path.exists(_OUTPUT.value):
        raise UserInputError(f"--output={_OUTPUT.value!r} already exists; choose another path or remove it")
    return _OUTPUT.value


def _run():
    common.require_flags("export", _MODEL)
    litert_output = _litert_output() if _FORMAT.value == "litert" else None
    is_saved_model = os.path.isfile(os.path.join(_MODEL.value, "saved_model.pb"))
    if is_saved_model and _FORMAT.value != "litert":
        raise UserInputError(f"--model={_MODEL.value!r} is already a SavedModel; export takes a .keras stylizer "
                             "or its --train_dir (an exported version folder only with --format=litert)")
    model_path, kind = _model_kind(is_saved_model)
    arbitrary = kind == files.ARBITRARY
    if _STYLE_SIZE.present and not arbitrary:
        raise UserInputError(f"--model={_MODEL.value!r} takes no style image, so no --style_size; the flag is for "
                             "arbitrary-style models (magenta-arbitrary, train --architecture=adain)")
    builtin = pretrained.is_builtin(_MODEL.value)
    style_size = _STYLE_SIZE.value or (defaults.PRETRAINED_STYLE_SIZE if builtin else defaults.STYLE_SIZE)
    if arbitrary and style_size > _EXPORT_MAX_SIZE.value:
        raise UserInputError(f"--style_size={style_size} is more than --export_max_size="
                             f"{_EXPORT_MAX_SIZE.value}: the served model would refuse every style; give at most "
                             "--export_max_size")
    if not is_saved_model:
        outputs.check_writable(os.path.join(_EXPORT_DIR.value, _MODEL_NAME.value), "--export_dir")
    if litert_output or (is_saved_model and _FORMAT.value == "litert"):
        outputs.check_writable_files([litert_output or os.path.join(model_path, "model.tflite")], "the LiteRT model")
    common.import_tensorflow()
    from export import saved_model  # pylint: disable=import-outside-toplevel

    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TF's SavedModel writer logs its tracing notes at INFO
    model = model_path
    converts_network = kind != files.ONE_STYLE and not is_saved_model
    if converts_network and _FORMAT.value == "litert":  # loaded once: LiteRT converts it from the network itself
        from tf_nst import stylize  # pylint: disable=import-outside-toplevel

        model = stylize.load_stylizer(model_path)
    version_dir = model_path
    if not is_saved_model:
        version_dir = saved_model.export(model, _EXPORT_DIR.value, model_name=_MODEL_NAME.value,
                                         version=_VERSION.value or None, max_size=_EXPORT_MAX_SIZE.value,
                                         style_size=style_size)
        signatures = saved_model.signature_names(kind)
        print(f"tf-nst: wrote {version_dir} (signatures: {', '.join(signatures)})", flush=True)
    if _FORMAT.value == "litert":
        from export import litert  # pylint: disable=import-outside-toplevel

        with common.quiet_native_stderr():  # the converter prints its MLIR diagnostics there
            if converts_network:
                path = litert.export_network(model, litert_output or os.path.join(version_dir, litert.MODEL_FILE),
                                             _QUANTIZE.value)
            else:
                path = litert.export(version_dir, litert_output, _QUANTIZE.value)
        print(f"tf-nst: wrote {path} (LiteRT, {_QUANTIZE.value}, {os.path.getsize(path) / 2**20:.1f} MiB)",
              flush=True)
    return 0


def _model_kind(is_saved_model):
    """(what export reads, files.ONE_STYLE / ARBITRARY / MULTISTYLE) for --model, without TensorFlow."""
    if is_saved_model:
        return _MODEL.value, files.export_kind(_MODEL.value)
    if pretrained.is_builtin(_MODEL.value):
        pretrained.check_available(_MODEL.value)
        return _MODEL.value, pretrained.NETWORKS[_MODEL.value].kind
    model_path = files.find_model(_MODEL.value)
    return model_path, files.ARBITRARY if files.is_arbitrary_model(model_path) else files.ONE_STYLE


def main(argv):
    return common.run_command("export", _run, argv)
