"""The Beam batch job (export/batch.py) on the in-process FnApiRunner: outputs, failures, counters, reruns,
agreement with `stylize`, and two worker processes."""

import json
import os
import subprocess
import sys

import pytest

beam = pytest.importorskip("apache_beam")

# pylint: disable=wrong-import-position
import keras
import numpy as np
from PIL import Image

from conftest import skimage_rgb
from export import batch
from export import saved_model
from tf_nst import stylize
from tf_nst import transformer
from tf_nst.errors import UserInputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_PIXELS = 64 * 64  # "oversized" in these tests: any image above 4096 pixels is refused
MAX_SIZE = 48  # and good images with a longer side above 48 px are downscaled


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return transformer.build_transformer(width_multiplier=0.25)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model):
    return saved_model.export(model, str(tmp_path_factory.mktemp("exports")))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Good images (one nested, one GIF, one to downscale), a corrupt file and an oversized image."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "nested").mkdir()
    coffee = Image.fromarray(skimage_rgb("coffee"))
    coffee.resize((40, 30), Image.BILINEAR).save(folder / "small.png")
    coffee.resize((56, 42), Image.BILINEAR).save(folder / "nested" / "wide.jpg", quality=95)  # > MAX_SIZE
    coffee.resize((33, 47), Image.BILINEAR).save(folder / "tall.gif")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a PNG")
    coffee.resize((80, 70), Image.BILINEAR).save(folder / "huge.bmp")  # 5600 pixels > MAX_PIXELS
    return folder


GOOD = {"small.png": (30, 40), os.path.join("nested", "wide.jpg"): (36, 48), "tall.png": (47, 33)}
CONFIG = batch.BatchConfig(max_pixels=MAX_PIXELS, max_size=MAX_SIZE)


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def written(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, _, names in os.walk(folder) for name in names)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, exported, photos):
    output_dir = tmp_path_factory.mktemp("styled")
    return batch.run(exported, str(photos), str(output_dir), CONFIG), output_dir


def test_good_files_are_written_and_bad_ones_listed_with_a_reason(first_run, photos):
    result, output_dir = first_run
    assert (result.stylized, result.failed, result.skipped) == (3, 2, 0)
    assert written(output_dir) == sorted([*GOOD, batch.FAILURES_FILE])  # no temporary files left
    for name, size in GOOD.items():
        assert pixels(output_dir / name).shape == (*size, 3)
    with open(result.failures_path, encoding="utf-8") as f:
        failures = [json.loads(line) for line in f]
    assert [failure["path"] for failure in failures] == [str(photos / "broken.png"), str(photos / "huge.bmp")]
    assert failures[0]["reason"].startswith(f"cannot read image {str(photos / 'broken.png')!r}")
    assert failures[1]["reason"].endswith(f"is 80x70 = 5600 pixels; the limit is {MAX_PIXELS} pixels")
    assert all("\n" not in failure["reason"] for failure in failures)


def test_outputs_equal_the_library_stylize_within_one_grey_level(first_run, photos, model, tmp_path):
    _, output_dir = first_run
    pairs = [pair for pair in stylize.plan_outputs(str(photos), str(tmp_path))
             if os.path.relpath(pair[1], tmp_path) in GOOD]
    result = stylize.stylize_files(model, pairs, max_size=MAX_SIZE)
    assert len(result.written) == 3
    for name in GOOD:
        assert np.abs(pixels(output_dir / name) - pixels(tmp_path / name)).max() <= 1, name


def test_a_rerun_skips_finished_outputs_and_redoes_a_missing_one(tmp_path, exported, photos):
    output_dir = tmp_path / "styled"
    batch.run(exported, str(photos), str(output_dir), CONFIG)
    before = {name: os.stat(output_dir / name).st_mtime_ns for name in GOOD}
    os.remove(output_dir / "small.png")
    result = batch.run(exported, str(photos), str(output_dir), CONFIG)
    assert (result.stylized, result.failed, result.skipped) == (1, 2, 2)
    for name in GOOD:
        if name != "small.png":
            assert os.stat(output_dir / name).st_mtime_ns == before[name]  # not rewritten
    assert pixels(output_dir / "small.png").shape == (30, 40, 3)


