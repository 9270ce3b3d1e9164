"""Magenta's pretrained conditional-instance-norm networks, rebuilt in Keras from their papers and graphs.

- The arbitrary-style network (Ghiasi et al. 2017): a MobileNetV2 style predictor maps a style image to a
  100-d embedding; 1x1 projections of it give the gamma and beta of the transformer's 13 conditional instance
  norms.
- The 26-style network (Dumoulin et al. 2017): the same kind of transformer, whose gamma and beta are rows of
  a 26-row table mixed by a style-weight vector.

Every network takes and returns RGB in [0, 255] (uint8 or float), any height and width (reflection-padded to a
multiple of 4 and cropped back). The weights come from tf_nst.pretrained.
"""

import dataclasses

import keras
import tensorflow as tf

from tf_nst import image_io
from tf_nst import transformer

EMBEDDING_SIZE = 100
NUM_BUILTIN_STYLES = 26
# The predictor's training size (Ghiasi et al. 2017, §3: styles at 256 x 256).
PREDICTOR_SIZE = 256
# Two stride-2 convolutions: the content is padded to a multiple of this and cropped back.
DOWNSAMPLING = transformer.DOWNSAMPLING
# The smallest content side: the residual blocks see 2 x 2 (the least that reflection padding of 1 allows).
MIN_INPUT_SIDE = 2 * DOWNSAMPLING
# The smallest style side: MobileNetV2 halves it five times ("SAME" padding); 32 px leave it 1 x 1.
MIN_STYLE_SIDE = 32
EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class TransformerSpec:
    """The shape of a conditional transformer.

    Attributes:
      contract: (filters, kernel size, stride) of each downsampling convolution.
      contract_norm: whether those convolutions are followed by a conditional instance norm (else a bias).
      residual_filters, num_residual: the residual blocks at the lowest resolution.
      expand: filters of each nearest-2x-upsampling 3x3 convolution; a 9x9 convolution to RGB follows.
      condition_size: the length of the conditioning vector (the embedding, or the style weights).
      condition_bias: whether gamma and beta are affine (the embedding's projections) or linear (weights
        times the table of built-in styles).
    """

    contract: tuple
    contract_norm: bool
    residual_filters: int
    num_residual: int
    expand: tuple
    condition_size: int
    condition_bias: bool


# Ghiasi et al. 2017, the "lite" transformer of Magenta's TFLite models: 8/16/32 channels, 5 residual blocks.
ARBITRARY_SPEC = TransformerSpec(((8, 9, 1), (16, 3, 2), (32, 3, 2)), False, 32, 5, (16, 8), EMBEDDING_SIZE, True)
# The 26-style network of TensorFlow's Android stylize demo (Dumoulin et al. 2017): 32 channels, 6 residual blocks.
MULTISTYLE_SPEC = TransformerSpec(((32, 9, 1), (32, 3, 2), (32, 3, 2)), True, 32, 6, (8, 4), NUM_BUILTIN_STYLES,
                                  False)

# MobileNetV2 (Sandler et al. 2018, Table 2): (expansion, channels, repeats, first stride).
_MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1))


@keras.saving.register_keras_serializable(package="tf_nst")
class ConditionalInstanceNormalization(keras.layers.Layer):
    """[x, gamma, beta] -> gamma (x - mean) / sqrt(var + epsilon) + beta, per image and channel, in float32.

    gamma and beta are [N, C] inputs (Dumoulin et al. 2017, eq. 5), not weights. `phases=4` takes the
    space_to_depth(2) form of transformer.ReflectionConv2D(phases_out=True), whose four phases are positions.
    """

    def __init__(self, epsilon=EPSILON, phases=1, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.epsilon = float(epsilon)
        self.phases = int(phases)

    def call(self, inputs):
        x, gamma, beta = (tf.cast(value, tf.float32) for value in inputs)
        shape = tf.shape(x)
        if self.phases > 1:  # [N, H, W, phases * C] -> [N, H, W * phases, C]
            x = tf.reshape(x, [shape[0], shape[1], shape[2] * self.phases, x.shape[-1] // self.phases])
        positions = tf.shape(x)
        batch, channels = positions[0], x.shape[-1]
        # As transformer.InstanceNormalization: the images moved into the channel axis make a training-mode
        # FusedBatchNormV3 an instance norm in one kernel, here with each image's own gamma and beta.
        stacked = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, positions[1], positions[2], batch * channels])
        normalized, _, _ = tf.compat.v1.nn.fused_batch_norm(
            stacked, tf.reshape(gamma, [-1]), tf.reshape(beta, [-1]), epsilon=self.epsilon, is_training=True)
        y = tf.transpose(tf.reshape(normalized, [positions[1], positions[2], batch, channels]), [2, 0, 1, 3])
        return tf.cast(tf.reshape(y, shape), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "phases": self.phases}


@keras.saving.register_keras_serializable(package="tf_nst")
class UnitPixels(keras.layers.Layer):
    """RGB [0, 255] -> [0, 1], the Magenta networks' input range."""

    def __init__(self, **kwargs):
        super().__init__(autocast=False, **kwargs)

    def call(self, inputs):
        return tf.cast(tf.cast(inputs, tf.float32) / 255.0, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="tf_nst")
class SigmoidPixels(keras.layers.Layer):
    """Logits -> RGB in (0, 255) through the sigmoid, in float32."""

    def __init__(self, **kwargs):
        super().__init__(autocast=False, **kwargs)

    def call(self, inputs):
        return tf.sigmoid(tf.cast(inputs, tf.float32)) * 255.0

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="tf_nst")
class ResizeShorterSide(keras.layers.Layer):
    """[N, H, W, 3] -> antialiased resize to a shorter side of `side`: what the predictor sees of a content."""

    def __init__(self, side=PREDICTOR_SIZE, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.side = int(side)

    def call(self, inputs):
        return image_io.resize(inputs, image_io.shorter_side_size(tf.shape(inputs)[1:3], self.side))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, None, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "side": self.side}


