"""tf_nst.RandomStyle (tf_nst/augment.py): style augmentation in tf.data and in Keras models, saved with them."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tf_nst
from tf_nst import adain, transformer
from conftest import tiny_adain_model

STYLE_SIZE = 32


@pytest.fixture(scope="module")
def model():
    return tiny_adain_model()


@pytest.fixture(scope="module")
def styles():
    """Three styles of different colours and textures, already at STYLE_SIZE (their statistics are taken as
    they are)."""
    rng = np.random.default_rng(1)
    tints = ([255, 40, 40], [40, 200, 255], [250, 250, 120])
    return [np.clip(rng.normal(tint, 20.0 + 40.0 * i, (STYLE_SIZE, 48, 3)), 0, 255).astype(np.uint8)
            for i, tint in enumerate(tints)]


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)


def random_style(model, styles, seed=3, alpha_range=(0.2, 1.0)):
    return tf_nst.RandomStyle(model, styles, alpha_range=alpha_range, seed=seed, style_size=STYLE_SIZE)


def expected(model, styles, images, indices, alphas):
    """Each image alone through adain.stylize_with_statistics, with its style's statistics recomputed here."""
    bank = [adain.style_statistics(model, style[np.newaxis].astype(np.float32)) for style in styles]
    return np.concatenate([adain.stylize_with_statistics(model, images[i:i + 1].astype(np.float32),
                                                         [bank[index]], alpha=float(alpha)).numpy()
                           for i, (index, alpha) in enumerate(zip(indices, alphas))])


def assert_close_uint8(actual, wanted):
    assert actual.dtype == np.uint8 and actual.shape == wanted.shape
    assert np.abs(actual.astype(np.int32) - np.round(wanted).astype(np.int32)).max() <= 1


def test_each_image_is_adain_with_its_drawn_style_and_alpha(model, styles, images):
    """Guards: one style for the whole batch; the alphas ignored or not per image; the bank's rows mixed up."""
    indices, alphas = (np.asarray(v) for v in random_style(model, styles).sample(len(images)))
    assert len(set(indices.tolist())) >= 2 and np.ptp(alphas) > 0.1  # the draws differ, so the check can fail
    output = np.asarray(random_style(model, styles)(images))
    assert_close_uint8(output, expected(model, styles, images, indices, alphas))
    as_float = np.asarray(random_style(model, styles)(images.astype(np.float32)))
    assert as_float.dtype == np.float32 and as_float.shape == images.shape
    np.testing.assert_allclose(as_float, expected(model, styles, images, indices, alphas), atol=0.05)


def test_draws_are_uniform_over_the_bank_and_the_alpha_range(model, styles):
    indices, alphas = (np.asarray(v) for v in random_style(model, styles, alpha_range=(0.3, 0.7)).sample(6000))
    np.testing.assert_allclose(np.bincount(indices, minlength=3) / 6000, [1 / 3] * 3, atol=0.03)
    assert 0.3 <= alphas.min() < 0.31 and 0.69 < alphas.max() <= 0.7
    assert abs(alphas.mean() - 0.5) < 0.01


def test_the_same_seed_gives_the_same_output_and_another_seed_another(model, styles, images):
    first = np.asarray(random_style(model, styles, seed=5)(images))
    np.testing.assert_array_equal(first, np.asarray(random_style(model, styles, seed=5)(images)))
    assert not np.array_equal(first, np.asarray(random_style(model, styles, seed=6)(images)))


def test_identity_when_not_training_and_at_alpha_zero(model, styles, images):
    for batch in (images, images.astype(np.float32), images[0]):
        layer = random_style(model, styles)
        np.testing.assert_array_equal(np.asarray(layer(batch, training=False)), batch)
        np.testing.assert_array_equal(np.asarray(random_style(model, styles, alpha_range=(0, 0))(batch)), batch)
        assert not np.array_equal(np.asarray(layer(batch)), batch)  # training: it restyles


def test_dataset_map_batched_and_unbatched_matches_eager_calls(model, styles, images):
    """Guards: the layer fails in graph mode, or draws differently from its eager calls."""
    batched = np.concatenate(list(tf.data.Dataset.from_tensor_slices(images).batch(2)
                                  .map(random_style(model, styles)).as_numpy_iterator()))
    eager = random_style(model, styles)
    assert_close_uint8(batched, np.concatenate([np.asarray(eager(images[:2])), np.asarray(eager(images[2:]))]))
    single = np.stack(list(tf.data.Dataset.from_tensor_slices(images).map(random_style(model, styles))
                           .as_numpy_iterator()))
    eager = random_style(model, styles)
    assert_close_uint8(single, np.stack([np.asarray(eager(image)) for image in images]))
    assert single.shape == images.shape and not np.array_equal(single, images)


