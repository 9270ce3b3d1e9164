"""LiteRT (TFLite) export: the `stylize_images` signature of an exported SavedModel as one .tflite file.

The converted model takes uint8 [1, H, W, 3] and returns uint8 [1, H, W, 3], H and W dynamic: before running
an image, resize the input tensor to its size (Interpreter.resize_tensor_input, then allocate_tensors).
Only LiteRT's built-in ops are allowed (no Flex delegate), so the file runs on the phone runtimes as they
ship. The interpreter comes from the ai-edge-litert package; tf.lite.Interpreter is deprecated.
"""

import os
import re

import numpy as np
import tensorflow as tf

from export import saved_model
from tf_nst import image_io
from tf_nst.errors import UserInputError

QUANTIZATIONS = ("none", "float16", "dynamic_int8")
DEFAULT_QUANTIZATION = "float16"
MODEL_FILE = "model.tflite"
INPUT = "images"
OUTPUT = "stylized"

# "... 'tf.Lgamma' op is neither a custom op nor a flex op" (one error per op).
_MISSING_OP = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")


def convert(model_dir, quantize=DEFAULT_QUANTIZATION):
    """Converts the `stylize_images` signature of a SavedModel to LiteRT; returns the .tflite bytes.

    Args:
      model_dir: a version folder written by export.saved_model.export.
      quantize: "none" (float32), "float16" (weights stored as float16, computed in float32 on CPUs), or
        "dynamic_int8" (weights stored as int8; LiteRT quantises activations on the fly where it can).

    Raises:
      UserInputError: no SavedModel there, an unknown quantisation, or an op that LiteRT lacks (named).
    """
    if quantize not in QUANTIZATIONS:
        raise UserInputError(f"quantize must be one of {', '.join(QUANTIZATIONS)}; received {quantize!r}")
    if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        raise UserInputError(f"no SavedModel in {model_dir!r}; pass a version folder that `export` wrote, "
                             "such as exports/stylizer/1")
    loaded = tf.saved_model.load(model_dir)
    signature = loaded.signatures[saved_model.IMAGES]

    # One image per call: LiteRT's phone runtimes resize [1, H, W, 3] freely.
    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name=INPUT)])
    def stylize_images(images):
        return {OUTPUT: signature(images=images)[OUTPUT]}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [stylize_images.get_concrete_function()], loaded)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        return converter.convert()
    except Exception as e:  # pylint: disable=broad-except  # ConverterError's module moves between releases
        missing = sorted(set(_MISSING_OP.findall(str(e))))
        if not missing:
            raise
        hint = ("; a SavedModel exported before tf-nst could convert to LiteRT hides its channel counts from "
                "the converter: export the .keras stylizer again" if "Conv2D" in missing else "")
        raise UserInputError(
            f"LiteRT has no built-in kernel for the TensorFlow op(s) {', '.join(missing)} in {model_dir!r}; "
            f"the model cannot run on LiteRT's phone runtimes as it is{hint}") from None


def export(model_dir, output=None, quantize=DEFAULT_QUANTIZATION):
    """Converts a SavedModel (see convert) and writes it atomically; returns the path written.

    Args:
      model_dir: a version folder written by export.saved_model.export.
      output: the .tflite path; default `<model_dir>/model.tflite`, beside the SavedModel. An existing file
        is never replaced.
      quantize: see convert.

    Raises:
      UserInputError: see convert; or an output that exists or does not end in .tflite.
    """
    output = output or os.path.join(model_dir, MODEL_FILE)
    if not output.endswith(".tflite"):
        raise UserInputError(f"output {output!r} must end in .tflite")
    if os.path.exists(output):
        raise UserInputError(f"output {output!r} already exists; choose another --output or remove it")
    image_io.write_file(output, convert(model_dir, quantize))
    return output


def load_interpreter(model_path, num_threads=None):
    """A LiteRT interpreter for a .tflite file (needs the ai-edge-litert package: the [litert] extra)."""
    from ai_edge_litert import interpreter  # pylint: disable=import-outside-toplevel

    return interpreter.Interpreter(model_path=model_path, num_threads=num_threads)


def stylize(interpreter, image):
    """Runs the converted stylizer on one image: uint8 [H, W, 3] in, uint8 [H, W, 3] out, any H and W.

    Resizes the interpreter's input to the image first (a no-op when the size is unchanged).
    """
    (input_detail,) = interpreter.get_input_details()
    (output_detail,) = interpreter.get_output_details()
    shape = [1, *np.shape(image)[:2], 3]
    if list(input_detail["shape"]) != shape:
        interpreter.resize_tensor_input(input_detail["index"], shape)
        interpreter.allocate_tensors()
    interpreter.set_tensor(input_detail["index"], np.asarray(image, np.uint8)[None])
    interpreter.invoke()
    return interpreter.get_tensor(output_detail["index"])[0]
