"""Applying a stylizer: loading it, naming outputs, skipping bad files, and the `stylize` command."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import skimage_rgb, tiny_adain_model
from tf_nst import adain
from tf_nst import stylize
from tf_nst import train
from tf_nst import transformer
from tf_nst.errors import UserInputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A train_dir holding an (untrained) slim stylizer."""
    folder = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(0)
    transformer.build_transformer(width_multiplier=0.25).save(str(folder / train.MODEL_FILE))
    return str(folder)


@pytest.fixture
def photos(tmp_path):
    """A folder with two readable images (one nested, one GIF) and one corrupt file."""
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    Image.fromarray(skimage_rgb("chelsea")[::10, ::10]).save(folder / "cat.jpg")
    Image.fromarray(skimage_rgb("coffee")[::9, ::9]).save(folder / "nested" / "coffee.gif")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def test_load_stylizer_takes_a_file_or_a_train_dir(model_dir, tmp_path):
    from_dir = stylize.load_stylizer(model_dir)
    from_file = stylize.load_stylizer(os.path.join(model_dir, train.MODEL_FILE))
    images = np.full((1, 9, 11, 3), 100, np.float32)
    np.testing.assert_array_equal(from_dir(images).numpy(), from_file(images).numpy())
    with pytest.raises(UserInputError, match="model not found"):
        stylize.load_stylizer(str(tmp_path))
    (tmp_path / "junk.keras").write_text("not a model")
    with pytest.raises(UserInputError, match="cannot load model"):
        stylize.load_stylizer(str(tmp_path / "junk.keras"))


def test_stylize_image_is_the_networks_forward_pass(model_dir):
    """Guards stylize_image: its output is the model's own forward pass (within rounding), not its input."""
    model = stylize.load_stylizer(model_dir)
    image = skimage_rgb("chelsea")[::8, ::8]
    result = stylize.stylize_image(model, image)
    expected = np.clip(np.round(model(image[None].astype(np.float32), training=False)[0].numpy()), 0, 255)
    assert result.shape == image.shape and result.dtype == np.uint8
    assert np.abs(result.astype(int) - expected).max() <= 1
    assert np.abs(result.astype(int) - image).mean() > 5


def test_outputs_keep_names_and_never_replace_inputs(photos, tmp_path):
    out = tmp_path / "out"
    pairs = stylize.plan_outputs(str(photos), str(out))
    assert [(os.path.relpath(a, photos), os.path.relpath(b, out)) for a, b in pairs] == [
        ("broken.png", "broken.png"), ("cat.jpg", "cat.jpg"),
        (os.path.join("nested", "coffee.gif"), os.path.join("nested", "coffee.png"))]
    with pytest.raises(UserInputError, match="would replace an input file"):
        stylize.plan_outputs(str(photos), str(photos), overwrite=True)
    inside = photos / "styled"  # an output folder inside the input folder is not read as input
    assert len(stylize.plan_outputs(str(photos), str(inside))) == 3


def test_max_size_downscales_and_small_images_are_refused(model_dir):
    model = stylize.load_stylizer(model_dir)
    image = np.zeros((40, 100, 3), np.uint8)
    assert stylize.stylize_image(model, image, max_size=50).shape == (20, 50, 3)
    assert stylize.stylize_image(model, image).shape == (40, 100, 3)
    with pytest.raises(UserInputError, match="is 100x15 px; tf_nst needs at least 16 px on each side"):
        stylize.stylize_image(model, np.zeros((15, 100, 3), np.uint8))
    with pytest.raises(UserInputError, match="downscaled from 100x40 px, is 25x10 px"):
        stylize.stylize_image(model, image, max_size=25)


def test_stylize_command_writes_good_files_and_reports_the_bad_one(model_dir, photos, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "main.py"), "stylize", f"--model={model_dir}",
         f"--input={photos}", f"--output_dir={out}", "--max_size=40"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert result.returncode == 1, result.stderr
    assert Image.open(out / "cat.jpg").size == (40, 26)  # 46x30, downscaled to a longer side of 40
    assert Image.open(out / "nested" / "coffee.png").size == (40, 27)  # 67x45
    assert not (out / "broken.png").exists()
    assert sorted(p.name for p in out.rglob("*")) == ["cat.jpg", "coffee.png", "nested"]  # no temp files
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"tf-nst: skipped {photos / 'broken.png'}: cannot read")
    assert "wrote 2 image(s)" in result.stdout and "1 failed" in result.stdout