@keras.saving.register_keras_serializable(package="tf_nst")
class Interpolate(keras.layers.Layer):
    """[a, b, alpha [N]] -> alpha a + (1 - alpha) b: Ghiasi et al. 2017, §4.3, between two embeddings."""

    def __init__(self, **kwargs):
        super().__init__(autocast=False, **kwargs)

    def call(self, inputs):
        a, b, alpha = (tf.cast(value, tf.float32) for value in inputs)
        alpha = tf.reshape(alpha, [-1, 1])
        return alpha * a + (1.0 - alpha) * b

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def _conditioned_norm(x, condition, spec, name, phases=1):
    gamma = keras.layers.Dense(x.shape[-1] // phases, use_bias=spec.condition_bias, name=f"{name}_gamma",
                               dtype="float32")(condition)
    beta = keras.layers.Dense(x.shape[-1] // phases, use_bias=spec.condition_bias, name=f"{name}_beta",
                              dtype="float32")(condition)
    return ConditionalInstanceNormalization(phases=phases, name=f"{name}_norm")([x, gamma, beta])


def build_transformer(spec=ARBITRARY_SPEC, name="transformer"):
    """The conditional transformer: reflection-padded convolutions (transformer.ReflectionConv2D, whose fast
    forms the Johnson network uses too), conditional instance norms, a sigmoid output.

    Returns:
      A keras.Model with inputs {"content": [N, H, W, 3] RGB in [0, 255], "condition": [N, condition_size]}
      and float32 output [N, H, W, 3] in (0, 255), any H and W of at least MIN_INPUT_SIDE.
    """
    content = keras.Input(shape=(None, None, 3), name="content")
    condition = keras.Input(shape=(spec.condition_size,), name="condition")
    x = UnitPixels(name="unit_pixels")(content)
    x = transformer.PadToMultiple(DOWNSAMPLING, name="pad_to_multiple")(x)
    for index, (filters, kernel_size, strides) in enumerate(spec.contract, start=1):
        x = transformer.ReflectionConv2D(filters, kernel_size, strides, blocked=False,  # faster plain (RGB in)
                                         name=f"contract{index}_conv")(x)
        if spec.contract_norm:
            x = _conditioned_norm(x, condition, spec, f"contract{index}")
        x = keras.layers.ReLU(name=f"contract{index}_relu")(x)
    for index in range(1, spec.num_residual + 1):
        y = transformer.ReflectionConv2D(spec.residual_filters, 3, name=f"res{index}_a_conv")(x)
        y = keras.layers.ReLU(name=f"res{index}_a_relu")(_conditioned_norm(y, condition, spec, f"res{index}_a"))
        y = transformer.ReflectionConv2D(spec.residual_filters, 3, name=f"res{index}_b_conv")(y)
        x = keras.layers.Add(name=f"res{index}_add")([x, _conditioned_norm(y, condition, spec, f"res{index}_b")])
    for index, filters in enumerate(spec.expand, start=1):
        last = index == len(spec.expand)  # hands the 9x9 output convolution its phase form
        x = transformer.ReflectionConv2D(filters, 3, upsample=True, phases_out=last, name=f"expand{index}_conv")(x)
        x = _conditioned_norm(x, condition, spec, f"expand{index}", phases=4 if last else 1)
        x = keras.layers.ReLU(name=f"expand{index}_relu")(x)
    x = transformer.ReflectionConv2D(3, 9, phases_in=True, name="output_conv")(x)
    x = SigmoidPixels(name="to_pixels", dtype="float32")(_conditioned_norm(x, condition, spec, "output"))
    outputs = transformer.CropToReference(name="crop", dtype="float32")([x, content])
    return keras.Model({"content": content, "condition": condition}, outputs, name=name)


