"""The feed-forward stylizer network (Johnson et al. 2016) and the layers it needs to save as `.keras`.

Johnson et al. 2016, supplementary Table 1, with two later fixes: instance normalisation instead of batch
normalisation (Ulyanov et al. 2016), and nearest-neighbour upsampling followed by a convolution instead of
fractionally strided convolutions, which leave checkerboard artefacts (Odena et al. 2016).
"""

import itertools

import keras
import numpy as np
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


# Stride-1 convolutions with kernels this large run on space-to-depth blocks of this side (see ReflectionConv2D).
_BLOCK_MIN_KERNEL = 7
_BLOCK = 4


def _block_selection(kernel_size, block, num_blocks=None, offset=0):
    """0/1 tensor S[A, alpha, a, u]: tap u of a stride-1 kernel links input phase alpha at block offset A to
    output phase a, when the convolution runs on space_to_depth(block) of its input (block * A + alpha - a
    - offset == u). `offset` is how many pixels the input starts before the padding the kernel expects."""
    if num_blocks is None:
        num_blocks = (block + kernel_size - 2) // block + 1
    selection = np.zeros((num_blocks, block, block, kernel_size), np.float32)
    for start, in_phase, out_phase in itertools.product(range(num_blocks), range(block), range(block)):
        tap = block * start + in_phase - out_phase - offset
        if 0 <= tap < kernel_size:
            selection[start, in_phase, out_phase, tap] = 1.0
    return selection


