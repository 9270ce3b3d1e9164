"""The arbitrary-style network (Huang & Belongie 2017): the frozen VGG encoder up to relu4_1, adaptive
instance normalisation (AdaIN), and a decoder trained to invert the encoder.

One `.keras` model holds all three; `stylize` runs its parts for several styles, blend weights and alpha.
"""

import dataclasses

import keras
import tensorflow as tf

from tf_nst import defaults
from tf_nst import image_io
from tf_nst import losses
from tf_nst import transformer
from tf_nst import vgg

# The encoder's output (relu4_1; Keras VGG convolutions include their ReLU) and the layers whose mean and
# standard deviation make the style loss (Huang & Belongie 2017, §6: relu1_1, relu2_1, relu3_1, relu4_1).
ENCODER_LAYER = "block4_conv1"
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")
# Inside the square root of the variance: keeps a constant channel's division finite (the paper's code: 1e-5).
EPSILON = losses.MOMENT_EPSILON
# Three poolings before relu4_1: the content is padded to a multiple of this, and the decoder undoes it.
DOWNSAMPLING = 8
# The smallest content side: relu4_1 at least 2 x 2, the least that the decoder's reflection padding allows.
MIN_INPUT_SIDE = 2 * DOWNSAMPLING
# The smallest style side: relu4_1 at least 1 x 1.
MIN_STYLE_SIDE = vgg.min_input_size(STYLE_LAYERS)
# Channels of VGG's blocks 1-4; the decoder mirrors them.
_BLOCK_FILTERS = (64, 128, 256, 512)
# The length of a style_statistics vector: the means and the stds of STYLE_LAYERS' channels.
STATISTICS_SIZE = 2 * sum(_BLOCK_FILTERS)


def encoder_config(extractor):
    """The vgg.ExtractorConfig of the encoder: `extractor`'s backbone, weights, pooling, precision and seed,
    with the AdaIN layers."""
    return dataclasses.replace(extractor, style_layers=STYLE_LAYERS, content_layers=(ENCODER_LAYER,))


def adaptive_instance_norm(content, style, epsilon=EPSILON):
    """AdaIN(x, y) = sigma(y) (x - mu(x)) / sigma(x) + mu(y) (Huang & Belongie 2017, eq. 8), in float32.

    Args:
      content: [batch, height, width, channels] features.
      style: [batch or 1, height', width', channels] features.
    """
    style_mean, style_std = losses.feature_moments(style, epsilon)
    return normalize_to(content, style_mean, style_std, epsilon)


def normalize_to(content, mean, std, epsilon=EPSILON):
    """AdaIN from the style's moments alone: the content's channels given `mean` and `std`, in float32.

    Args:
      content: [batch, height, width, channels] features.
      mean, std: [batch or 1, 1, 1, channels], as losses.feature_moments gives them.
    """
    content_mean, content_std = losses.feature_moments(content, epsilon)
    return (tf.cast(content, tf.float32) - content_mean) / content_std * std + mean


def target_features(content, styles, blend_weights=None, alpha=1.0, epsilon=EPSILON):
    """t = alpha * sum_i w_i AdaIN(content, styles[i]) + (1 - alpha) * content (Huang & Belongie 2017, §7).

    Args:
      content: [batch, height, width, channels] features of the content.
      styles: a list of [batch or 1, h_i, w_i, channels] features, one per style.
      blend_weights: one non-negative weight per style, normalised to sum to 1 (default: equal).
      alpha: a float, or a [batch] tensor: 0 keeps the content's features, 1 is full style.

    Returns:
      [batch, height, width, channels] float32 target features for the decoder.
    """
    return blend_targets(content, [losses.feature_moments(style, epsilon) for style in styles], blend_weights,
                         alpha, epsilon)


