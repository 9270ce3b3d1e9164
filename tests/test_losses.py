"""Losses against independent NumPy computations."""

import numpy as np
import pytest
import tensorflow as tf

from tf_nst import losses


def _features(seed, shape=(2, 5, 7, 4)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_gram_matrix_matches_numpy_einsum():
    features = _features(0)
    expected = np.einsum("bhwc,bhwd->bcd", features, features) / (5 * 7)
    np.testing.assert_allclose(losses.gram_matrix(features).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_gram_matrix_is_independent_of_image_size_for_a_repeated_pattern():
    tile = _features(1, (1, 4, 4, 3))
    large = np.tile(tile, (1, 3, 2, 1))
    np.testing.assert_allclose(losses.gram_matrix(large).numpy(), losses.gram_matrix(tile).numpy(),
                               rtol=1e-5)


def test_losses_are_zero_on_identical_inputs():
    features = _features(2)
    assert losses.style_layer_loss(features, losses.gram_matrix(features)).numpy() == pytest.approx(0, abs=1e-7)
    assert losses.content_layer_loss(features, features).numpy() == 0
    flat = np.full((1, 6, 6, 3), 77.0, np.float32)
    assert losses.total_variation_loss(flat).numpy() == 0
    total, terms = losses.combined_loss(
        flat, {"a": features, "b": features}, {"a": losses.gram_matrix(features)}, {"b": features},
        losses.LossWeights(content=3.0, style=7.0, tv=5.0))
    assert total.numpy() == pytest.approx(0, abs=1e-6)
    assert set(terms) == {"content", "style", "tv"}


def test_total_variation_matches_numpy():
    images = np.random.default_rng(3).uniform(0, 255, size=(2, 6, 9, 3)).astype(np.float32)
    scaled = images / 255.0
    expected = (np.mean((scaled[:, 1:] - scaled[:, :-1]) ** 2)
                + np.mean((scaled[:, :, 1:] - scaled[:, :, :-1]) ** 2))
    assert losses.total_variation_loss(images).numpy() == pytest.approx(expected, rel=1e-5)


def test_style_and_content_losses_match_numpy_relative_errors():
    features, target = _features(4), _features(5)
    gram = np.einsum("bhwc,bhwd->bcd", features, features) / 35
    target_gram = np.einsum("bhwc,bhwd->bcd", target, target) / 35
    expected_style = np.mean(np.sum((gram - target_gram) ** 2, axis=(1, 2))
                             / np.sum(target_gram ** 2, axis=(1, 2)))
    expected_content = np.mean(np.sum((features - target) ** 2, axis=(1, 2, 3))
                               / np.sum(target ** 2, axis=(1, 2, 3)))
    assert losses.style_layer_loss(features, target_gram).numpy() == pytest.approx(expected_style, rel=1e-4)
    assert losses.content_layer_loss(features, target).numpy() == pytest.approx(expected_content, rel=1e-4)


def test_style_loss_does_not_depend_on_activation_scale():
    features, target = _features(6), _features(7)
    base = losses.style_layer_loss(features, losses.gram_matrix(target)).numpy()
    scaled = losses.style_layer_loss(100 * features, losses.gram_matrix(100 * target)).numpy()
    assert scaled == pytest.approx(base, rel=1e-4)


def test_combined_loss_total_is_the_sum_of_weighted_terms_and_layer_weights_apply():
    images = np.random.default_rng(8).uniform(0, 255, size=(1, 6, 7, 3)).astype(np.float32)
    features = {"a": _features(9, (1, 5, 7, 4)), "b": _features(10, (1, 5, 7, 4))}
    targets = {"a": _features(11, (1, 5, 7, 4)), "b": _features(12, (1, 5, 7, 4))}
    grams = {name: losses.gram_matrix(value) for name, value in targets.items()}
    weights = losses.LossWeights(content=2.0, style=3.0, tv=4.0, style_layers={"a": 1.0, "b": 0.0})
    total, terms = losses.combined_loss(images, features, grams, {"a": targets["a"]}, weights)
    assert total.numpy() == pytest.approx(sum(float(v) for v in terms.values()), rel=1e-6)
    only_a = 3.0 * losses.style_layer_loss(features["a"], grams["a"]).numpy()
    assert terms["style"].numpy() == pytest.approx(only_a, rel=1e-5)
    assert terms["content"].numpy() == pytest.approx(
        2.0 * losses.content_layer_loss(features["a"], targets["a"]).numpy(), rel=1e-6)
    assert terms["tv"].numpy() == pytest.approx(4.0 * losses.total_variation_loss(images).numpy(), rel=1e-6)


def test_losses_are_float32_for_bfloat16_features():
    features = tf.cast(_features(13), tf.bfloat16)
    assert losses.gram_matrix(features).dtype == tf.float32
    assert losses.content_layer_loss(features, features).dtype == tf.float32