def _relu6(x, name):
    return keras.layers.ReLU(6.0, name=f"{name}_relu6")(x)


def predictor_block_name(index):
    """The Keras name of MobileNetV2's `index`-th inverted residual block (0-16)."""
    return f"block{index}"


def build_style_predictor(name="style_predictor"):
    """The style predictor: MobileNetV2 (batch norm folded into biases, ReLU6, "SAME" padding), global average
    pooling, and a 1280 -> 100 bottleneck (Ghiasi et al. 2017, §3).

    Returns:
      A keras.Model from RGB [N, H, W, 3] in [0, 255] (any size of at least MIN_STYLE_SIDE; trained on 256 x
      256) to float32 embeddings [N, EMBEDDING_SIZE].
    """
    inputs = keras.Input(shape=(None, None, 3), name="style")
    x = UnitPixels(name="unit_pixels")(inputs)
    x = _relu6(keras.layers.Conv2D(32, 3, 2, "same", name="conv")(x), "conv")
    channels, index = 32, 0
    for expansion, filters, repeats, first_stride in _MOBILENET_V2:
        for repeat in range(repeats):
            block, y = predictor_block_name(index), x
            if expansion != 1:
                y = _relu6(keras.layers.Conv2D(channels * expansion, 1, name=f"{block}_expand")(y), f"{block}_expand")
            strides = first_stride if repeat == 0 else 1
            y = _relu6(keras.layers.DepthwiseConv2D(3, strides, "same", name=f"{block}_depthwise")(y),
                       f"{block}_depthwise")
            y = keras.layers.Conv2D(filters, 1, name=f"{block}_project")(y)
            if strides == 1 and channels == filters:
                y = keras.layers.Add(name=f"{block}_add")([x, y])
            x, channels, index = y, filters, index + 1
    x = _relu6(keras.layers.Conv2D(1280, 1, name="conv_1")(x), "conv_1")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(EMBEDDING_SIZE, name="bottleneck", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def build_arbitrary_model(name="magenta_arbitrary"):
    """The arbitrary-style network: predictor and transformer in one keras.Model.

    `alpha` interpolates between the content's own embedding (the content resized to PREDICTOR_SIZE on its
    shorter side) and the style's (Ghiasi et al. 2017, §4.3).

    Returns:
      A keras.Model with inputs {"content": [N, H, W, 3], "style": [N, H', W', 3] RGB in [0, 255], "alpha":
      [N] in [0, 1]} and float32 output [N, H, W, 3] in [0, 255]. `get_layer("style_predictor")` and
      `get_layer("transformer")` are its parts.
    """
    predictor = build_style_predictor()
    network = build_transformer(ARBITRARY_SPEC)
    content = keras.Input(shape=(None, None, 3), name="content")
    style = keras.Input(shape=(None, None, 3), name="style")
    alpha = keras.Input(shape=(), name="alpha")
    own = predictor(ResizeShorterSide(PREDICTOR_SIZE, name="content_for_predictor")(content))
    embedding = Interpolate(name="interpolate")([predictor(style), own, alpha])
    outputs = network({"content": content, "condition": embedding})
    return keras.Model({"content": content, "style": style, "alpha": alpha}, outputs, name=name)


def build_multistyle_model(name="magenta_26"):
    """The 26-style network: inputs {"content": [N, H, W, 3] in [0, 255], "style_weights": [N, 26]} (each row
    normalised to sum to 1 by the caller: builtin_weights), float32 output [N, H, W, 3] in [0, 255]."""
    network = build_transformer(MULTISTYLE_SPEC)
    content = keras.Input(shape=(None, None, 3), name="content")
    weights = keras.Input(shape=(NUM_BUILTIN_STYLES,), name="style_weights")
    outputs = network({"content": content, "condition": weights})
    return keras.Model({"content": content, "style_weights": weights}, outputs, name=name)


def is_arbitrary(model):
    """Whether `model` is build_arbitrary_model's network."""
    return isinstance(model, keras.Model) and any(isinstance(layer, Interpolate) for layer in model.layers)


def is_multistyle(model):
    """Whether `model` is build_multistyle_model's network (it takes style weights)."""
    return isinstance(model, keras.Model) and "style_weights" in _input_names(model)


def _input_names(model):
    inputs = model.input if isinstance(model.input, dict) else {}
    return tuple(inputs)


def style_embedding(model, styles):
    """[N, H, W, 3] styles in [0, 255] -> float32 [N, EMBEDDING_SIZE], through the arbitrary network's predictor."""
    return tf.cast(model.get_layer("style_predictor")(tf.cast(styles, tf.float32)), tf.float32)


def content_embedding(model, content, antialias=True):
    """The content's own embedding, which alpha interpolates towards: [N, H, W, 3] -> [N, EMBEDDING_SIZE].

    antialias=False resizes with plain bilinear sampling, which LiteRT has a kernel for (not for the antialiased
    resize, ScaleAndTranslate); the two differ only for content whose shorter side exceeds PREDICTOR_SIZE.
    """
    content = tf.cast(content, tf.float32)
    if antialias:
        return style_embedding(model, model.get_layer("content_for_predictor")(content))
    size = image_io.shorter_side_size(tf.shape(content)[1:3], PREDICTOR_SIZE)
    return style_embedding(model, tf.image.resize(content, size, method="bilinear", antialias=False))


def stylize_with_embeddings(model, content, embeddings, blend_weights=None, alpha=1.0, masks=None,
                            antialias=True):
    """Stylises content with a blend of styles given as embeddings.

    Args:
      model: build_arbitrary_model's network.
      content: [N, H, W, 3] RGB in [0, 255].
      embeddings: a list of [1 or N, EMBEDDING_SIZE], one per style.
      blend_weights: one non-negative weight per style (None: equal), normalised; the styles blend in
        embedding space (Ghiasi et al. 2017, §4.3).
      alpha: a float or a [N] / scalar tensor in [0, 1]: 0 is the content's own embedding.
      masks: optional spatial control, one [H, W] weight map in [0, 1] per style: each style is rendered on its
        own and the results are mixed by mask (pixel space); where the masks sum to less than 1 the content
        shows through.
      antialias: how the content is resized for its own embedding (content_embedding).

    Returns:
      [N, H, W, 3] float32 in [0, 255].
    """
    content = tf.convert_to_tensor(content, tf.float32)
    network = model.get_layer("transformer")
    weights = _normalized(blend_weights, len(embeddings))
    alpha = tf.reshape(tf.cast(alpha, tf.float32), [-1, 1])
    own = content_embedding(model, content, antialias)

    def render(embedding):
        mixed = alpha * tf.cast(embedding, tf.float32) + (1.0 - alpha) * own
        return tf.cast(network({"content": content, "condition": mixed}), tf.float32)

    if masks is None:
        return render(tf.add_n([weight * tf.cast(e, tf.float32) for weight, e in zip(weights, embeddings)]))
    masks = [tf.convert_to_tensor(mask, tf.float32)[tf.newaxis, :, :, tf.newaxis] for mask in masks]
    weighted = [weight * mask for weight, mask in zip(weights, masks)]
    total = tf.add_n(weighted)
    coverage = tf.minimum(tf.add_n(masks), 1.0)
    mixed = tf.add_n([w * render(e) for w, e in zip(weighted, embeddings)]) / tf.maximum(total, 1e-8)
    return coverage * mixed + (1.0 - coverage) * content


def _normalized(blend_weights, count):
    if blend_weights is None:
        return [1.0 / count] * count
    if len(blend_weights) != count:
        raise ValueError(f"{len(blend_weights)} blend weights for {count} styles; give one per style")
    total = float(sum(blend_weights))
    if not total > 0 or min(blend_weights) < 0:
        raise ValueError(f"blend weights must be non-negative and not all zero; received {list(blend_weights)}")
    return [float(weight) / total for weight in blend_weights]


def stylize(model, content, styles, blend_weights=None, alpha=1.0):
    """stylize_with_embeddings from style images: a list of [1 or N, H_i, W_i, 3] in [0, 255]."""
    return stylize_with_embeddings(model, content, [style_embedding(model, style) for style in styles],
                                   blend_weights, alpha)


def stylize_builtin(model, content, style_weights):
    """The 26-style network on [N, H, W, 3] content with [N or 1, 26] weights (builtin_weights): float32."""
    content = tf.convert_to_tensor(content, tf.float32)
    weights = tf.cast(style_weights, tf.float32)
    weights = tf.broadcast_to(weights, [tf.shape(content)[0], NUM_BUILTIN_STYLES])
    return tf.cast(model({"content": content, "style_weights": weights}), tf.float32)