def blend_targets(content, moments, blend_weights=None, alpha=1.0, epsilon=EPSILON, masks=None):
    """target_features from each style's (mean, std) at the encoder layer instead of its features.

    Args:
      content: [batch, height, width, channels] features of the content.
      moments: a list of (mean, std) pairs, each [batch or 1, 1, 1, channels], one per style.
      blend_weights, alpha: as in target_features.
      masks: optional spatial control (Huang & Belongie 2017, §7.1): one [height, width] weight map in [0, 1]
        per style, on the content features' grid. Each style is applied where its mask is white, with the
        content's mean and std taken over that region alone; overlaps blend by mask x blend weight, and where
        the masks add up to less than 1 the content's features show through. All-white masks give the
        unmasked result.
    """
    if masks is not None:
        return _masked_targets(content, moments, blend_weights, alpha, epsilon, masks)
    if blend_weights is None:
        blend_weights = [1.0] * len(moments)
    if len(blend_weights) != len(moments):
        raise ValueError(f"{len(blend_weights)} blend weights for {len(moments)} styles; give one per style")
    total = float(sum(blend_weights))
    if not total > 0 or min(blend_weights) < 0:
        raise ValueError(f"blend weights must be non-negative and not all zero; received {list(blend_weights)}")
    content = tf.cast(content, tf.float32)
    stylized = tf.add_n([(weight / total) * normalize_to(content, mean, std, epsilon)
                         for weight, (mean, std) in zip(blend_weights, moments)])
    alpha = tf.reshape(tf.cast(alpha, tf.float32), [-1, 1, 1, 1])
    return alpha * stylized + (1.0 - alpha) * content


