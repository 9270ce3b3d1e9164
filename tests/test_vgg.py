"""The feature extractor: layers, shapes, weights sources, pooling."""

import keras
import numpy as np
import pytest

from tf_nst import precision, vgg, weights_file
from tf_nst.errors import UserInputError


def test_exposes_requested_layers_with_vgg_shapes():
    config = vgg.ExtractorConfig(backbone="vgg19", weights="none",
                                 style_layers=("block1_conv1", "block3_conv4"), content_layers=("block5_conv1",))
    features = vgg.build_extractor(config)(np.zeros((2, 64, 96, 3), np.float32))
    assert {name: tuple(value.shape) for name, value in features.items()} == {
        "block1_conv1": (2, 64, 96, 64), "block3_conv4": (2, 16, 24, 256), "block5_conv1": (2, 4, 6, 512)}


def test_stops_at_the_deepest_requested_layer_and_is_frozen():
    config = vgg.ExtractorConfig(backbone="vgg16", weights="none", style_layers=("block1_conv1",),
                                 content_layers=("block2_conv2",))
    model = vgg.build_extractor(config)
    names = [layer.name for layer in model.layers]
    assert "block2_conv2" in names and "block2_pool" not in names and "block3_conv1" not in names
    assert not model.trainable_weights


@pytest.mark.parametrize("fixture", ["vgg16_weights", "vgg16_legacy_weights"])
def test_local_weights_file_loads(request, hed_layers, fixture):
    config = vgg.ExtractorConfig(backbone="vgg16", weights=request.getfixturevalue(fixture))
    model = vgg.build_extractor(config)
    for name, kernel, bias in hed_layers[:10]:  # the layers up to block4_conv2
        if name in {layer.name for layer in model.layers}:
            got_kernel, got_bias = model.get_layer(name).get_weights()
            np.testing.assert_array_equal(got_kernel, kernel)
            np.testing.assert_array_equal(got_bias, bias)


@pytest.mark.parametrize("fixture", ["vgg16_weights", "vgg16_legacy_weights"])
def test_weights_for_the_wrong_backbone_are_refused(request, fixture):
    config = vgg.ExtractorConfig(backbone="vgg19", weights=request.getfixturevalue(fixture))
    with pytest.raises(UserInputError, match="does not fit --backbone=vgg19") as raised:
        vgg.build_extractor(config)
    message = str(raised.value)
    assert "13 conv layers, like vgg16; pass --backbone=vgg16" in message  # the file's backbone, by layer count
    assert "Example error message" not in message and "<Conv2D" not in message  # no Keras internals


def test_conv_layers_are_counted_in_both_weight_layouts(vgg16_weights, vgg16_legacy_weights, tmp_path):
    assert weights_file.count_conv_layers(vgg16_weights) == 13
    assert weights_file.count_conv_layers(vgg16_legacy_weights) == 13
    (tmp_path / "text.h5").write_text("not hdf5")
    assert weights_file.count_conv_layers(str(tmp_path / "text.h5")) is None


def test_avg_pooling_replaces_every_max_pool():
    config = vgg.ExtractorConfig(backbone="vgg16", weights="none", style_layers=("block3_conv1",),
                                 content_layers=("block3_conv1",), pooling="avg")
    model = vgg.build_extractor(config)
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.AveragePooling2D)]
    assert [layer.name for layer in pools] == ["block1_pool", "block2_pool"]
    # The pooled activations really are averages of 2x2 windows of the convolution output.
    outputs = {}
    x = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    for layer in model.layers[1:]:  # the extractor is a chain: replay it layer by layer
        x = outputs[layer.name] = layer(x)
    conv, pooled = np.asarray(outputs["block1_conv2"]), np.asarray(outputs["block1_pool"])
    expected = conv.reshape(1, 4, 2, 4, 2, 64).mean(axis=(2, 4))
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-4)


def test_unknown_layer_names_list_the_valid_ones():
    with pytest.raises(UserInputError, match=r"unknown vgg16 layer 'block3_conv4'.*block3_conv3"):
        vgg.validate_config(vgg.ExtractorConfig(backbone="vgg16", style_layers=("block3_conv4",)))


def test_missing_weights_file_names_the_flag(tmp_path):
    with pytest.raises(UserInputError, match="weights file not found.*--weights=imagenet"):
        vgg.validate_config(vgg.ExtractorConfig(weights=str(tmp_path / "nope.h5")))


def test_min_input_size_follows_the_deepest_layer():
    assert vgg.min_input_size(("block1_conv1",)) == 1
    assert vgg.min_input_size(("block1_conv1", "block4_conv2")) == 8
    assert vgg.min_input_size(("block5_conv1",)) == 16
    assert vgg.min_input_size(("block5_pool",)) == 32


def test_offline_imagenet_download_names_the_flag_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    def refuse(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -2] Name or service not known")  # what Keras raises offline

    monkeypatch.setattr(keras.utils, "get_file", refuse)
    with pytest.raises(UserInputError) as raised:
        vgg.build_extractor(vgg.ExtractorConfig(backbone="vgg16", weights="imagenet"))
    message = str(raised.value)
    assert "--weights=/path/to/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "\n" not in message


def test_random_weights_follow_the_seed():
    image = np.random.default_rng(0).uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)
    outputs = [vgg.build_extractor(vgg.ExtractorConfig(weights="none", seed=seed, style_layers=("block1_conv1",),
                                                       content_layers=("block2_conv1",)))(image)["block2_conv1"]
               for seed in (1, 1, 2)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert np.abs(np.asarray(outputs[0]) - np.asarray(outputs[2])).max() > 1e-3


@pytest.mark.parametrize("cpu_flags", [{"avx2", "avx512_bf16"}, {"avx2"}])
def test_an_auto_extractor_computes_in_what_auto_stands_for(monkeypatch, cpu_flags):
    monkeypatch.setattr(precision, "cpu_flags", lambda: cpu_flags)  # as if the machine reported these
    config = vgg.ExtractorConfig(weights="none", style_layers=("block1_conv1",), content_layers=("block2_conv1",),
                                 precision="auto")
    model = vgg.build_extractor(config)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert {layer.compute_dtype for layer in convs} == {
        {"mixed_bfloat16": "bfloat16", "float32": "float32"}[precision.resolve("auto")]}
    features = model(np.zeros((1, 32, 32, 3), np.float32))
    assert {value.dtype.name for value in features.values()} == {"float32"}  # the losses always see float32
    with pytest.raises(UserInputError, match="unknown precision 'float8'; use one of auto, float32"):
        vgg.validate_config(vgg.ExtractorConfig(precision="float8"))
