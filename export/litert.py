"""LiteRT (TFLite) export: the `stylize_images` signature of an exported SavedModel as one .tflite file.

The converted model takes uint8 [1, H, W, 3] and returns uint8 [1, H, W, 3], H and W dynamic: before running
an image, resize the input tensor to its size (Interpreter.resize_tensor_input, then allocate_tensors).
Only LiteRT's built-in ops are allowed (no Flex delegate), so the file runs on the phone runtimes as they
ship. The interpreter comes from the ai-edge-litert package; tf.lite.Interpreter is deprecated.

An arbitrary-style network (tf_nst.adain, or Magenta's pretrained one) converts from its Keras model to one
.tflite with two signatures that share the weights, the pair a phone app needs (as Magenta's style predict /
style transform); E is arbitrary.embedding_size (1920 for AdaIN, 100 for magenta-arbitrary):
  style_statistics  style_images: uint8 [1, H', W', 3] -> style_statistics: float32 [1, E]
                    (arbitrary.style_embedding; computed once per style, then kept)
  stylize           images: uint8 [1, H, W, 3], style_statistics: float32 [1, E], alpha: float32 [1]
                    -> stylized: uint8 [1, H, W, 3]
                    (magenta-arbitrary: alpha < 1 mixes in the content's own embedding, from the content
                    resized without antialiasing, which LiteRT lacks: as the Keras model below 256 px, a
                    little apart above)
The 26-style network (magenta-26) converts from its Keras model to one signature:
  stylize           images: uint8 [1, H, W, 3], style_weights: float32 [1, 26] (non-negative, normalised to
                    sum to 1 inside) -> stylized: uint8 [1, H, W, 3]
Images' sizes are free, as above (a signature runner resizes its inputs itself).
"""

import os
import re
import tempfile

import keras

import numpy as np
import tensorflow as tf