def test_two_worker_processes_give_the_same_outputs(first_run, exported, photos, tmp_path, monkeypatch):
    _, single = first_run
    monkeypatch.setenv("PYTHONPATH", ROOT)  # the workers import export.batch from this checkout
    result = batch.run(exported, str(photos), str(tmp_path), CONFIG,
                       ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert (result.stylized, result.failed, result.skipped) == (3, 2, 0)
    for name in GOOD:
        np.testing.assert_array_equal(pixels(tmp_path / name), pixels(single / name))


def test_strength_zero_gives_the_content_and_preserve_color_its_chroma(exported, photos, tmp_path):
    content = pixels(photos / "small.png")
    plain = batch.run(exported, str(photos / "small.png"), str(tmp_path / "plain"), CONFIG)
    unchanged = batch.run(exported, str(photos / "small.png"), str(tmp_path / "zero"),
                          batch.BatchConfig(strength=0.0))
    kept = batch.run(exported, str(photos / "small.png"), str(tmp_path / "kept"),
                     batch.BatchConfig(preserve_color=True))
    assert plain.stylized == unchanged.stylized == kept.stylized == 1
    np.testing.assert_array_equal(pixels(tmp_path / "zero" / "small.png"), content)
    stylized, colour_kept = pixels(tmp_path / "plain" / "small.png"), pixels(tmp_path / "kept" / "small.png")
    yuv = np.array([[0.299, 0.587, 0.114], [-0.14714119, -0.28886916, 0.43601035],
                    [0.61497538, -0.51496512, -0.10001026]])
    inside = np.all((colour_kept > 0) & (colour_kept < 255), axis=-1)
    assert inside.mean() > 0.5
    kept_yuv, content_yuv, stylized_yuv = (image @ yuv.T for image in (colour_kept, content, stylized))
    assert np.abs(kept_yuv[..., 1:] - content_yuv[..., 1:])[inside].max() <= 1.5  # the content's colour
    assert np.abs(kept_yuv[..., 0] - stylized_yuv[..., 0])[inside].max() <= 1.5  # the stylised brightness
    assert np.abs(stylized_yuv[..., 1:] - content_yuv[..., 1:]).mean() > 3  # ... which really differs


def test_handler_batches_images_of_several_sizes_in_order(exported, model):
    handler = batch.SavedModelHandler(exported)
    loaded = handler.load_model()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((9, 12, 3), (16, 8, 3), (9, 12, 3))]
    results = handler.run_inference(images, loaded)
    for image, result in zip(images, results):
        assert result.example is image
        expected = np.clip(np.round(np.asarray(model(image[None].astype(np.float32))[0])), 0, 255)
        assert np.abs(result.inference.astype(int) - expected).max() <= 1


def test_bad_arguments_are_user_errors(exported, photos, tmp_path):
    with pytest.raises(UserInputError, match="no SavedModel in"):
        batch.run(str(tmp_path), str(photos), str(tmp_path / "out"))
    with pytest.raises(UserInputError, match=r"strength must be in \[0, 1\]; received 1.5"):
        batch.run(exported, str(photos), str(tmp_path / "out"), batch.BatchConfig(strength=1.5))
    with pytest.raises(UserInputError, match="input not found"):
        batch.run(exported, str(tmp_path / "missing"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# --- The `batch` command --------------------------------------------------------------------------------------

def run_batch(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "batch", *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, check=False)


def test_batch_command_exits_1_on_failures_and_prints_the_counters(exported, photos, tmp_path):
    output_dir = tmp_path / "styled"
    result = run_batch(f"--model={exported}", f"--input={photos}", f"--output_dir={output_dir}",
                       f"--max_size={MAX_SIZE}", "--runner=FnApiRunner", "--direct_num_workers=1")
    assert result.returncode == 1, result.stderr
    assert "tf-nst: batch counters: stylized 4, failed 1, skipped 0" in result.stdout  # huge.bmp is fine here
    assert result.stderr.strip().splitlines() == [
        f"tf-nst: 1 file(s) failed, listed with their reasons in {output_dir / batch.FAILURES_FILE}"]
    assert written(output_dir) == sorted([*GOOD, "huge.bmp", batch.FAILURES_FILE])
    again = run_batch(f"--model={exported}", f"--input={photos}", f"--output_dir={output_dir}")
    assert "stylized 0, failed 1, skipped 4" in again.stdout and again.returncode == 1


def test_batch_command_refuses_an_unknown_flag_before_loading_tensorflow(exported, photos, tmp_path):
    result = run_batch(f"--model={exported}", f"--input={photos}", f"--output_dir={tmp_path / 'o'}",
                       "--direct_num_worker=2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tf-nst: error: unknown flag(s) --direct_num_worker: neither tf-nst's nor a Beam pipeline option "
        "(main.py batch --help lists tf-nst's)"]
    assert not (tmp_path / "o").exists()
