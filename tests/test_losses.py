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


def test_gram_matrix_gradient_matches_numpy_for_any_upstream():
    """d/dF sum(U * G) = (F U + F U^T) / (H W) for any U: guards the hand-written gradient against 2 F U / (H W),
    which is right only for a symmetric U (the style loss's)."""
    features = _features(3)
    upstream = np.random.default_rng(4).normal(size=(2, 4, 4)).astype(np.float32)
    expected = (np.einsum("bhwc,bcd->bhwd", features, upstream)
                + np.einsum("bhwc,bdc->bhwd", features, upstream)) / (5 * 7)

    @tf.function
    def gradient(values):
        with tf.GradientTape() as tape:
            tape.watch(values)
            total = tf.reduce_sum(upstream * losses.gram_matrix(values))
        return tape.gradient(total, values)

    values = tf.constant(features)
    np.testing.assert_allclose(gradient(values).numpy(), expected, rtol=1e-5, atol=1e-5)
    with tf.GradientTape() as tape:  # eagerly, and from float16 features
        half = tf.constant(features, tf.float16)
        tape.watch(half)
        total = tf.reduce_sum(upstream * losses.gram_matrix(half))
    np.testing.assert_allclose(tape.gradient(total, half).numpy(), expected, rtol=1e-2, atol=1e-2)


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


def _numpy_masked_gram(features, mask):
    weights = np.broadcast_to(mask, features.shape[:3]).astype(np.float64)
    moments = np.einsum("bhw,bhwc,bhwd->bcd", weights, features.astype(np.float64), features.astype(np.float64))
    return moments / weights.sum(axis=(1, 2))[:, None, None]


def test_masked_gram_matrix_matches_numpy_for_soft_masks():
    features = _features(14)
    rng = np.random.default_rng(15)
    shared, per_image = rng.uniform(size=(5, 7)), rng.uniform(size=(2, 5, 7))
    for mask in (shared, per_image):
        np.testing.assert_allclose(losses.masked_gram_matrix(features, mask.astype(np.float32)).numpy(),
                                   _numpy_masked_gram(features, mask), rtol=1e-5, atol=1e-6)