def _upsample_selection():
    """0/1 tensor S[A, 0, a, u] for nearest 2x upsampling, reflection padding 1 and a 3x3 convolution,
    computed at the low resolution: output phase a of pixel I reads low-resolution pixel I + A - 1 (the
    low-resolution image edge-padded by 1, which is what reflecting the upsampled image amounts to)."""
    selection = np.zeros((3, 1, 2, 3), np.float32)
    for out_phase, tap in itertools.product(range(2), range(3)):
        selection[(out_phase + tap - 1) // 2 + 1, 0, out_phase, tap] = 1.0
    return selection


def _phase_kernel(kernel, selection):
    """Re-expresses a [k, k, in, out] kernel as the kernel of the equivalent convolution over phases:
    [A, A, in_phases^2 * in, out_phases^2 * out], channels ordered as space_to_depth / depth_to_space do."""
    num_blocks, in_phases, out_phases, _ = selection.shape
    selection = tf.constant(selection, kernel.dtype)
    phases = tf.einsum("AxaU,BybV,UVio->ABxyiabo", selection, selection, kernel)
    channels_in, channels_out = kernel.shape[2], kernel.shape[3]
    return tf.reshape(phases, [num_blocks, num_blocks, in_phases * in_phases * channels_in,
                               out_phases * out_phases * channels_out])


def _with_channels(tensor, channels):
    """States the static channel count that a pad or reshape by computed sizes hides from LiteRT's converter.

    Without it the converter sees a convolution over unknown channels, which only TensorFlow's kernel (Flex)
    runs, and refuses the model. The reshape keeps the data where it is (no copy).
    """
    shape = tf.shape(tensor)
    return tf.reshape(tensor, [shape[0], shape[1], shape[2], channels])  # tf.ensure_shape is not a LiteRT op


def _reflect(inputs, padding):
    return tf.pad(inputs, [[0, 0], [padding, padding], [padding, padding], [0, 0]], mode="REFLECT")


def _reflect_phases(phases, num_blocks, axis):
    """Reflection padding by 2 * num_blocks pixels along `axis` (1: height, 2: width) of the image that
    `phases` [N, h, w, 2, 2, C] holds as space_to_depth(2). Reflection keeps a row's parity, so each phase
    is padded from its own rows; only the new border blocks are gathered."""
    phase_axis = axis + 2
    size = tf.shape(phases)[axis]
    starts = tf.range(1, num_blocks + 1)[::-1]  # block -J of phase a reflects block J - a
    borders = []
    for source in (lambda a: starts - a, lambda a: size - 1 - a - tf.range(num_blocks)):
        strips = [tf.gather(tf.gather(phases, source(a), axis=axis), [a], axis=phase_axis) for a in (0, 1)]
        borders.append(tf.concat(strips, axis=phase_axis))
    return tf.concat([borders[0], phases, borders[1]], axis=axis)


@keras.saving.register_keras_serializable(package="tf_nst")
class ReflectionConv2D(keras.layers.Layer):
    """Reflection padding then a convolution with "valid" padding, optionally after nearest 2x upsampling;
    the output keeps the input's size divided by `strides` (times 2 with `upsample`).

    The weights are a plain [k, k, in, out] kernel and a bias, but the costly cases are computed in an
    equivalent, faster form (the same result up to float rounding): the CPU spent most of its time copying
    few-channel full-resolution tensors (padding, upsampling) and in few-channel convolutions, which are
    memory-bound.
    - A stride-1 convolution with a large kernel (the 9x9 ones) runs on space_to_depth(4) of the padded
      input with a re-arranged kernel, then depth_to_space: a 16x-wider convolution at 1/16 of the positions.
    - Upsampling then a 3x3 convolution runs at the low resolution with one kernel per output phase, then
      depth_to_space: the upsampled and padded tensors are never built.
    - `phases_out` (with `upsample`) skips that depth_to_space and returns the space_to_depth(2) "phase
      form" of the output, [N, H, W, 4 * filters]; `phases_in` takes that form as input. A layer pair that
      passes the phase form between them (through InstanceNormalization(phases=4) and ReLU, which do not
      care) saves three full-resolution copies.
    - `blocked=False` keeps a large stride-1 kernel a plain convolution: on the 2-core AVX-512 machine a 9x9
      convolution of RGB (3 channels in) ran 1.4-2x faster plain than blocked (BENCHMARKS.md, "Pretrained
      networks"); the Johnson network keeps the blocked form it was measured with.
    """

    def __init__(self, filters, kernel_size, strides=1, upsample=False, phases_in=False, phases_out=False,
                 blocked=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.upsample = bool(upsample)
        self.phases_in = bool(phases_in)
        self.phases_out = bool(phases_out)
        self.blocked = bool(blocked)
        if self.upsample and (self.kernel_size != 3 or self.strides != 1 or self.phases_in):
            raise ValueError("upsampling is implemented for 3x3 stride-1 convolutions of plain images only")
        if self.phases_out and not self.upsample:
            raise ValueError("phases_out needs upsample")
        if self.phases_in and self.strides != 1:
            raise ValueError("phases_in is implemented for stride 1 only")

    def build(self, input_shape):
        channels_in = input_shape[-1] // 4 if self.phases_in else input_shape[-1]
        shape = (self.kernel_size, self.kernel_size, channels_in, self.filters)
        self.kernel = self.add_weight(shape=shape, initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")

    def call(self, inputs):
        kernel = tf.cast(self.kernel, self.compute_dtype)
        bias = tf.cast(self.bias, self.compute_dtype)
        if self.upsample:
            padded = tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
            phases = tf.nn.conv2d(padded, _phase_kernel(kernel, _upsample_selection()), 1, "VALID")
            if self.phases_out:
                return phases + tf.tile(bias, [4])
            return tf.nn.depth_to_space(phases, 2) + bias
        if self.phases_in:
            return self._conv_from_phases(inputs, kernel) + bias
        if self.blocked and self.strides == 1 and self.kernel_size >= _BLOCK_MIN_KERNEL:
            return self._blocked_conv(inputs, kernel) + bias
        # LiteRT's converter loses the channels through a mirror pad of a serving graph's images.
        padded = _with_channels(_reflect(inputs, self.kernel_size // 2), kernel.shape[2])
        return tf.nn.conv2d(padded, kernel, self.strides, "VALID") + bias

    def _blocked_conv(self, inputs, kernel):
        selection = _block_selection(self.kernel_size, _BLOCK)
        num_blocks = selection.shape[0]
        padding = self.kernel_size // 2
        shape = tf.shape(inputs)
        height, width = shape[1], shape[2]
        # Zeros fill the padded input up to whole blocks; the kernel never reaches them for a kept output.
        extra_height = _BLOCK * (num_blocks - 1) - 2 * padding + (-height % _BLOCK)
        extra_width = _BLOCK * (num_blocks - 1) - 2 * padding + (-width % _BLOCK)
        padded = tf.pad(_reflect(inputs, padding), [[0, 0], [0, extra_height], [0, extra_width], [0, 0]])
        padded = _with_channels(padded, inputs.shape[-1])
        blocks = tf.nn.conv2d(tf.nn.space_to_depth(padded, _BLOCK), _phase_kernel(kernel, selection), 1,
                              "VALID")
        return tf.nn.depth_to_space(blocks, _BLOCK)[:, :height, :width, :]

    def _conv_from_phases(self, inputs, kernel):
        padding = self.kernel_size // 2
        pad_blocks = -(-padding // 2)
        shape = tf.shape(inputs)
        phases = tf.reshape(inputs, [shape[0], shape[1], shape[2], 2, 2, inputs.shape[-1] // 4])
        padded = _reflect_phases(_reflect_phases(phases, pad_blocks, axis=1), pad_blocks, axis=2)
        padded = tf.reshape(padded, [shape[0], shape[1] + 2 * pad_blocks, shape[2] + 2 * pad_blocks,
                                     inputs.shape[-1]])
        padded = _with_channels(padded, inputs.shape[-1])
        selection = _block_selection(self.kernel_size, 2, 2 * pad_blocks + 1, 2 * pad_blocks - padding)
        return tf.nn.depth_to_space(tf.nn.conv2d(padded, _phase_kernel(kernel, selection), 1, "VALID"), 2)

    def compute_output_shape(self, input_shape):
        def side(size):
            if size is None:
                return None
            if self.phases_in:
                return 2 * size
            return size if self.upsample else -(-size // self.strides)
        channels = 4 * self.filters if self.phases_out else self.filters
        height, width = side(input_shape[1]), side(input_shape[2])
        if self.upsample and not self.phases_out:
            height, width = (None if height is None else 2 * height), (None if width is None else 2 * width)
        return (input_shape[0], height, width, channels)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "upsample": self.upsample, "phases_in": self.phases_in,
                "phases_out": self.phases_out, "blocked": self.blocked}


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

    def __init__(self, epsilon=1e-5, phases=1, **kwargs):
        super().__init__(autocast=False, **kwargs)  # casts itself: float32 statistics
        self.epsilon = float(epsilon)
        self.phases = int(phases)

    def build(self, input_shape):
        channels = input_shape[-1] // self.phases
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, inputs):
        x = tf.cast(inputs, tf.float32)
        if self.phases > 1:  # [N, H, W, phases * C] -> [N, H, W * phases, C]: phases are more positions
            shape = tf.shape(x)
            x = tf.reshape(x, [shape[0], shape[1], shape[2] * self.phases, x.shape[-1] // self.phases])
        shape = tf.shape(x)
        batch, channels = shape[0], x.shape[-1]
        # FusedBatchNormV3 in training mode normalises every channel over the batch and the positions. With
        # the images moved into the channel axis (a transpose that copies nothing for a single image), that
        # is instance normalisation, in one kernel instead of five passes over the activations.
        stacked = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, shape[1], shape[2], batch * channels])
        normalized, _, _ = tf.compat.v1.nn.fused_batch_norm(
            stacked, tf.tile(tf.cast(self.gamma, tf.float32), [batch]),
            tf.tile(tf.cast(self.beta, tf.float32), [batch]), epsilon=self.epsilon, is_training=True)
        x = tf.transpose(tf.reshape(normalized, [shape[1], shape[2], batch, channels]), [2, 0, 1, 3])
        return tf.cast(tf.reshape(x, tf.shape(inputs)), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "phases": self.phases}


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


def _conv(x, filters, kernel_size, name, strides=1, **kwargs):
    return ReflectionConv2D(filters, kernel_size, strides, name=f"{name}_conv", **kwargs)(x)


def _conv_norm_relu(x, filters, kernel_size, name, strides=1, phases_out=False, **kwargs):
    x = _conv(x, filters, kernel_size, name, strides, phases_out=phases_out, **kwargs)
    x = InstanceNormalization(phases=4 if phases_out else 1, name=f"{name}_norm")(x)
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
        # The last upsampling hands the output convolution its phase form (see ReflectionConv2D).
        x = _conv_norm_relu(x, scaled_filters(filters, width_multiplier), kernel_size, f"up{index}",
                            upsample=True, phases_out=index == len(_DECODER))
    x = _conv(x, 3, 9, "output", phases_in=True)
    x = ToPixels(name="to_pixels", dtype="float32")(x)
    outputs = CropToReference(name="crop", dtype="float32")([x, inputs])
    return keras.Model(inputs, outputs, name=name)
