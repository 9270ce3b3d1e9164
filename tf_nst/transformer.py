"""The feed-forward stylizer network (Johnson et al. 2016) and the layers it needs to save as `.keras`.

Johnson et al. 2016, supplementary Table 1, with two later fixes: instance normalisation instead of batch
normalisation (Ulyanov et al. 2016), and nearest-neighbour upsampling followed by a convolution instead of
fractionally strided convolutions, which leave checkerboard artefacts (Odena et al. 2016).
"""

import keras
import tensorflow as tf

from tf_nst import image_io
from tf_nst.errors import UserInputError

# The two stride-2 convolutions halve the size twice; the input is padded to a multiple of this.
DOWNSAMPLING = 4
# The smallest input side: padded to 8, the residual blocks see 2x2, the least that reflection padding allows.
MIN_INPUT_SIDE = 5

# (filters, kernel size, stride) of the encoder; the decoder mirrors it with upsampling.
_ENCODER = ((32, 9, 1), (64, 3, 2), (128, 3, 2))
_DECODER = ((64, 3), (32, 3))


@keras.saving.register_keras_serializable(package="tf_nst")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads height and width by `padding` pixels on each side, mirroring the border (no edge artefacts)."""

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs):
        p = self.padding
        return tf.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        grow = lambda side: None if side is None else side + 2 * self.padding  # noqa: E731
        return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="tf_nst")
class PadToMultiple(keras.layers.Layer):
    """Reflection-pads the bottom and right so that height and width are multiples of `multiple`."""

    def __init__(self, multiple=DOWNSAMPLING, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, inputs):
        shape = tf.shape(inputs)
        pad_height = -shape[1] % self.multiple
        pad_width = -shape[2] % self.multiple
        return tf.pad(inputs, [[0, 0], [0, pad_height], [0, pad_width], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        grow = lambda side: None if side is None else -(-side // self.multiple) * self.multiple  # noqa: E731
        return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="tf_nst")
class CropToReference(keras.layers.Layer):
    """Crops `inputs[0]` to the height and width of `inputs[1]`, undoing PadToMultiple."""

    def call(self, inputs):
        image, reference = inputs
        shape = tf.shape(reference)
        return image[:, :shape[1], :shape[2], :]

    def compute_output_shape(self, input_shape):
        image_shape, reference_shape = input_shape
        return (image_shape[0], reference_shape[1], reference_shape[2], image_shape[3])


@keras.saving.register_keras_serializable(package="tf_nst")
class InstanceNormalization(keras.layers.Layer):
    """Normalises every channel of every image over its positions, then scales and shifts (Ulyanov 2016).

    Statistics are computed in float32 whatever the dtype policy, so mixed precision stays stable.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(autocast=False, **kwargs)  # casts itself: float32 statistics
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, inputs):
        x = tf.cast(inputs, tf.float32)
        mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        x = (x - mean) * tf.math.rsqrt(variance + self.epsilon)
        x = x * tf.cast(self.gamma, tf.float32) + tf.cast(self.beta, tf.float32)
        return tf.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="tf_nst")
class FromPixels(keras.layers.Layer):
    """RGB [0, 255] -> [-1, 1], through image_io (reads float32 pixels before casting to the policy)."""

    def __init__(self, **kwargs):
        super().__init__(autocast=False, **kwargs)

    def call(self, inputs):
        return tf.cast(image_io.to_signed_unit(inputs), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="tf_nst")
class ToPixels(keras.layers.Layer):
    """Unbounded values -> RGB in (0, 255) through tanh, in float32 (the model's output dtype)."""

    def call(self, inputs):
        return image_io.from_signed_unit(tf.tanh(tf.cast(inputs, tf.float32)))

    def compute_output_shape(self, input_shape):
        return input_shape


def _conv(x, filters, kernel_size, name, strides=1):
    x = ReflectionPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="valid", name=f"{name}_conv")(x)


def _conv_norm_relu(x, filters, kernel_size, name, strides=1):
    x = _conv(x, filters, kernel_size, name, strides)
    x = InstanceNormalization(name=f"{name}_norm")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _residual_block(x, filters, name):
    """conv-IN-ReLU-conv-IN plus the identity (He et al. 2016; Johnson et al. 2016, supplementary §2)."""
    y = _conv_norm_relu(x, filters, 3, f"{name}_a")
    y = _conv(y, filters, 3, f"{name}_b")
    y = InstanceNormalization(name=f"{name}_b_norm")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def scaled_filters(filters, width_multiplier):
    """A layer's channel count at `width_multiplier` (at least 1)."""
    return max(1, round(filters * width_multiplier))


def build_transformer(width_multiplier=1.0, num_residual_blocks=5, name="stylizer"):
    """Builds the feed-forward stylizer.

    Layers follow the global Keras dtype policy (mixed precision included); normalisation statistics and the
    output are float32.

    Args:
      width_multiplier: scales every layer's channel count; 0.5 or 0.25 give slimmer, faster networks.
      num_residual_blocks: residual blocks at the lowest resolution (5 in Johnson et al. 2016).
      name: the model's name.

    Returns:
      A keras.Model mapping RGB images [batch, height, width, 3] in [0, 255] (any height and width of at
      least MIN_INPUT_SIDE) to float32 stylised images of the same shape, in [0, 255].

    Raises:
      UserInputError: a width multiplier that is not positive, or a negative number of residual blocks.
    """
    if not width_multiplier > 0:
        raise UserInputError(f"width multiplier must be greater than 0; received {width_multiplier!r}")
    if num_residual_blocks < 0:
        raise UserInputError(f"number of residual blocks must be >= 0; received {num_residual_blocks!r}")
    inputs = keras.Input(shape=(None, None, 3), name="rgb")
    x = FromPixels(name="from_pixels")(inputs)
    x = PadToMultiple(DOWNSAMPLING, name="pad_to_multiple")(x)
    for index, (filters, kernel_size, strides) in enumerate(_ENCODER, start=1):
        filters = scaled_filters(filters, width_multiplier)
        x = _conv_norm_relu(x, filters, kernel_size, f"down{index}", strides)
    for index in range(1, num_residual_blocks + 1):
        x = _residual_block(x, scaled_filters(_ENCODER[-1][0], width_multiplier), f"res{index}")
    for index, (filters, kernel_size) in enumerate(_DECODER, start=1):
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"up{index}_upsample")(x)
        x = _conv_norm_relu(x, scaled_filters(filters, width_multiplier), kernel_size, f"up{index}")
    x = _conv(x, 3, 9, "output")
    x = ToPixels(name="to_pixels", dtype="float32")(x)
    outputs = CropToReference(name="crop", dtype="float32")([x, inputs])
    return keras.Model(inputs, outputs, name=name)
