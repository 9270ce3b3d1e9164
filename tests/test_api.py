"""The Keras-style Python API: tf_nst.transfer, tf_nst.load_stylizer, and the Keras losses."""

import dataclasses
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tf_nst
from tf_nst import files, image_io, losses, transformer
from tf_nst.errors import UserInputError
from conftest import tiny_adain_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = {"weights": "none", "image_size": 64, "num_steps": 3}


def test_importing_the_package_does_not_import_tensorflow():
    result = subprocess.run([sys.executable, "-c", "import sys, tf_nst; tf_nst.transfer; tf_nst.load_stylizer; "
                             "print('tensorflow' in sys.modules)"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.stdout.split() == ["False"], result.stderr


def test_transfer_takes_paths_arrays_and_pil_images(image_files):
    content = files.read_image(image_files["content"])
    keras.utils.set_random_seed(0)  # the same random VGG weights for both runs
    from_paths = tf_nst.transfer(image_files["content"], image_files["style"], **FAST)
    keras.utils.set_random_seed(0)
    from_objects = tf_nst.transfer(content, Image.open(image_files["style"]), **FAST)
    assert from_paths.dtype == np.uint8 and from_paths.shape == (42, 64, 3)  # the 160x106 image at 64 px
    np.testing.assert_array_equal(from_paths, from_objects)
    resized = np.asarray(Image.fromarray(content).resize((64, 42), Image.BILINEAR), np.float32)
    assert np.abs(from_paths.astype(np.float32) - resized).mean() > 1.0  # it changed the content


@pytest.mark.parametrize("cpu_flags", [{"avx2", "avx512_bf16"}, {"avx2"}])
def test_transfer_runs_in_what_precision_auto_stands_for(image_files, monkeypatch, cpu_flags):
    """The default precision is the command line's "auto": the same result as naming its choice for the CPU
    flags the machine is made to report (mixed_bfloat16 with native bf16 and no GPU), not the other one's."""
    from tf_nst import precision  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(precision, "cpu_flags", lambda: cpu_flags)
    chosen = precision.resolve("auto")
    other = "float32" if chosen == "mixed_bfloat16" else "mixed_bfloat16"
    results = {}
    for name, options in (("auto", {}), ("chosen", {"precision": chosen}), ("other", {"precision": other})):
        keras.utils.set_random_seed(0)  # the same random VGG weights for every run
        results[name] = tf_nst.transfer(image_files["content"], image_files["style"], optimizer="adam",
                                        **options, **FAST)
    np.testing.assert_array_equal(results["auto"], results["chosen"])
    assert np.abs(results["auto"].astype(int) - results["other"]).max() > 0


def test_transfer_callbacks_receive_every_step_and_its_terms(image_files):
    seen = []
    tf_nst.transfer(image_files["content"], [image_files["style"], image_files["coffee"]], optimizer="adam",
                    callbacks=[lambda step, terms: seen.append((step, terms))], verbose=1, **FAST)
    assert [step for step, _ in seen] == [1, 2, 3]
    for _, terms in seen:
        assert sorted(terms) == ["content", "style", "total", "tv"]
        assert all(isinstance(value, float) for value in terms.values())
        assert terms["total"] == pytest.approx(terms["content"] + terms["style"] + terms["tv"], rel=1e-5)


def test_transfer_takes_a_tolerance(image_files, capsys):
    """tolerance= ends a converged run before num_steps; 0 runs them all; a bad one is a UserInputError.
    Either way the progress bar's line is ended."""
    # The loss weights pinned (losses.LossWeights()'s), so that the defaults' curve does not decide the stop.
    options = {**FAST, "num_steps": 60, "tolerance_window": 5, "style_weight": 5.0, "tv_weight": 10.0}
    for tolerance, check in ((0.05, lambda n: 5 < n < 60), (0.0, lambda n: n == 60)):
        seen = []
        tf_nst.transfer(image_files["content"], image_files["style"], tolerance=tolerance, verbose=1,
                        callbacks=[lambda step, terms, seen=seen: seen.append(step)], **options)
        assert check(len(seen)), (tolerance, len(seen))
        out = capsys.readouterr().out
        assert f"{len(seen)}/60" in out and out.endswith("\n"), (tolerance, out[-80:])
    with pytest.raises(tf_nst.UserInputError, match="tolerance=-1"):
        tf_nst.transfer(image_files["content"], image_files["style"], tolerance=-1, **FAST)


_QUIET_RUN = """
import numpy as np, tf_nst
image = tf_nst.transfer(np.full((32, 32, 3), 100, np.uint8), np.full((32, 32, 3), 50, np.uint8), image_size=32,
                        num_steps=3, num_scales=1, weights="none", verbose=1)
print("shape", image.shape)
"""


def test_transfer_is_quiet_at_start_and_plain_lines_in_a_log_file():
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", _QUIET_RUN], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=False, env=env)  # stdout a pipe, as a log file
    assert result.returncode == 0, result.stderr
    for noise in ("oneDNN", "cuda", "cuInit", "cpu_feature_guard", "absl::InitializeLog"):
        assert noise not in result.stderr, result.stderr
    assert "\r" not in result.stdout and "\x1b" not in result.stdout and "\b" not in result.stdout, result.stdout
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [["step", "1/3"], ["step", "2/3"], ["step", "3/3"]], lines
    assert all("total" in line and "style" in line for line in lines[:-1]) and lines[-1] == "shape (32, 32, 3)"


def test_transfer_refuses_unknown_options(image_files):
    with pytest.raises(UserInputError, match="unknown option.*num_stepz"):
        tf_nst.transfer(image_files["content"], image_files["style"], num_stepz=3)


_GOOD = np.full((32, 32, 3), 100, np.uint8)


@pytest.mark.parametrize("content,message", [
    (np.zeros((1, 1, 3), np.uint8), "content array is 1x1 px; tf_nst needs at least 16 px on each side"),
    (np.ones((32, 32, 3), bool), r"content has dtype bool; give uint8, or float values in \[0, 255\]"),
    (np.ones((32, 32, 3), complex), "content has dtype complex128; give uint8"),
    (np.full((32, 32, 3), "a", object), "content has dtype object; give uint8"),
    (np.full((32, 32, 3), 256.0), r"content has values from 256 to 256; give values in \[0, 255\]"),
    (np.full((32, 32, 3), -1, np.int64), r"content has values from -1 to -1; give values in \[0, 255\]"),
    (np.full((32, 32, 3), np.nan, np.float32), "content has non-finite values"),
    (np.zeros((32, 32, 4), np.uint8), r"content must be .*\[height, width, 3\].*; received an array of shape"),
])
def test_transfer_refuses_bad_arrays_in_one_message(content, message, image_files):
    with pytest.raises(UserInputError, match=message):
        tf_nst.transfer(content, image_files["style"], **FAST)
    with pytest.raises(UserInputError, match=message.replace("content", "style", 1)):
        tf_nst.transfer(_GOOD, content, **FAST)


@pytest.mark.parametrize("options,message", [
    ({"tv_weight": -1}, r"tv_weight=-1 is not valid; give a finite number >= 0"),
    ({"style_weight": float("nan")}, r"style_weight=nan is not valid"),
    ({"style_layer_weights": [1, 1, 1, -1, 0]}, r"style_layer_weights=\[1, 1, 1, -1, 0\] is not valid"),
    ({"num_steps": "5"}, r"num_steps='5' is not valid; give a whole number from 1 to 1000000"),
    ({"num_steps": 0}, r"num_steps=0 is not valid"),
    ({"learning_rate": -1}, r"learning_rate=-1 is not valid; give a finite number > 0"),
    ({"image_size": "32"}, r"image_size='32' is not valid; give a whole number from 16 to 10000"),
    ({"style_scale": 1e6}, r"style_scale=1000000.0 is not valid; give a number from 0.01 to 10"),
    ({"style_layers": "block1_conv1"}, r"style_layers='block1_conv1' is not valid; give a list of layer names"),
    ({"num_stepz": 3}, r"unknown option\(s\) num_stepz; valid options are .*num_steps"),
])
def test_transfer_refuses_bad_options_in_one_message(options, message, image_files):
    with pytest.raises(UserInputError, match=message):
        tf_nst.transfer(_GOOD, image_files["style"], **{**FAST, **options})


def test_transfer_takes_grey_arrays_as_rgb(image_files):
    grey = files.read_image(image_files["content"])[..., 0]
    keras.utils.set_random_seed(0)
    from_grey = tf_nst.transfer(grey, image_files["style"], **FAST)
    keras.utils.set_random_seed(0)
    from_rgb = tf_nst.transfer(np.repeat(grey[..., None], 3, axis=-1), image_files["style"], **FAST)
    np.testing.assert_array_equal(from_grey, from_rgb)


def test_a_stylizer_refuses_bad_images_in_one_message(stylizer_file):
    stylizer = tf_nst.load_stylizer(stylizer_file)
    with pytest.raises(UserInputError, match="image has non-finite values"):
        stylizer(np.full((32, 32, 3), np.nan, np.float32))
    with pytest.raises(UserInputError, match=r"image batch has values from 0 to 300; give values in \[0, 255\]"):
        stylizer(np.stack([np.zeros((32, 32, 3)), np.full((32, 32, 3), 300.0)]))
    with pytest.raises(UserInputError, match="image has dtype bool"):
        stylizer(np.ones((32, 32, 3), bool))


@pytest.fixture(scope="module")
def stylizer_file(tmp_path_factory):
    keras.utils.set_random_seed(0)
    path = str(tmp_path_factory.mktemp("model") / files.MODEL_FILE)
    transformer.build_transformer(width_multiplier=0.25).save(path)
    return path


def test_load_stylizer_matches_the_models_forward_pass(stylizer_file):
    images = np.random.default_rng(0).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    model = keras.saving.load_model(stylizer_file, compile=False)
    expected = np.clip(np.round(model(images.astype(np.float32), training=False).numpy()), 0, 255)
    for path in (stylizer_file, os.path.dirname(stylizer_file)):
        stylizer = tf_nst.load_stylizer(path)
        batch, single = stylizer(images), stylizer(images[0])
        assert batch.dtype == np.uint8 and batch.shape == images.shape and single.shape == images.shape[1:]
        assert np.abs(batch.astype(np.float32) - expected).max() <= 1
        np.testing.assert_array_equal(single, batch[0])
    with pytest.raises(UserInputError, match="learnt one style"):
        stylizer(images[0], style=images[1])


def test_load_stylizer_gives_an_arbitrary_model_its_style(tmp_path):
    from tf_nst import stylize  # pylint: disable=import-outside-toplevel

    path = str(tmp_path / files.MODEL_FILE)
    tiny_adain_model().save(path)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)
    style = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    stylizer = tf_nst.load_stylizer(path)
    batch = stylizer(images, style=style, alpha=0.5, style_size=32)
    model = stylize.load_stylizer(path)
    resized = np.asarray(image_io.to_uint8(image_io.resize_shorter_side(style, 32)))
    options = stylize.Style((resized,), alpha=0.5)
    expected = stylize.stylize_image(model, images[1], style=options)
    assert batch.shape == images.shape and batch.dtype == np.uint8
    assert np.abs(batch[1].astype(int) - expected).max() <= 1
    with pytest.raises(UserInputError, match="arbitrary-style network; give it style="):
        stylizer(images)


def test_load_stylizer_reads_an_exported_savedmodel_version(stylizer_file, tmp_path):
    from export import saved_model  # pylint: disable=import-outside-toplevel

    version_dir = saved_model.export(stylizer_file, str(tmp_path / "exports"))
    image = np.random.default_rng(2).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    served, local = tf_nst.load_stylizer(version_dir)(image), tf_nst.load_stylizer(stylizer_file)(image)
    assert served.dtype == np.uint8 and served.shape == image.shape
    assert np.abs(served.astype(int) - local.astype(int)).max() <= 1


def _tiny_data(seed=0):
    rng = np.random.default_rng(seed)
    inputs = rng.uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    return inputs, np.clip(255.0 - inputs * 0.5 + 20.0, 0, 255).astype(np.float32)


@pytest.mark.parametrize("loss_class,layers", [(losses.StyleLoss, ("block1_conv1", "block2_conv1")),
                                               (losses.PerceptualLoss, ("block2_conv2",))])
def test_keras_losses_are_lowered_by_fit(loss_class, layers):
    keras.utils.set_random_seed(0)
    inputs, targets = _tiny_data()
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Rescaling(1 / 255.0),
                              keras.layers.Conv2D(3, 3, padding="same"), keras.layers.Rescaling(255.0)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss_class(layers=layers, weights="none"))
    history = model.fit(inputs, targets, batch_size=4, epochs=8, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0], history.history["loss"]