# --- Arbitrary-style models (tf_nst.adain): the same command and functions, with a Style ------------------

def _style_distance(model, image, reference):
    """The relative distance between two images' style_statistics on the model's own encoder."""
    ours, theirs = (adain.style_statistics(model, np.asarray(x, np.float32)[None]).numpy() for x in (image, reference))
    return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


@pytest.fixture(scope="module")
def adain_dir(tmp_path_factory):
    """A train_dir holding a small random arbitrary-style network (conftest.tiny_adain_model)."""
    folder = tmp_path_factory.mktemp("adain")
    tiny_adain_model().save(str(folder / train.MODEL_FILE))
    return str(folder)


@pytest.fixture(scope="module")
def adain_model(adain_dir):
    return stylize.load_stylizer(adain_dir)


@pytest.fixture(scope="module")
def styles():
    return (skimage_rgb("coffee")[::8, ::8][:48, :48], skimage_rgb("astronaut")[::10, ::10][:48, :48])


CONTENT = skimage_rgb("chelsea")[::6, ::6][:48, :64]


def test_one_style_is_the_models_own_forward_pass(adain_model, styles):
    result = stylize.stylize_image(adain_model, CONTENT, style=stylize.Style(styles[:1], alpha=0.6))
    expected = adain_model({"content": CONTENT[None].astype(np.float32), "style": styles[0][None].astype(np.float32),
                            "alpha": np.array([0.6], np.float32)}, training=False)[0].numpy()
    assert result.shape == CONTENT.shape and result.dtype == np.uint8
    assert np.abs(result.astype(int) - np.round(expected)).max() <= 1


def test_alpha_moves_the_result_monotonically_towards_full_style(adain_model, styles):
    outputs = [stylize.stylize_image(adain_model, CONTENT, style=stylize.Style(styles[:1], alpha=alpha))
               for alpha in np.linspace(0, 1, 5)]
    assert np.abs(outputs[0].astype(int) - outputs[-1]).mean() > 5
    to_full = [_style_distance(adain_model, output, outputs[-1]) for output in outputs]
    assert all(a > b for a, b in zip(to_full, to_full[1:])), to_full


def test_blend_weights_move_the_result_between_two_styles(adain_model, styles):
    outputs = [stylize.stylize_image(adain_model, CONTENT, style=stylize.Style(styles, (1 - w, w)))
               for w in np.linspace(0, 1, 5)]
    for single, output in ((styles[:1], outputs[0]), (styles[1:], outputs[-1])):
        alone = stylize.stylize_image(adain_model, CONTENT, style=stylize.Style(single))
        assert np.abs(alone.astype(int) - output).max() <= 1
    to_second = [_style_distance(adain_model, output, outputs[-1]) for output in outputs]
    to_first = [_style_distance(adain_model, output, outputs[0]) for output in outputs]
    assert all(a > b for a, b in zip(to_second, to_second[1:])), to_second
    assert all(a < b for a, b in zip(to_first, to_first[1:])), to_first


def test_preserve_color_luminance_keeps_the_contents_chroma(adain_model, styles):
    def chroma(rgb):
        yuv = tf.image.rgb_to_yuv(np.asarray(rgb, np.float32) / 255.0).numpy()
        return yuv[..., 1:] * 255.0

    kept = stylize.stylize_image(adain_model, CONTENT, style=stylize.Style(styles[:1], preserve_color="luminance"))
    plain = stylize.stylize_image(adain_model, CONTENT, style=stylize.Style(styles[:1]))
    inside = np.all((kept > 3) & (kept < 252), axis=-1)  # where clipping to [0, 255] leaves the colour alone
    assert inside.mean() > 0.3
    assert np.abs(chroma(kept) - chroma(CONTENT))[inside].max() < 2.5
    assert np.abs(chroma(plain) - chroma(CONTENT))[inside].mean() > 5
    histogram = stylize.stylize_image(adain_model, CONTENT, style=stylize.Style(styles[:1], preserve_color="histogram"))
    assert np.abs(histogram.astype(int) - plain).mean() > 1


