"""Applying a stylizer: loading it, naming outputs, skipping bad files, and the `stylize` command."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import skimage_rgb
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