from export import saved_model
from tf_nst import arbitrary
from tf_nst import image_io
from tf_nst import magenta
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
STYLE_WEIGHTS = "style_weights"

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
                             ".keras model: pass that file or its train_dir (or the built-in network's name, "
                             "magenta-arbitrary) instead of the SavedModel")
    if saved_model.STYLE_WEIGHTS in loaded.signatures[saved_model.IMAGES].structured_input_signature[1]:
        raise UserInputError(f"{model_dir!r} holds the 26-style network, which converts to LiteRT from the network "
                             "itself: pass --model=magenta-26 instead of the SavedModel")
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
      model: an arbitrary-style network (adain.build_model's, or pretrained.load("magenta-arbitrary")).
      quantize: see convert.

    Raises:
      UserInputError: a one-style network, an unknown quantisation, or an op that LiteRT lacks (named).
    """
    _check_quantize(quantize)
    if not arbitrary.is_arbitrary(model):
        raise UserInputError(f"model {model.name!r} learnt one style (it takes no style image); convert its "
                             "SavedModel with convert()")
    size = arbitrary.embedding_size(model)

    def encode_style(style_images):
        return {STYLE_STATISTICS: arbitrary.style_embedding(model, image_io.to_float(style_images))}

    def stylize_images(images, style_statistics, alpha):  # pylint: disable=redefined-outer-name
        content = image_io.to_float(images)
        if magenta.is_arbitrary(model):  # LiteRT lacks the antialiased resize of the content's own embedding
            stylized = magenta.stylize_with_embeddings(model, content, [style_statistics], alpha=alpha,
                                                       antialias=False)
        else:
            stylized = arbitrary.stylize_with_embeddings(model, content, [style_statistics], alpha=alpha)
        return {OUTPUT: image_io.to_uint8(stylized)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(STYLE_STATISTICS, encode_style,
                         [tf.TensorSpec([1, None, None, 3], tf.uint8, name=STYLE_INPUT)])
    archive.add_endpoint(STYLIZE, stylize_images, [
        tf.TensorSpec([1, None, None, 3], tf.uint8, name=INPUT),
        tf.TensorSpec([1, size], tf.float32, name=STYLE_STATISTICS),
        tf.TensorSpec([1], tf.float32, name=ALPHA)])
    return _convert_archive(archive, [STYLE_STATISTICS, STYLIZE], quantize, model.name)


def convert_multistyle(model, quantize=DEFAULT_QUANTIZATION):
    """Converts the 26-style network to LiteRT (its stylize signature of the module docstring); returns the
    .tflite bytes.

    Raises:
      UserInputError: another kind of network, an unknown quantisation, or an op that LiteRT lacks (named).
    """
    _check_quantize(quantize)
    if not arbitrary.is_multistyle(model):
        raise UserInputError(f"model {model.name!r} takes no style weights; convert it with convert_network()")

    def stylize_images(images, style_weights):
        weights = style_weights / tf.reduce_sum(style_weights, axis=-1, keepdims=True)
        return {OUTPUT: image_io.to_uint8(magenta.stylize_builtin(model, image_io.to_float(images), weights))}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(STYLIZE, stylize_images, [
        tf.TensorSpec([1, None, None, 3], tf.uint8, name=INPUT),
        tf.TensorSpec([1, magenta.NUM_BUILTIN_STYLES], tf.float32, name=STYLE_WEIGHTS)])
    return _convert_archive(archive, [STYLIZE], quantize, model.name)


def convert_network(model, quantize=DEFAULT_QUANTIZATION):
    """convert_multistyle or convert_arbitrary, by the network's kind."""
    return (convert_multistyle if arbitrary.is_multistyle(model) else convert_arbitrary)(model, quantize)


def _convert_archive(archive, signature_keys, quantize, source):
    """Converts an ExportArchive's endpoints through a SavedModel: the converter finds Keras 3 variables there
    (from a live model it would freeze none), and signatures converted together share their weights."""
    with tempfile.TemporaryDirectory(prefix="tf_nst_litert_") as temp_dir:
        archive.write_out(temp_dir, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(temp_dir, signature_keys=signature_keys)
        return _convert(converter, quantize, source)


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


def export_network(model, output, quantize=DEFAULT_QUANTIZATION):
    """Converts an arbitrary-style or the 26-style network (convert_network) and writes it atomically to
    `output`, a .tflite path that must not exist; returns it."""
    output = _check_output(output)
    image_io.write_file(output, convert_network(model, quantize))
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
    """Runs an arbitrary-style model's style_statistics signature: uint8 [H, W, 3] -> float32 [1, E]."""
    runner = interpreter.get_signature_runner(STYLE_STATISTICS)
    return runner(**{STYLE_INPUT: np.asarray(style_image, np.uint8)[None]})[STYLE_STATISTICS]


def stylize_arbitrary(interpreter, image, statistics, alpha=1.0):
    """Runs an arbitrary-style model's stylize signature: uint8 [H, W, 3], a [1, E] style_statistics
    vector and alpha in [0, 1] -> uint8 [H, W, 3]."""
    runner = interpreter.get_signature_runner(STYLIZE)
    return runner(**{INPUT: np.asarray(image, np.uint8)[None],
                     STYLE_STATISTICS: np.asarray(statistics, np.float32).reshape(1, -1),
                     ALPHA: np.array([alpha], np.float32)})[OUTPUT][0]


def stylize_builtin(interpreter, image, style_weights):
    """Runs the 26-style model's stylize signature: uint8 [H, W, 3] and 26 non-negative weights, not all zero
    -> uint8 [H, W, 3]."""
    runner = interpreter.get_signature_runner(STYLIZE)
    return runner(**{INPUT: np.asarray(image, np.uint8)[None],
                     STYLE_WEIGHTS: np.asarray(style_weights, np.float32).reshape(1, magenta.NUM_BUILTIN_STYLES)
                     })[OUTPUT][0]