def test_style_options_and_the_model_kind_are_checked(adain_model, model_dir, styles):
    with pytest.raises(UserInputError, match="arbitrary-style network; give it a style"):
        stylize.check_model_kind(adain_model, None)
    with pytest.raises(UserInputError, match="learnt one style and takes no style image"):
        stylize.check_model_kind(stylize.load_stylizer(model_dir), stylize.Style(styles))
    with pytest.raises(UserInputError, match="alpha must be in"):
        stylize.Style(styles, alpha=1.5)
    with pytest.raises(UserInputError, match="give one non-negative weight per style"):
        stylize.Style(styles, blend_weights=(1.0,))


def _stylize_command(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "stylize", *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)


def test_stylize_command_with_an_arbitrary_model(adain_dir, photos, styles, tmp_path):
    style_files = []
    for index, style in enumerate(styles):
        style_files.append(str(tmp_path / f"style{index}.png"))
        Image.fromarray(style).save(style_files[-1])
    masks = [str(tmp_path / "left.png"), str(tmp_path / "right.png")]
    left = np.zeros((20, 30), np.uint8)
    left[:, :15] = 255
    Image.fromarray(left).save(masks[0])
    Image.fromarray(255 - left).save(masks[1])
    out = tmp_path / "out"
    result = _stylize_command(f"--model={adain_dir}", f"--input={photos}", f"--output_dir={out}",
                              f"--style={','.join(style_files)}", "--style_blend_weights=3,1", "--alpha=0.8",
                              "--preserve_color=histogram", "--style_size=32", f"--content_mask={','.join(masks)}")
    assert result.returncode == 1, result.stderr
    assert sorted(p.name for p in out.rglob("*")) == ["cat.jpg", "coffee.png", "nested"]
    assert "wrote 2 image(s)" in result.stdout and "1 failed" in result.stdout