def test_functional_model_restyles_in_training_only_and_trains_none_of_the_stylizer(model, styles, images):
    """Guards: the stylizer's weights tracked as the layer's (a model that contains it would train them)."""
    inputs = keras.Input((None, None, 3), dtype="uint8")
    styled = random_style(model, styles)(inputs)
    outputs = keras.layers.Conv2D(2, 1)(keras.layers.Rescaling(1 / 255)(styled))
    pipeline = keras.Model(inputs, [styled, outputs])
    assert len(pipeline.trainable_weights) == 2  # the Conv2D's kernel and bias
    assert [weight.shape for weight in pipeline.non_trainable_weights] == [(3, adain.STATISTICS_SIZE)]  # the bank
    np.testing.assert_array_equal(pipeline.predict(images, verbose=0)[0], images)
    assert_close_uint8(np.asarray(pipeline(images, training=True)[0]),
                       np.asarray(random_style(model, styles)(images)).astype(np.float32))


def test_bad_arguments_are_refused_in_one_line(model, styles):
    with pytest.raises(ValueError, match=r"alpha_range .*0 <= low <= high <= 1; received \(0.5, 1.5\)"):
        random_style(model, styles, alpha_range=(0.5, 1.5))
    with pytest.raises(ValueError, match="arbitrary-style network"):
        tf_nst.RandomStyle(transformer.build_transformer(width_multiplier=0.25), styles)
    with pytest.raises(ValueError, match="either styles or statistics"):
        tf_nst.RandomStyle(model, styles, statistics=np.ones((1, adain.STATISTICS_SIZE)))
    with pytest.raises(ValueError, match=r"statistics must be \[num_styles, 1920\] .*received shape \(1, 960\)"):
        tf_nst.RandomStyle(model, statistics=np.ones((1, 960)))


def augmenting_model(layer):
    """A functional model whose outputs are the restyled images and a convolution of them."""
    inputs = keras.Input((None, None, 3), dtype="uint8")
    styled = layer(inputs)
    return keras.Model(inputs, [styled, keras.layers.Conv2D(2, 1)(keras.layers.Rescaling(1 / 255)(styled))])


def test_a_model_containing_it_saves_and_loads(model, styles, images, tmp_path):
    """Guards: the network's weights, the bank, the seed or alpha_range not saved, or not loaded back; the
    network saved twice (as a child too: Keras's saving walks attributes)."""
    layer = random_style(model, styles, seed=7, alpha_range=(0.3, 0.9))
    pipeline = augmenting_model(layer)
    pipeline.save(str(tmp_path / "augmented.keras"))
    loaded = keras.models.load_model(str(tmp_path / "augmented.keras"))
    network_bytes = sum(weight.numpy().nbytes for weight in layer.get_network().weights)
    assert os.path.getsize(tmp_path / "augmented.keras") < 1.2 * network_bytes  # its weights are saved once
    loaded_layer = loaded.get_layer(layer.name)
    assert isinstance(loaded_layer, tf_nst.RandomStyle) and loaded_layer.seed == 7
    assert loaded_layer.alpha_range == (0.3, 0.9) and loaded_layer.style_size == STYLE_SIZE
    np.testing.assert_array_equal(loaded_layer.bank, layer.bank)
    assert loaded_layer.get_network() is not layer.get_network()
    for original, restored in zip(layer.get_network().weights, loaded_layer.get_network().weights,
                                  strict=True):
        np.testing.assert_array_equal(restored.numpy(), original.numpy(), err_msg=original.path)
    assert len(loaded.trainable_weights) == 2 and len(loaded.non_trainable_weights) == 1
    # Same seed, same first call: the same draws through the same network, to the bit.
    original, again = pipeline(images, training=True), loaded(images, training=True)
    assert not np.array_equal(np.asarray(original[0]), images)
    np.testing.assert_array_equal(np.asarray(again[0]), np.asarray(original[0]))
    np.testing.assert_array_equal(np.asarray(again[1]), np.asarray(original[1]))
    np.testing.assert_array_equal(loaded.predict(images, verbose=0)[0], images)  # training=False: the identity


def test_built_from_statistics_it_is_the_layer_built_from_styles(model, styles, images):
    from_styles = random_style(model, styles)
    from_statistics = tf_nst.RandomStyle(model, statistics=from_styles.bank, alpha_range=(0.2, 1.0), seed=3)
    np.testing.assert_array_equal(np.asarray(from_statistics(images)), np.asarray(from_styles(images)))


def test_styles_are_read_from_paths_and_pil_images_and_the_model_from_its_file(model, styles, tmp_path):
    path = str(tmp_path / "style.png")
    Image.fromarray(styles[0]).save(path)
    model.save(str(tmp_path / "adain.keras"))
    from_path = tf_nst.RandomStyle(str(tmp_path / "adain.keras"), path, style_size=STYLE_SIZE).bank
    from_pil = tf_nst.RandomStyle(model, [Image.open(path)], style_size=STYLE_SIZE).bank
    np.testing.assert_allclose(from_path, adain.style_statistics(model, styles[0][np.newaxis].astype(np.float32)),
                               rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(from_path, from_pil)