def test_masked_gram_matrix_gradient_matches_numpy():
    """d sum(G * U) / dF = m F (U + U^T) / sum(m), per image, for a shared and a per-image mask."""
    features = _features(23)
    rng = np.random.default_rng(24)
    upstream = rng.normal(size=(2, 4, 4))
    for mask in (rng.uniform(size=(5, 7)), rng.uniform(size=(2, 5, 7))):
        variable = tf.constant(features)
        with tf.GradientTape() as tape:
            tape.watch(variable)
            total = tf.reduce_sum(losses.masked_gram_matrix(variable, mask.astype(np.float32)) * upstream)
        weights = np.broadcast_to(mask, features.shape[:3])
        expected = (weights[..., None] * np.einsum("bhwc,bcd->bhwd", features.astype(np.float64),
                                                   upstream + upstream.transpose(0, 2, 1))
                    / weights.sum(axis=(1, 2))[:, None, None, None])
        np.testing.assert_allclose(tape.gradient(total, variable).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_masked_gram_matrix_with_ones_is_the_gram_matrix_and_with_zeros_is_zero():
    features = _features(16)
    np.testing.assert_allclose(losses.masked_gram_matrix(features, np.ones((5, 7), np.float32)).numpy(),
                               losses.gram_matrix(features).numpy(), rtol=1e-6, atol=1e-7)
    features = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(features)
        gram = losses.masked_gram_matrix(features, tf.zeros((5, 7)))
        total = tf.reduce_sum(gram)
    assert np.all(gram.numpy() == 0)
    np.testing.assert_array_equal(tape.gradient(total, features).numpy(), 0)  # no NaN from 0 / 0


def test_masked_gram_matrix_ignores_the_unmasked_region():
    features = _features(17, (1, 6, 8, 3))
    mask = np.zeros((6, 8), np.float32)
    mask[:, :4] = 1
    changed = features.copy()
    changed[:, :, 4:] = 100.0
    np.testing.assert_allclose(losses.masked_gram_matrix(changed, mask).numpy(),
                               losses.gram_matrix(features[:, :, :4]).numpy(), rtol=1e-5, atol=1e-6)


def test_guided_style_loss_is_the_weighted_sum_of_masked_relative_errors():
    features = _features(18, (1, 5, 7, 4))
    targets = [losses.gram_matrix(_features(seed, (1, 5, 7, 4))) for seed in (19, 20)]
    masks = [np.random.default_rng(seed).uniform(size=(5, 7)).astype(np.float32) for seed in (21, 22)]
    expected = 0
    for mask, target, weight in zip(masks, targets, (0.25, 0.75)):
        gram = _numpy_masked_gram(features, mask)
        expected += weight * np.sum((gram - target.numpy()) ** 2) / np.sum(target.numpy() ** 2)
    loss = losses.guided_style_layer_loss(features, masks, targets, (0.25, 0.75)).numpy()
    assert loss == pytest.approx(expected, rel=1e-4)


def test_combined_loss_with_one_all_ones_guide_equals_the_unguided_loss():
    images = np.random.default_rng(23).uniform(0, 255, size=(1, 6, 7, 3)).astype(np.float32)
    features = {"a": _features(24, (1, 5, 7, 4)), "b": _features(25, (1, 3, 4, 4))}
    grams = {name: losses.gram_matrix(_features(26, value.shape)) for name, value in features.items()}
    guided = losses.GuidedStyleTargets(
        grams={name: [gram] for name, gram in grams.items()},
        masks={name: [np.ones(value.shape[1:3], np.float32)] for name, value in features.items()},
        blend_weights=(1.0,))
    weights = losses.LossWeights(content=2.0, style=3.0, tv=4.0, style_layers={"a": 1.0, "b": 2.0})
    plain_total, plain = losses.combined_loss(images, features, grams, {"a": features["a"]}, weights)
    guided_total, terms = losses.combined_loss(images, features, guided, {"a": features["a"]}, weights)
    assert set(terms) == {"content", "style", "tv"}
    assert terms["style"].numpy() == pytest.approx(plain["style"].numpy(), rel=1e-5)
    assert guided_total.numpy() == pytest.approx(plain_total.numpy(), rel=1e-5)


def _numpy_moments(features, epsilon=losses.MOMENT_EPSILON):
    features = features.astype(np.float64)
    return features.mean(axis=(1, 2)), np.sqrt(features.var(axis=(1, 2)) + epsilon)


def test_moment_layer_loss_matches_numpy_per_image_targets():
    features, style = _features(20, (2, 5, 7, 4)), 3 * _features(21, (2, 6, 3, 4)) + 1
    mean, std = _numpy_moments(features)
    target_mean, target_std = _numpy_moments(style)
    errors = ((mean - target_mean) ** 2).sum(1) + ((std - target_std) ** 2).sum(1)
    expected = np.mean(errors / ((target_mean ** 2).sum(1) + (target_std ** 2).sum(1)))
    targets = losses.moment_targets({"a": style}, ["a"]).moments["a"]
    assert losses.moment_layer_loss(features, *targets).numpy() == pytest.approx(expected, rel=1e-5)
    assert losses.moment_layer_loss(style, *targets).numpy() == pytest.approx(0, abs=1e-7)


def test_moment_layer_loss_is_zero_for_a_shuffle_and_does_not_depend_on_scale():
    style = _features(22, (1, 6, 6, 3))
    shuffled = np.random.default_rng(0).permutation(style.reshape(36, 3)).reshape(1, 6, 6, 3)
    targets = losses.feature_moments(style)
    assert losses.moment_layer_loss(shuffled, *targets).numpy() == pytest.approx(0, abs=1e-6)
    other = _features(23, (1, 6, 6, 3))
    small = losses.moment_layer_loss(other, *targets).numpy()
    large = losses.moment_layer_loss(50 * other, *losses.feature_moments(50 * style)).numpy()
    assert large == pytest.approx(small, rel=1e-3)


def test_combined_loss_with_moment_targets_weighs_mean_std_layers_and_relative_content():
    features = {"a": _features(24), "b": _features(25, (2, 3, 4, 8))}
    styles = {"a": _features(26) + 2, "b": 2 * _features(27, (2, 3, 4, 8))}
    target = _features(28, (2, 3, 4, 8))
    targets = losses.moment_targets(styles, ["a", "b"])
    weights = losses.LossWeights(content=2.0, style=10.0, tv=0.0, style_layers={"a": 1.0, "b": 3.0})
    total, terms = losses.combined_loss(np.zeros((2, 8, 8, 3), np.float32), features, targets, {"b": target},
                                        weights)
    style_a = losses.moment_layer_loss(features["a"], *targets.moments["a"]).numpy()
    style_b = losses.moment_layer_loss(features["b"], *targets.moments["b"]).numpy()
    content = np.mean(((features["b"] - target) ** 2).sum((1, 2, 3)) / (target ** 2).sum((1, 2, 3)))
    assert terms["style"].numpy() == pytest.approx(10.0 * (style_a + 3 * style_b) / 4, rel=1e-5)
    assert terms["content"].numpy() == pytest.approx(2.0 * content, rel=1e-5)
    assert total.numpy() == pytest.approx(terms["style"].numpy() + terms["content"].numpy(), rel=1e-6)


def test_style_targets_are_the_gram_matrices_of_the_style_layers():
    features = {"a": _features(3), "b": _features(4, (2, 3, 3, 6)), "unused": _features(5)}
    targets = losses.style_targets(features, ("a", "b"))
    assert set(targets) == {"a", "b"}
    for name in ("a", "b"):
        np.testing.assert_allclose(targets[name].numpy(), losses.gram_matrix(features[name]).numpy())


def _numpy_relative_errors(value, target):
    axes = tuple(range(1, value.ndim))
    return np.sum((value - target) ** 2, axis=axes) / (np.sum(target ** 2, axis=axes) + 1e-8)


def _numpy_gram(features):
    return np.einsum("bhwc,bhwd->bcd", features, features) / (features.shape[1] * features.shape[2])


@pytest.mark.parametrize("loss_class", [losses.StyleLoss, losses.PerceptualLoss])
def test_keras_losses_are_the_weighted_layer_mean_of_numpy_relative_errors(loss_class):
    """The Keras losses against NumPy on the same (seeded, random) VGG16 features.

    Guards what mutation testing found unchecked: the layer weights (ignored, or multiplied by their sum),
    the extractor's weights, the reduction over the batch, the dtype, the default name and the config's
    layer_weights.
    """
    import keras  # pylint: disable=import-outside-toplevel

    from tf_nst import vgg  # pylint: disable=import-outside-toplevel

    layers, layer_weights = ("block1_conv1", "block2_conv1"), (3.0, 1.0)
    rng = np.random.default_rng(6)
    y_true, y_pred = (tf.constant(rng.uniform(0, 255, (2, 16, 16, 3)), tf.float32) for _ in range(2))
    loss = loss_class(layers=layers, layer_weights=layer_weights, backbone="vgg16", weights="none", dtype="float64")
    keras.utils.set_random_seed(0)
    per_image = loss.call(y_true, y_pred).numpy()  # builds the loss's extractor
    keras.utils.set_random_seed(0)
    extractor = vgg.build_extractor(vgg.ExtractorConfig(backbone="vgg16", weights="none", style_layers=layers,
                                                        content_layers=layers))
    true, pred = extractor(y_true), extractor(y_pred)
    as_compared = _numpy_gram if loss_class is losses.StyleLoss else np.asarray
    errors = [_numpy_relative_errors(as_compared(pred[name].numpy()), as_compared(true[name].numpy()))
              for name in layers]
    expected = (3.0 * errors[0] + errors[1]) / 4.0
    np.testing.assert_allclose(per_image, expected, rtol=1e-4)
    value = loss(y_true, y_pred)
    assert value.dtype == tf.float64 and float(value) == pytest.approx(expected.mean(), rel=1e-4)  # batch mean
    assert loss.get_config()["layer_weights"] == [3.0, 1.0]
    default = loss_class(weights="none")
    assert default.get_config()["layer_weights"] is None
    assert default.name == {losses.StyleLoss: "style_loss", losses.PerceptualLoss: "perceptual_loss"}[loss_class]