@pytest.mark.parametrize("kind, flag, message", [
    ("arbitrary", None, "is an arbitrary-style model; give it --style=FILE"),
    ("one-style", "--style={style}", "learnt one style and takes no --style;"),
    ("one-style", "--alpha=0.5", "learnt one style and takes no --alpha;"),
    ("arbitrary", "--style={style},{style} --style_blend_weights=1", "--style_blend_weights needs one"),
    ("arbitrary", "--style=missing.png", "image file not found: 'missing.png'"),
    ("arbitrary", "--style={style} --content_mask={style},{style}", "--content_mask has 2 file(s) but --style has 1"),
])
def test_stylize_command_refuses_a_mismatch_in_one_line(adain_dir, model_dir, photos, tmp_path, kind, flag, message):
    style = str(tmp_path / "style.png")
    Image.fromarray(skimage_rgb("coffee")[::8, ::8]).save(style)
    args = [f"--model={adain_dir if kind == 'arbitrary' else model_dir}", f"--input={photos}",
            f"--output_dir={tmp_path / 'out'}", *(flag.format(style=style).split() if flag else [])]
    result = _stylize_command(*args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()


def _numpy_region_adain(content, mean, std, mask, epsilon=adain.EPSILON):
    """AdaIN with the content's moments taken over the mask's region, in float64."""
    weights = mask[None, :, :, None].astype(np.float64)
    region_mean = (weights * content).sum(axis=(1, 2), keepdims=True) / weights.sum()
    region_var = (weights * (content - region_mean) ** 2).sum(axis=(1, 2), keepdims=True) / weights.sum()
    return (content - region_mean) / np.sqrt(region_var + epsilon) * std + mean


def test_masked_targets_use_each_regions_statistics_against_numpy():
    rng = np.random.default_rng(3)
    content = (rng.standard_normal((1, 6, 8, 5)) * 2 + 1).astype(np.float32)
    moments = [(rng.standard_normal((1, 1, 1, 5)).astype(np.float32) + shift,
                rng.uniform(0.5, 2, (1, 1, 1, 5)).astype(np.float32)) for shift in (-4.0, 4.0)]
    left = np.zeros((6, 8), np.float32)
    left[:, :3], left[:, 3] = 1.0, 0.5
    result = adain.blend_targets(content, moments, blend_weights=[1.0, 3.0], alpha=0.8,
                                 masks=[left, 1.0 - left]).numpy()
    first, second = (_numpy_region_adain(content, *pair, mask) for pair, mask in zip(moments, (left, 1.0 - left)))
    weights = np.stack([1.0 * left, 3.0 * (1.0 - left)])[:, None, :, :, None]
    expected = 0.8 * (weights[0] * first + weights[1] * second) / weights.sum(axis=0) + 0.2 * content
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4)
    ones = np.ones((6, 8), np.float32)
    np.testing.assert_allclose(adain.blend_targets(content, moments, [1.0, 3.0], masks=[ones, ones]).numpy(),
                               adain.blend_targets(content, moments, [1.0, 3.0]).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(adain.blend_targets(content, moments, masks=[0 * ones, 0 * ones]).numpy(), content)


def test_content_masks_reach_the_network_at_each_images_size(adain_model, styles):
    """stylize_image with masks: all white is the unmasked result, all black the content's own features, and
    a half mask applies its style on its half only (as far as the decoder's receptive field allows)."""
    content = skimage_rgb("chelsea")[::5, ::5][:64, :64]
    ones = np.ones((32, 40), np.float32)  # a mask file of another size, resized to the content's
    unmasked = stylize.stylize_image(adain_model, content, style=stylize.Style(styles, (3.0, 1.0)))
    all_white = stylize.stylize_image(adain_model, content,
                                      style=stylize.Style(styles, (3.0, 1.0), content_masks=(ones, ones)))
    assert np.abs(all_white.astype(int) - unmasked).max() <= 1
    black = stylize.stylize_image(adain_model, content, style=stylize.Style(styles, content_masks=(0 * ones,) * 2))
    keep = stylize.stylize_image(adain_model, content, style=stylize.Style(styles[:1], alpha=0.0))
    assert np.abs(black.astype(int) - keep).max() <= 1
    left = np.zeros((64, 64), np.float32)
    left[:, :32] = 1.0
    half = stylize.stylize_image(adain_model, content, style=stylize.Style(styles[:1], content_masks=(left,)))
    near, far = np.abs(half.astype(int) - keep)[:, :16].mean(), np.abs(half.astype(int) - keep)[:, 48:].mean()
    assert near > 3 * far, (near, far)


def test_stylize_writes_each_readable_input_and_reports_each_file_to_the_callback(model_dir, photos, tmp_path):
    """stylize() in process (the command's test runs it in a subprocess): the written files, the failures and
    the callback's arguments. Guards what mutation testing found unchecked there."""
    out = tmp_path / "out"
    seen = []
    result = stylize.stylize(model_dir, str(photos), str(out), max_size=40,
                             callback=lambda path, output, error: seen.append((path, output, error)))
    good = [(str(photos / "cat.jpg"), str(out / "cat.jpg")),
            (str(photos / "nested" / "coffee.gif"), str(out / "nested" / "coffee.png"))]
    assert result.written == tuple(output for _, output in good)
    assert [path for path, _ in result.failed] == [str(photos / "broken.png")]
    assert "cannot read" in result.failed[0][1]
    assert seen == [(str(photos / "broken.png"), str(out / "broken.png"), result.failed[0][1])] + [
        (path, output, None) for path, output in good]
    assert Image.open(out / "cat.jpg").size == (40, 26)
    with pytest.raises(UserInputError, match="already exists; pass --overwrite"):  # not replaced by default
        stylize.stylize(model_dir, str(photos), str(out))


def test_a_model_that_fails_to_load_without_a_message_is_named_by_its_error_type(model_dir, monkeypatch):
    def fail(*args, **kwargs):
        raise ValueError()

    monkeypatch.setattr(stylize.keras.models, "load_model", fail)
    with pytest.raises(UserInputError, match=r"cannot load model .* \(ValueError\)"):
        stylize.load_stylizer(model_dir)


def test_a_too_small_image_is_named_as_the_image():
    with pytest.raises(UserInputError, match=r"^the image is 100x15 px; "):
        stylize.prepare_image(np.zeros((15, 100, 3), np.uint8))