@keras.saving.register_keras_serializable(package="tf_nst")
class AdaptiveInstanceNormalization(keras.layers.Layer):
    """[content features, style features, alpha [batch]] -> target_features for one style, in float32."""

    def __init__(self, epsilon=EPSILON, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        content, style, alpha = inputs
        return target_features(content, [style], alpha=alpha, epsilon=self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="tf_nst")
class ClipPixels(keras.layers.Layer):
    """The decoder's linear output -> float32 RGB clipped to [0, 255]; the model's last layer only."""

    def __init__(self, **kwargs):
        super().__init__(autocast=False, **kwargs)

    def call(self, inputs):
        return tf.clip_by_value(tf.cast(inputs, tf.float32), 0.0, 255.0)

    def compute_output_shape(self, input_shape):
        return input_shape


def build_decoder(backbone="vgg19", width_multiplier=1.0, name="decoder"):
    """The decoder: the encoder's mirror (Huang & Belongie 2017, §6).

    Each VGG convolution up to relu4_1 is mirrored in reverse order, and each pooling becomes nearest 2x
    upsampling (fused with the convolution after it: transformer.ReflectionConv2D). Reflection padding, no
    normalisation layers (the paper finds they hurt: they would normalise the style away), ReLU everywhere but
    the last convolution, whose output is linear RGB (not clipped here, so training gets its gradients).

    Args:
      backbone: "vgg19" or "vgg16": how many convolutions each block mirrors.
      width_multiplier: scales every hidden layer's channel count (transformer.scaled_filters); 0.5 or 0.25
        give slimmer, faster decoders. The input stays the encoder's 512 channels, the output 3.
      name: the model's name.

    Returns:
      A keras.Model mapping [batch, h, w, 512] relu4_1 features to [batch, 8h, 8w, 3] pixels (about
      [0, 255] once trained), following the global dtype policy.
    """
    if not width_multiplier > 0:
        raise ValueError(f"width multiplier must be greater than 0; received {width_multiplier!r}")
    block_convs = vgg.BLOCK_CONVS[backbone]
    inputs = keras.Input(shape=(None, None, _BLOCK_FILTERS[3]), name="features")
    x = _conv_relu(inputs, transformer.scaled_filters(_BLOCK_FILTERS[2], width_multiplier), "block4_conv1")
    for block in (3, 2, 1):
        for index in range(block_convs[block - 1], 0, -1):
            layer_name = f"block{block}_conv{index}"
            upsample = index == block_convs[block - 1]  # the block's first convolution replaces the pooling
            if block == 1 and index == 1:
                x = transformer.ReflectionConv2D(3, 3, upsample=upsample, name=layer_name)(x)
                break
            filters = _BLOCK_FILTERS[block - 1 - (index == 1)]
            x = _conv_relu(x, transformer.scaled_filters(filters, width_multiplier), layer_name,
                           upsample=upsample)
    return keras.Model(inputs, x, name=name)


def _conv_relu(x, filters, name, upsample=False):
    x = transformer.ReflectionConv2D(filters, 3, upsample=upsample, name=name)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_encoder(extractor):
    """The frozen VGG encoder: RGB [0, 255] -> {layer: features} at STYLE_LAYERS (ENCODER_LAYER included).

    Args:
      extractor: a vgg.ExtractorConfig for the backbone, weights, pooling, precision and seed; its layers are
        replaced by the encoder's.
    """
    return vgg.build_extractor(encoder_config(extractor), name="encoder")


def build_model(extractor=vgg.ExtractorConfig(), width_multiplier=1.0, name="arbitrary_stylizer"):
    """The whole arbitrary-style network: encoder, AdaIN and decoder in one keras.Model.

    The content is reflection-padded to a multiple of DOWNSAMPLING and the output cropped back, so any
    height and width of at least MIN_INPUT_SIDE work; the style needs MIN_STYLE_SIDE.

    Args:
      extractor: the encoder's vgg.ExtractorConfig (see build_encoder).
      width_multiplier: the decoder's width (build_decoder).
      name: the model's name.

    Returns:
      A keras.Model with inputs {"content": [N, H, W, 3], "style": [N, H', W', 3] RGB in [0, 255],
      "alpha": [N] in [0, 1]} and float32 output [N, H, W, 3] in [0, 255]. `get_layer("encoder")` and
      `get_layer("decoder")` are its parts (see `stylize`).
    """
    encoder = build_encoder(extractor)
    decoder = build_decoder(extractor.backbone, width_multiplier)
    content = keras.Input(shape=(None, None, 3), name="content")
    style = keras.Input(shape=(None, None, 3), name="style")
    alpha = keras.Input(shape=(), name="alpha")
    padded = transformer.PadToMultiple(DOWNSAMPLING, name="pad_to_multiple", dtype="float32")(content)
    target = AdaptiveInstanceNormalization(name="adain")(
        [encoder(padded)[ENCODER_LAYER], encoder(style)[ENCODER_LAYER], alpha])
    decoded = transformer.CropToReference(name="crop", dtype="float32")([decoder(target), content])
    outputs = ClipPixels(name="clip", dtype="float32")(decoded)
    return keras.Model({"content": content, "style": style, "alpha": alpha}, outputs, name=name)


def _masked_targets(content, moments, blend_weights, alpha, epsilon, masks):
    if len(masks) != len(moments):
        raise ValueError(f"{len(masks)} masks for {len(moments)} styles; give one per style")
    blend_weights = [1.0] * len(moments) if blend_weights is None else list(blend_weights)
    content = tf.cast(content, tf.float32)
    masks = [tf.cast(mask, tf.float32)[tf.newaxis, :, :, tf.newaxis] for mask in masks]
    weighted, total = [], 0.0
    for weight, (mean, std), mask in zip(blend_weights, moments, masks):
        area = tf.maximum(tf.reduce_sum(mask), 1e-8)
        region_mean = tf.reduce_sum(mask * content, axis=[1, 2], keepdims=True) / area
        region_variance = tf.reduce_sum(mask * tf.square(content - region_mean), axis=[1, 2], keepdims=True) / area
        normalized = (content - region_mean) / tf.sqrt(region_variance + epsilon) * std + mean
        weighted.append(weight * mask * normalized)
        total += weight * mask
    coverage = tf.minimum(tf.add_n(masks), 1.0)
    stylized = tf.add_n(weighted) / tf.maximum(total, 1e-8)
    stylized = coverage * stylized + (1.0 - coverage) * content
    alpha = tf.reshape(tf.cast(alpha, tf.float32), [-1, 1, 1, 1])
    return alpha * stylized + (1.0 - alpha) * content


def is_arbitrary(model):
    """Whether a loaded stylizer is a build_model network (it takes a style), not a one-style transformer."""
    return any(isinstance(layer, AdaptiveInstanceNormalization) for layer in model.layers)


def style_statistics(model, styles):
    """The style embedding: each style image's feature means and stds at STYLE_LAYERS, as one vector.

    Layout: [mean relu1_1 (64), mean relu2_1 (128), mean relu3_1 (256), mean relu4_1 (512), then the stds in
    the same order], STATISTICS_SIZE = 2 * 960 floats. The decoder needs only relu4_1's (encoder_moments);
    the others are the moments the style loss matches, for clients that compare or cluster styles.

    Args:
      model: a build_model model.
      styles: [N, H, W, 3] RGB in [0, 255].

    Returns:
      float32 [N, STATISTICS_SIZE].
    """
    features = model.get_layer("encoder")(tf.cast(styles, tf.float32))
    moments = [losses.feature_moments(features[name], EPSILON) for name in STYLE_LAYERS]
    flat = [tf.reshape(value, [tf.shape(value)[0], value.shape[-1]]) for value in
            [mean for mean, _ in moments] + [std for _, std in moments]]
    return tf.concat(flat, axis=-1)


def encoder_moments(statistics):
    """[N, STATISTICS_SIZE] style_statistics -> (mean, std) at ENCODER_LAYER, each [N, 1, 1, 512]."""
    channels, encoder_channels = sum(_BLOCK_FILTERS), _BLOCK_FILTERS[-1]
    statistics = tf.cast(statistics, tf.float32)
    mean = statistics[:, channels - encoder_channels:channels]
    std = statistics[:, 2 * channels - encoder_channels:]
    return mean[:, None, None, :], std[:, None, None, :]


def stylize_with_statistics(model, content, statistics, blend_weights=None, alpha=1.0, masks=None):
    """Stylises content images with a blend of styles given as style_statistics vectors.

    Args:
      model: a build_model model.
      content: [N, H, W, 3] RGB in [0, 255].
      statistics: a list of [1 or N, STATISTICS_SIZE] style_statistics, one per style.
      blend_weights, alpha: as in target_features.
      masks: optional, one [H, W] weight map in [0, 1] per style, at the content's size (blend_targets).

    Returns:
      [N, H, W, 3] float32 in [0, 255].
    """
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    content = tf.convert_to_tensor(content, tf.float32)
    padded = model.get_layer("pad_to_multiple")(content)
    features = encoder(padded)[ENCODER_LAYER]
    if masks is not None:  # padded like the content, then averaged over each feature's 8 x 8 pixels
        masks = [image_io.pool_mask(model.get_layer("pad_to_multiple")(
            tf.convert_to_tensor(mask, tf.float32)[tf.newaxis, :, :, tf.newaxis])[0, :, :, 0], features.shape[1:3])
            for mask in masks]
    target = blend_targets(features, [encoder_moments(s) for s in statistics], blend_weights, alpha, masks=masks)
    decoded = decoder(target)[:, :tf.shape(content)[1], :tf.shape(content)[2], :]
    return tf.clip_by_value(tf.cast(decoded, tf.float32), 0.0, 255.0)


def stylize(model, content, styles, blend_weights=None, alpha=1.0):
    """Stylises content images with a blend of styles, through the parts of a `build_model` model.

    Args:
      model: a build_model model.
      content: [N, H, W, 3] RGB in [0, 255].
      styles: a list of [1 or N, H_i, W_i, 3] RGB style images in [0, 255].
      blend_weights, alpha: as in target_features.

    Returns:
      [N, H, W, 3] float32 in [0, 255].
    """
    return stylize_with_statistics(model, content, [style_statistics(model, style) for style in styles],
                                   blend_weights, alpha)


def loss_weights(content=defaults.ADAIN_CONTENT_WEIGHT, style=defaults.ADAIN_STYLE_WEIGHT,
                 tv=defaults.ADAIN_TV_WEIGHT):
    """The losses.LossWeights of the arbitrary-style network; the four style layers count equally (see
    tf_nst/defaults.py for the reasons behind each weight)."""
    return losses.LossWeights(content=content, style=style, tv=tv,
                              style_layers={name: 1.0 for name in STYLE_LAYERS})
