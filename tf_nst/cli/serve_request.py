"""`serve-request`: sends image files to a running TF Serving (REST or gRPC) and writes the stylised results
as `stylize` does.

The inputs, the outputs and the server's answer are checked before TensorFlow loads; TensorFlow is needed
only to write the results. --style sends a style image with every input, for a served arbitrary-style
model (magenta-arbitrary, train --architecture=adain); --builtin_style sends its weights with every input, for
a served magenta-26. An image the server refuses (its `error` output) is named with the reason, one
line on stderr, and makes the exit status 1; the others are still written.
"""

from absl import flags

from tf_nst import files
from tf_nst import outputs
from tf_nst import pretrained
from tf_nst.cli import common
from tf_nst.cli import flag_groups
from tf_nst.errors import UserInputError

_INPUT = flag_groups.define_input()
_OUTPUT_DIR = flag_groups.define_output_dir()
_OVERWRITE = flag_groups.define_overwrite()
_MODEL_NAME = flag_groups.define_model_name()
_STYLE = flag_groups.define_style()
_BUILTIN_STYLE = flag_groups.define_builtin_style()
_SERVER = flags.DEFINE_string(
    "server", None, "host:port of TF Serving (default: localhost:8501 for rest, localhost:8500 for grpc).")
_PROTOCOL = flags.DEFINE_enum(
    "protocol", "rest", ["rest", "grpc"], "JSON with base64 images (rest) or gRPC.")

flags.adopt_module_key_flags(flag_groups)


@flags.validator("server", message="--server must be host:port with a port from 1 to 65535, e.g. localhost:8501")
def _check_server(value):
    """host:port, as urllib and gRPC read it (a bad port was an InvalidURL traceback)."""
    if value is None:
        return True
    host, _, port = value.rpartition(":")
    return bool(host) and "/" not in value and port.isdigit() and 1 <= int(port) <= 65535


def _run():
    common.require_flags("serve-request", _INPUT, _OUTPUT_DIR)
    pairs = files.plan_outputs(_INPUT.value, _OUTPUT_DIR.value, _OVERWRITE.value)
    outputs.check_writable_files([output for _, output in pairs], "--output_dir")
    if _STYLE.present and _BUILTIN_STYLE.present:
        raise UserInputError("give --style (a served arbitrary-style model) or --builtin_style (a served "
                             f"{pretrained.MULTISTYLE}), not both")
    style = _read_style() if _STYLE.present else None
    weights = pretrained.builtin_weights(_BUILTIN_STYLE.value) if _BUILTIN_STYLE.present else None
    from export import client  # pylint: disable=import-outside-toplevel

    predictions = client.request_files(pairs, _SERVER.value, _MODEL_NAME.value, protocol=_PROTOCOL.value,
                                       style=style, style_weights=weights)
    common.import_tensorflow()
    result = client.write_outputs(pairs, predictions, callback=common.report_file, replace=_OVERWRITE.value)
    if result.failed:
        print(f"tf-nst: wrote {len(result.written)} image(s) to {_OUTPUT_DIR.value}; {len(result.failed)} "
              "refused by the server", flush=True)
    return 1 if result.failed else 0


def _read_style():
    """The --style file's bytes, sent as they are once Pillow has read them as an image (one file: the served
    model takes one style per image)."""
    if "," in _STYLE.value:
        raise UserInputError(f"--style={_STYLE.value!r}: serve-request sends one style file; blend styles with "
                             "`stylize`, or send their style_embedding vectors to stylize_with_embedding")
    files.read_image(_STYLE.value)
    with open(_STYLE.value, "rb") as f:
        return f.read()


def main(argv):
    return common.run_command("serve-request", _run, argv)