@pytest.mark.parametrize("loss_class", [losses.StyleLoss, losses.PerceptualLoss])
def test_keras_losses_round_trip_their_config(loss_class, tmp_path):
    loss = loss_class(layers=("block1_conv1", "block2_conv1"), layer_weights=(1.0, 3.0), weights="none",
                      backbone="vgg16", pooling="avg")
    config = loss.get_config()
    assert loss_class.from_config(config).get_config() == config
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is loss_class and restored.get_config() == config
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 1)])
    model.compile(optimizer="adam", loss=loss)
    model.save(str(tmp_path / "model.keras"))
    reloaded = keras.saving.load_model(str(tmp_path / "model.keras"))
    assert reloaded.loss.get_config() == config


def test_keras_losses_are_zero_on_identical_images_and_per_image():
    images = tf.constant(np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)), tf.float32)
    for loss in (losses.StyleLoss(weights="none"), losses.PerceptualLoss(weights="none")):
        assert float(loss(images, images)) == pytest.approx(0.0, abs=1e-6)
        per_image = loss.call(images, tf.reverse(images, axis=[0]))
        assert per_image.shape == (3,) and float(per_image[1]) == pytest.approx(0.0, abs=1e-6)


def test_auto_scales_stop_before_a_small_style_gets_too_small_for_the_layers():
    from tf_nst import api, optimize, vgg  # pylint: disable=import-outside-toplevel
    content, style = np.zeros((341, 512, 3), np.float32), np.zeros((400, 600, 3), np.float32)
    extractor_config = vgg.ExtractorConfig(weights="none")  # block5_conv1: 16 px at least
    sizes = lambda images: optimize.scale_sizes(*images[0].shape[:2], images[2].num_scales, 2.0)
    # Every style layer in the loss, block5_conv1 too (transfer's default leaves it out: below).
    every = optimize.TransferConfig(loss_weights=losses.LossWeights(), init="noise")  # coarse to fine
    default = api.sized_images(content, [style], 512, 1.0, extractor_config, every)
    assert len(sizes(default)) == 4  # the style is 341 px at full size, 43 px at the coarsest scale
    # A style of 0.25 x 512 px is 85 px on its shorter side: 21 px at 1/4 of the size, 11 px at 1/8.
    small = api.sized_images(content, [style], 512, 0.25, extractor_config, every)
    assert min(small[1][0].shape[:2]) == 85 and len(sizes(small)) == 3
    with pytest.raises(UserInputError, match="style image becomes 16x11 px"):  # asked for: still refused
        api.sized_images(content, [style], 512, 0.25, extractor_config, dataclasses.replace(every, num_scales=4))
    # With block5_conv1 at weight 0 (transfer's default) the deepest layer used is block4_conv2, 8 px at least:
    # the 11 px style fits at 1/8, so the fourth scale stays.
    small = api.sized_images(content, [style], 512, 0.25, extractor_config, optimize.TransferConfig(init="noise"))
    assert len(sizes(small)) == 4
