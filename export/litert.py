"""LiteRT (TFLite) export: the `stylize_images` signature of an exported SavedModel as one .tflite file.

The converted model takes uint8 [1, H, W, 3] and returns uint8 [1, H, W, 3], H and W dynamic: before running
an image, resize the input tensor to its size (Interpreter.resize_tensor_input, then allocate_tensors).
Only LiteRT's built-in ops are allowed (no Flex delegate), so the file runs on the phone runtimes as they
ship. The interpreter comes from the ai-edge-litert package; tf.lite.Interpreter is deprecated.

An arbitrary-style network (tf_nst.adain) converts from its Keras model to one .tflite with two signatures
that share the encoder's weights, the pair a phone app needs (as Magenta's style predict / style transform):
  style_statistics  style_images: uint8 [1, H', W', 3] -> style_statistics: float32 [1, 1920]
                    (adain.style_statistics; computed once per style, then kept)
  stylize           images: uint8 [1, H, W, 3], style_statistics: float32 [1, 1920], alpha: float32 [1]
                    -> stylized: uint8 [1, H, W, 3]
Both images' sizes are free, as above (a signature runner resizes its inputs itself).
"""

import os
import re
import tempfile

import keras

import numpy as np
import tensorflow as tf

from export import saved_model
from tf_nst import adain
from tf_nst import image_io
from tf_nst.errors import UserInputError

QUANTIZATIONS = ("none", "float16", "dynamic_int8")
DEFAULT_QUANTIZATION = "float16"
MODEL_FILE = "model.tflite"
INPUT = "images"
OUTPUT = "stylized"
# The arbitrary-style network's signatures, their inputs and outputs.
STYLE_STATISTICS = "style_statistics"
STYLIZE = "stylize"
STYLE_INPUT = "style_images"
ALPHA = "alpha"

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
    _check_quantize(quantize)
    if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        raise UserInputError(f"no SavedModel in {model_dir!r}; pass a version folder that `export` wrote, "
                             "such as exports/stylizer/1")
    loaded = tf.saved_model.load(model_dir)
    if saved_model.STYLE_EMBEDDING in loaded.signatures:
        raise UserInputError(f"{model_dir!r} holds an arbitrary-style network, which converts to LiteRT from its "
                             ".keras model: pass that file or its train_dir instead of the SavedModel")
    signature = loaded.signatures[saved_model.IMAGES]

    # One image per call: LiteRT's phone runtimes resize [1, H, W, 3] freely.
    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name=INPUT)])
    def stylize_images(images):
        return {OUTPUT: signature(images=images)[OUTPUT]}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [stylize_images.get_concrete_function()], loaded)
    return _convert(converter, quantize, model_dir)


def convert_arbitrary(model, quantize=DEFAULT_QUANTIZATION):
    """Converts an arbitrary-style network to LiteRT (the two signatures of the module docstring); returns the
    .tflite bytes.

    Args:
      model: an adain.build_model network (as stylize.load_stylizer loads it).
      quantize: see convert.

    Raises:
      UserInputError: a one-style network, an unknown quantisation, or an op that LiteRT lacks (named).
    """
    _check_quantize(quantize)
    if not adain.is_arbitrary(model):
        raise UserInputError(f"model {model.name!r} learnt one style; convert its SavedModel with convert()")

    def encode_style(style_images):
        return {STYLE_STATISTICS: adain.style_statistics(model, image_io.to_float(style_images))}

    def stylize_images(images, style_statistics, alpha):  # pylint: disable=redefined-outer-name
        stylized = adain.stylize_with_statistics(model, image_io.to_float(images), [style_statistics], alpha=alpha)
        return {OUTPUT: image_io.to_uint8(stylized)}

    # Through a SavedModel: the converter finds Keras 3 variables there (from a live model it would freeze
    # none), and converts several signatures into one file whose weights they share.
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(STYLE_STATISTICS, encode_style,
                         [tf.TensorSpec([1, None, None, 3], tf.uint8, name=STYLE_INPUT)])
    archive.add_endpoint(STYLIZE, stylize_images, [
        tf.TensorSpec([1, None, None, 3], tf.uint8, name=INPUT),
        tf.TensorSpec([1, adain.STATISTICS_SIZE], tf.float32, name=STYLE_STATISTICS),
        tf.TensorSpec([1], tf.float32, name=ALPHA)])
    with tempfile.TemporaryDirectory(prefix="tf_nst_litert_") as temp_dir:
        archive.write_out(temp_dir, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(temp_dir, signature_keys=[STYLE_STATISTICS, STYLIZE])
        return _convert(converter, quantize, model.name)


def _check_quantize(quantize):
    if quantize not in QUANTIZATIONS:
        raise UserInputError(f"quantize must be one of {', '.join(QUANTIZATIONS)}; received {quantize!r}")


def _convert(converter, quantize, source):
    """converter.convert() with built-in ops only and the quantisation; an op LiteRT lacks is a UserInputError
    naming it and `source`."""
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
            f"LiteRT has no built-in kernel for the TensorFlow op(s) {', '.join(missing)} in {source!r}; "
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
    output = _check_output(output or os.path.join(model_dir, MODEL_FILE))
    image_io.write_file(output, convert(model_dir, quantize))
    return output


def export_arbitrary(model, output, quantize=DEFAULT_QUANTIZATION):
    """Converts an arbitrary-style network (see convert_arbitrary) and writes it atomically to `output`, a
    .tflite path that must not exist; returns it.

    Raises:
      UserInputError: see convert_arbitrary; or an output that exists or does not end in .tflite.
    """
    output = _check_output(output)
    image_io.write_file(output, convert_arbitrary(model, quantize))
    return output


def _check_output(output):
    if not output.endswith(".tflite"):
        raise UserInputError(f"output {output!r} must end in .tflite")
    if os.path.exists(output):
        raise UserInputError(f"output {output!r} already exists; choose another --output or remove it")
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


def style_statistics(interpreter, style_image):
    """Runs an arbitrary-style model's style_statistics signature: uint8 [H, W, 3] -> float32 [1, 1920]."""
    runner = interpreter.get_signature_runner(STYLE_STATISTICS)
    return runner(**{STYLE_INPUT: np.asarray(style_image, np.uint8)[None]})[STYLE_STATISTICS]


def stylize_arbitrary(interpreter, image, statistics, alpha=1.0):
    """Runs an arbitrary-style model's stylize signature: uint8 [H, W, 3], a [1, 1920] style_statistics
    vector and alpha in [0, 1] -> uint8 [H, W, 3]."""
    runner = interpreter.get_signature_runner(STYLIZE)
    return runner(**{INPUT: np.asarray(image, np.uint8)[None],
                     STYLE_STATISTICS: np.asarray(statistics, np.float32).reshape(1, adain.STATISTICS_SIZE),
                     ALPHA: np.array([alpha], np.float32)})[OUTPUT][0]
