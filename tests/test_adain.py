"""The arbitrary-style network: AdaIN against NumPy, the decoder's shapes, one `.keras` file, the final clip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_nst import adain
from tf_nst import vgg

RNG = np.random.default_rng(0)


def _numpy_adain(content, style, epsilon=adain.EPSILON):
    """AdaIN per image and channel, written out in float64."""
    content, style = content.astype(np.float64), style.astype(np.float64)
    content_mean = content.mean(axis=(1, 2), keepdims=True)
    content_std = np.sqrt(content.var(axis=(1, 2), keepdims=True) + epsilon)
    style_mean = style.mean(axis=(1, 2), keepdims=True)
    style_std = np.sqrt(style.var(axis=(1, 2), keepdims=True) + epsilon)
    return (content - content_mean) / content_std * style_std + style_mean


def _features(batch, height, width, channels=6, scale=3.0, shift=1.0):
    return (scale * RNG.standard_normal((batch, height, width, channels)) + shift).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    """A small network: random VGG16 encoder, quarter-width decoder."""
    return adain.build_model(vgg.ExtractorConfig(backbone="vgg16", weights="none"), width_multiplier=0.25)


def test_adain_gives_the_content_the_styles_channel_means_and_stds():
    content, style = _features(2, 5, 7), _features(2, 9, 4, scale=0.5, shift=-2.0)
    result = adain.adaptive_instance_norm(content, style).numpy()
    np.testing.assert_allclose(result, _numpy_adain(content, style), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.mean(axis=(1, 2)), style.mean(axis=(1, 2)), atol=1e-4)
    np.testing.assert_allclose(np.sqrt(result.var(axis=(1, 2)) + adain.EPSILON),
                               np.sqrt(style.var(axis=(1, 2)) + adain.EPSILON), rtol=1e-4)


def test_epsilon_is_inside_the_square_root():
    content, style = np.ones((1, 3, 3, 2), np.float32), _features(1, 3, 3, channels=2)
    content[0, 0, 0] = 2.0  # std 0.314 per channel: eps inside or outside the root differ at 1e-5 relative
    mean, std = adain.losses.feature_moments(content, epsilon=0.1)
    np.testing.assert_allclose(std.numpy().ravel(), np.sqrt(content.var(axis=(1, 2)) + 0.1).ravel(), rtol=1e-6)
    np.testing.assert_allclose(mean.numpy().ravel(), content.mean(axis=(1, 2)).ravel(), rtol=1e-6)
    np.testing.assert_allclose(adain.adaptive_instance_norm(content, style, epsilon=0.1).numpy(),
                               _numpy_adain(content, style, epsilon=0.1), rtol=1e-5, atol=1e-5)


def test_float16_features_are_normalised_in_float32():
    content, style = _features(1, 4, 4) * 100, _features(1, 4, 4)
    result = adain.adaptive_instance_norm(tf.constant(content, tf.float16), tf.constant(style, tf.float16))
    assert result.dtype == tf.float32


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_alpha_interpolates_between_the_content_and_adain(alpha):
    content, style = _features(2, 4, 6), _features(1, 5, 5, shift=4.0)
    result = adain.target_features(content, [style], alpha=alpha).numpy()
    expected = alpha * _numpy_adain(content, style) + (1 - alpha) * content
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4)


def test_alpha_per_image():
    content, style = _features(2, 4, 4), _features(1, 4, 4, shift=4.0)
    result = adain.target_features(content, [style], alpha=tf.constant([0.0, 1.0])).numpy()
    np.testing.assert_allclose(result[0], content[0], atol=1e-6)
    np.testing.assert_allclose(result[1], _numpy_adain(content, style)[1], rtol=1e-4, atol=1e-4)


def test_several_styles_blend_by_normalised_weights():
    content = _features(1, 6, 5)
    styles = [_features(1, 4, 4, shift=-3.0), _features(1, 7, 3, scale=0.2, shift=5.0)]
    result = adain.target_features(content, styles, blend_weights=[3.0, 1.0], alpha=0.5).numpy()
    blended = 0.75 * _numpy_adain(content, styles[0]) + 0.25 * _numpy_adain(content, styles[1])
    np.testing.assert_allclose(result, 0.5 * blended + 0.5 * content, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("weights", [[1.0], [0.0, 0.0], [1.0, -1.0]])
def test_bad_blend_weights_are_refused(weights):
    with pytest.raises(ValueError, match="weight"):
        adain.target_features(_features(1, 4, 4), [_features(1, 4, 4)] * 2, blend_weights=weights)


@pytest.mark.parametrize("backbone, convolutions", [("vgg19", 9), ("vgg16", 8)])
def test_the_decoder_mirrors_the_encoder_up_to_relu4_1(backbone, convolutions):
    decoder = adain.build_decoder(backbone, width_multiplier=0.25)
    convs = [layer for layer in decoder.layers if isinstance(layer, adain.transformer.ReflectionConv2D)]
    assert len(convs) == convolutions
    assert [conv.upsample for conv in convs].count(True) == 3  # one per VGG pooling
    assert not any(isinstance(layer, adain.transformer.InstanceNormalization) for layer in decoder.layers)
    assert decoder(np.zeros((1, 3, 5, 512), np.float32)).shape == (1, 24, 40, 3)


@pytest.mark.parametrize("width_multiplier, widest", [(1.0, 256), (0.5, 128), (0.25, 64)])
def test_width_multiplier_slims_the_hidden_layers(width_multiplier, widest):
    decoder = adain.build_decoder("vgg16", width_multiplier)
    assert decoder.get_layer("block4_conv1").filters == widest
    assert decoder.get_layer("block1_conv2").filters == round(64 * width_multiplier)
    assert decoder.get_layer("block1_conv1").filters == 3


@pytest.mark.parametrize("height, width", [(16, 23), (17, 30), (33, 19), (32, 24)])
def test_output_has_the_contents_shape_at_any_size(model, height, width):
    content = RNG.uniform(0, 255, (2, height, width, 3)).astype(np.float32)
    style = RNG.uniform(0, 255, (2, 8, 11, 3)).astype(np.float32)
    output = model({"content": content, "style": style, "alpha": np.ones(2, np.float32)})
    assert output.shape == (2, height, width, 3) and output.dtype == tf.float32


def _with_bright_output(model):
    """Scales the decoder's last bias so that its linear output leaves [0, 255] (a random decoder's does not)."""
    last = model.get_layer("decoder").get_layer("block1_conv1")
    last.bias.assign([-300.0, 128.0, 600.0])
    return model


def test_the_output_is_clipped_only_at_the_end(model):
    _with_bright_output(model)
    content = RNG.uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)
    style = RNG.uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    target = adain.target_features(encoder(content)[adain.ENCODER_LAYER], [encoder(style)[adain.ENCODER_LAYER]])
    linear = decoder(target).numpy()
    assert linear.min() < -100 and linear.max() > 355  # the decoder itself does not clip
    output = model({"content": content, "style": style, "alpha": np.ones(1, np.float32)}).numpy()
    np.testing.assert_allclose(output, np.clip(linear, 0, 255), atol=1e-3)
    np.testing.assert_array_equal(adain.stylize(model, content, [style]).numpy(), output)


def test_the_whole_model_saves_to_one_file_and_loads_bit_identical(model, tmp_path):
    path = str(tmp_path / "arbitrary.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    inputs = {"content": RNG.uniform(0, 255, (2, 21, 18, 3)).astype(np.float32),
              "style": RNG.uniform(0, 255, (2, 16, 24, 3)).astype(np.float32),
              "alpha": np.array([1.0, 0.4], np.float32)}
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())
    assert not loaded.get_layer("encoder").trainable
    assert len(loaded.trainable_weights) == len(model.get_layer("decoder").trainable_weights)


def test_stylize_blends_styles_like_the_target_features(model):
    content = RNG.uniform(0, 255, (1, 16, 24, 3)).astype(np.float32)
    styles = [RNG.uniform(0, 255, (1, 16, 16, 3)).astype(np.float32),
              RNG.uniform(0, 100, (1, 24, 16, 3)).astype(np.float32)]
    one = adain.stylize(model, content, styles[:1], alpha=0.7).numpy()
    expected = model({"content": content, "style": styles[0], "alpha": np.array([0.7], np.float32)}).numpy()
    np.testing.assert_allclose(one, expected, atol=1e-3)
    both = adain.stylize(model, content, styles, blend_weights=[1.0, 0.0]).numpy()
    np.testing.assert_allclose(both, adain.stylize(model, content, styles[:1]).numpy(), atol=1e-3)
