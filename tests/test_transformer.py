"""The feed-forward network: any input size, output range, .keras round trip, size, and its custom layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_nst import transformer
from tf_nst.errors import UserInputError


def _images(batch, height, width, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, height, width, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def slim():
    keras.utils.set_random_seed(0)
    return transformer.build_transformer(width_multiplier=0.25)


@pytest.mark.parametrize("height, width", [(67, 101), (5, 7), (64, 64), (33, 130), (101, 6), (250, 9)])
def test_output_size_equals_input_size(slim, height, width):
    assert tuple(slim(_images(2, height, width)).shape) == (2, height, width, 3)


def test_smaller_inputs_are_refused_at_exactly_the_documented_minimum(slim):
    side = transformer.MIN_INPUT_SIDE
    assert tuple(slim(_images(1, side, side)).shape) == (1, side, side, 3)
    with pytest.raises(tf.errors.InvalidArgumentError):
        slim(_images(1, side - 1, 16))


def test_output_is_float32_pixels_in_range_even_when_saturated(slim):
    images = np.concatenate([_images(1, 40, 40), np.zeros((1, 40, 40, 3), np.float32),
                             np.full((1, 40, 40, 3), 255, np.float32)])
    output = slim(images).numpy()
    assert output.dtype == np.float32 and output.std() > 0
    assert output.min() >= 0 and output.max() <= 255

    saturated = keras.models.clone_model(slim)
    kernel, bias = slim.get_layer("output_conv").get_weights()
    saturated.set_weights(slim.get_weights())
    saturated.get_layer("output_conv").set_weights([kernel * 1e4, bias])
    output = saturated(images).numpy()
    assert output.min() >= 0 and output.max() <= 255 and (output.max() - output.min()) > 250


def test_keras_round_trip_gives_identical_outputs(slim, tmp_path):
    path = str(tmp_path / "stylizer.keras")
    slim.save(path)
    loaded = keras.models.load_model(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in slim.layers]
    images = _images(1, 67, 101, seed=1)
    np.testing.assert_array_equal(loaded(images).numpy(), slim(images).numpy())


def _expected_parameters(width_multiplier, num_residual_blocks):
    """Johnson et al. 2016, supplementary Table 1, counted by hand: conv kernels and biases, norm scales and
    offsets."""
    c32, c64, c128 = (max(1, round(c * width_multiplier)) for c in (32, 64, 128))

    def conv(kernel_size, channels_in, channels_out):
        return kernel_size * kernel_size * channels_in * channels_out + channels_out

    def norm(channels):
        return 2 * channels

    encoder = conv(9, 3, c32) + norm(c32) + conv(3, c32, c64) + norm(c64) + conv(3, c64, c128) + norm(c128)
    residual = num_residual_blocks * 2 * (conv(3, c128, c128) + norm(c128))
    decoder = conv(3, c128, c64) + norm(c64) + conv(3, c64, c32) + norm(c32) + conv(9, c32, 3)
    return encoder + residual + decoder


@pytest.mark.parametrize("width_multiplier, num_residual_blocks", [(1.0, 5), (0.5, 3), (0.3, 0)])
def test_parameter_count_matches_the_architecture(width_multiplier, num_residual_blocks):
    model = transformer.build_transformer(width_multiplier, num_residual_blocks)
    assert model.count_params() == _expected_parameters(width_multiplier, num_residual_blocks)
    assert not model.non_trainable_weights


def test_full_width_network_has_johnsons_size():
    assert _expected_parameters(1.0, 5) == 1_679_235  # about 1.68 M, as in Johnson et al.'s network


@pytest.mark.parametrize("width_multiplier", [0, -0.5])
def test_width_multiplier_must_be_positive(width_multiplier):
    with pytest.raises(UserInputError, match="width multiplier must be greater than 0"):
        transformer.build_transformer(width_multiplier)


def test_mixed_precision_computes_in_half_precision_and_returns_float32(slim):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = transformer.build_transformer(width_multiplier=0.25)
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.get_layer("down1_conv").compute_dtype == "bfloat16"
    assert model.get_layer("down1_norm").gamma.dtype == "float32"
    model.set_weights(slim.get_weights())
    images = _images(1, 33, 47)
    output = model(images)
    assert output.dtype == tf.float32
    # bfloat16 keeps 8 significant bits: about one grey level of difference on average (1.1 measured).
    assert np.abs(output.numpy() - slim(images).numpy()).mean() < 3


def _reference_conv(images, kernel, bias, strides=1, upsample=False):
    """Nearest upsampling with NumPy, reflection padding with np.pad, then a plain "valid" convolution."""
    if upsample:
        images = images.repeat(2, axis=1).repeat(2, axis=2)
    padding = kernel.shape[0] // 2
    padded = np.pad(images, [(0, 0), (padding, padding), (padding, padding), (0, 0)], mode="reflect")
    return tf.nn.conv2d(padded, kernel, strides, "VALID").numpy() + bias


@pytest.mark.parametrize("kernel_size, strides, upsample, height, width", [
    (9, 1, False, 16, 20),   # space-to-depth path, sizes multiples of its blocks
    (9, 1, False, 13, 7),    # ... and not
    (7, 1, False, 9, 10),
    (3, 1, True, 5, 7),      # upsampling at the low resolution
    (3, 1, True, 1 + 2, 2),
    (3, 2, False, 9, 12),    # plain path
    (3, 1, False, 6, 5),
])
def test_reflection_conv_equals_padding_then_convolution(kernel_size, strides, upsample, height, width):
    rng = np.random.default_rng(kernel_size + height)
    images = rng.normal(size=(2, height, width, 5)).astype(np.float32)
    layer = transformer.ReflectionConv2D(6, kernel_size, strides, upsample)
    layer.build(images.shape)
    kernel = rng.normal(size=layer.kernel.shape).astype(np.float32)
    bias = rng.normal(size=6).astype(np.float32)
    layer.set_weights([kernel, bias])
    expected = _reference_conv(images, kernel, bias, strides, upsample)
    assert layer.compute_output_shape(images.shape) == expected.shape
    np.testing.assert_allclose(layer(images).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_reflection_conv_gradients_equal_the_reference():
    rng = np.random.default_rng(3)
    images = tf.constant(rng.normal(size=(1, 12, 8, 3)).astype(np.float32))
    for upsample, kernel_size in ((False, 9), (True, 3)):
        layer = transformer.ReflectionConv2D(4, kernel_size, upsample=upsample)
        layer.build(images.shape)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(images)
            fast = tf.reduce_sum(tf.sin(layer(images)))
            if upsample:
                upsampled = tf.repeat(tf.repeat(images, 2, axis=1), 2, axis=2)
            else:
                upsampled = images
            padding = kernel_size // 2
            padded = tf.pad(upsampled, [[0, 0], [padding, padding], [padding, padding], [0, 0]], "REFLECT")
            slow = tf.reduce_sum(tf.sin(tf.nn.conv2d(padded, layer.kernel, 1, "VALID") + layer.bias))
        for fast_grad, slow_grad in zip(tape.gradient(fast, [images, layer.kernel]),
                                        tape.gradient(slow, [images, layer.kernel])):
            np.testing.assert_allclose(fast_grad.numpy(), slow_grad.numpy(), rtol=1e-3, atol=1e-3)


def test_pad_to_multiple_then_crop_restores_the_input():
    images = _images(1, 6, 9)
    padded = transformer.PadToMultiple(4)(images).numpy()
    assert padded.shape == (1, 8, 12, 3)
    np.testing.assert_array_equal(padded, np.pad(images, [(0, 0), (0, 2), (0, 3), (0, 0)], mode="reflect"))
    np.testing.assert_array_equal(transformer.CropToReference()([padded, images]).numpy(), images)


def test_instance_normalization_matches_numpy():
    features = np.random.default_rng(2).normal(3.0, 5.0, (2, 6, 5, 4)).astype(np.float32)
    layer = transformer.InstanceNormalization(epsilon=1e-5)
    layer.build(features.shape)
    layer.gamma.assign([1.0, 2.0, 0.5, -1.0])
    layer.beta.assign([0.0, 1.0, -1.0, 3.0])
    mean = features.mean(axis=(1, 2), keepdims=True)
    variance = features.var(axis=(1, 2), keepdims=True)
    expected = (features - mean) / np.sqrt(variance + 1e-5) * [1.0, 2.0, 0.5, -1.0] + [0.0, 1.0, -1.0, 3.0]
    np.testing.assert_allclose(layer(features).numpy(), expected, rtol=1e-4, atol=1e-4)


def _reference_network(model, images, num_residual_blocks):
    """The same network computed the plain way from the model's weights: NumPy upsampling and reflection
    padding, tf.nn.conv2d, and instance normalisation from NumPy moments."""

    def conv(x, name, strides=1, upsample=False):
        kernel, bias = model.get_layer(f"{name}_conv").get_weights()
        return _reference_conv(x, kernel, bias, strides, upsample)

    def norm(x, name, relu=True):
        gamma, beta = model.get_layer(f"{name}_norm").get_weights()
        x = (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)
        x = x * gamma + beta
        return np.maximum(x, 0) if relu else x

    height, width = images.shape[1:3]
    x = images / 127.5 - 1
    x = np.pad(x, [(0, 0), (0, -height % 4), (0, -width % 4), (0, 0)], mode="reflect")
    x = norm(conv(x, "down1"), "down1")
    x = norm(conv(x, "down2", strides=2), "down2")
    x = norm(conv(x, "down3", strides=2), "down3")
    for index in range(1, num_residual_blocks + 1):
        y = norm(conv(x, f"res{index}_a"), f"res{index}_a")
        x = x + norm(conv(y, f"res{index}_b"), f"res{index}_b", relu=False)
    x = norm(conv(x, "up1", upsample=True), "up1")
    x = norm(conv(x, "up2", upsample=True), "up2")
    x = 127.5 * (np.tanh(conv(x, "output")) + 1)
    return x[:, :height, :width]


@pytest.mark.parametrize("height, width", [(67, 101), (8, 12), (36, 20)])
def test_network_equals_the_plain_computation_of_johnsons_architecture(height, width):
    keras.utils.set_random_seed(4)
    model = transformer.build_transformer(width_multiplier=0.25, num_residual_blocks=2)
    rng = np.random.default_rng(5)
    # Random norm scales and offsets, so that every weight matters.
    for layer in model.layers:
        if isinstance(layer, transformer.InstanceNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
    images = _images(2, height, width, seed=6)
    expected = _reference_network(model, images, num_residual_blocks=2)
    np.testing.assert_allclose(model(images).numpy(), expected, atol=0.05)


def test_instance_normalization_of_the_phase_form_pools_the_phases():
    features = np.random.default_rng(7).normal(3.0, 5.0, (2, 4, 3, 4 * 5)).astype(np.float32)
    layer = transformer.InstanceNormalization(phases=4)
    layer.build(features.shape)
    assert layer.gamma.shape == (5,)
    by_phase = features.reshape(2, 4, 3, 4, 5)
    mean = by_phase.mean(axis=(1, 2, 3), keepdims=True)
    expected = (by_phase - mean) / np.sqrt(by_phase.var(axis=(1, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(layer(features).numpy(), expected.reshape(features.shape), rtol=1e-4, atol=1e-4)
