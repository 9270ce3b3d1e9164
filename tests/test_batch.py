"""The Beam batch job (export/batch.py) on the in-process FnApiRunner: outputs, failures, counters, reruns,
agreement with `stylize`, two worker processes, glob and nested inputs, a non-local Beam filesystem, and an
arbitrary-style export with the job's style."""

import dataclasses
import io
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys

import pytest

beam = pytest.importorskip("apache_beam")

# pylint: disable=wrong-import-position
import keras
import numpy as np
import tensorflow as tf
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.filesystem import MatchResult
from apache_beam.io.localfilesystem import LocalFileSystem
from PIL import Image

from conftest import skimage_rgb
from conftest import tiny_adain_model
from export import batch
from export import saved_model
from export import signatures
from tf_nst import files
from tf_nst import image_io
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


def test_a_glob_reads_only_its_matches_and_outputs_keep_their_path_below_its_folder(exported, photos,
                                                                                   tmp_path):
    """Planted: a glob widened to everything below its folder."""
    pngs = batch.run(exported, str(photos / "*.png"), str(tmp_path / "pngs"), CONFIG)
    assert (pngs.stylized, pngs.failed, pngs.skipped) == (1, 1, 0)  # small.png; broken.png fails
    assert written(tmp_path / "pngs") == [batch.FAILURES_FILE, "small.png"]
    jpegs = batch.run(exported, str(photos / "**" / "*.jpg"), str(tmp_path / "jpegs"), CONFIG)
    assert (jpegs.stylized, jpegs.failed, jpegs.skipped) == (1, 0, 0)
    assert written(tmp_path / "jpegs") == [batch.FAILURES_FILE, os.path.join("nested", "wide.jpg")]


def test_nested_folders_keep_their_relative_names_and_outputs_inside_the_input_are_not_read(
        exported, photos, tmp_path):
    """Planted: output names flattened to the file name; outputs under output_dir read back as inputs."""
    folder = tmp_path / "photos"
    shutil.copytree(photos / "nested", folder / "a" / "b")
    shutil.copy(photos / "small.png", folder / "a")
    output_dir = folder / "styled"  # under the input folder: a rerun must not stylise the outputs
    first = batch.run(exported, f"{folder}/", str(output_dir), CONFIG)
    again = batch.run(exported, str(folder), str(output_dir), CONFIG)
    assert (first.stylized, first.failed, first.skipped) == (2, 0, 0)
    assert (again.stylized, again.failed, again.skipped) == (0, 0, 2)
    assert written(output_dir) == [batch.FAILURES_FILE, os.path.join("a", "b", "wide.jpg"),
                                   os.path.join("a", "small.png")]
    with pytest.raises(UserInputError, match="is the input folder"):
        batch.run(exported, str(folder), f"{folder}/", CONFIG)


def test_two_inputs_for_one_output_both_fail_and_the_others_are_written(exported, photos, tmp_path):
    """Planted: every input of a shared output passed on (the last write wins)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("small.png", "tall.gif"):
        shutil.copy(photos / name, folder)
    shutil.copy(photos / "tall.gif", folder / "small.gif")  # small.gif would become small.png too
    result = batch.run(exported, str(folder), str(tmp_path / "styled"), CONFIG)
    assert (result.stylized, result.failed, result.skipped) == (1, 2, 0)
    assert written(tmp_path / "styled") == [batch.FAILURES_FILE, "tall.png"]
    with open(result.failures_path, encoding="utf-8") as f:
        failures = [json.loads(line) for line in f]
    assert [failure["path"] for failure in failures] == [str(folder / "small.gif"), str(folder / "small.png")]
    assert failures[0]["reason"] == (f"2 inputs would be written to {str(tmp_path / 'styled' / 'small.png')!r}; "
                                     "rename all but one")


class MappedFileSystem(LocalFileSystem):
    """A Beam filesystem for the made-up scheme mapped://, kept in a local folder (`root`): the job's paths
    for remote storage (gs://, s3://) run against it. `calls` records what the job asked of it."""

    root = None
    calls = []
    _disk = LocalFileSystem(None)

    @classmethod
    def scheme(cls):
        return "mapped"

    @classmethod
    def on_disk(cls, url):
        assert url.startswith("mapped://"), url
        return os.path.join(cls.root, url[len("mapped://"):])

    def join(self, basepath, *paths):
        return posixpath.join(basepath, *paths)

    def split(self, path):
        return posixpath.split(path)

    def match(self, patterns, limits=None):
        self.calls.extend(("match", pattern) for pattern in patterns)
        results = self._disk.match([self.on_disk(pattern) for pattern in patterns], limits)
        return [MatchResult(pattern, [FileMetadata("mapped://" + os.path.relpath(found.path, self.root),
                                                   found.size_in_bytes, found.last_updated_in_seconds)
                                      for found in result.metadata_list])
                for pattern, result in zip(patterns, results)]

    def create(self, path, *args, **kwargs):
        self.calls.append(("create", path))
        return self._disk.create(self.on_disk(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        self.calls.append(("open", path))
        return self._disk.open(self.on_disk(path), *args, **kwargs)

    def exists(self, path):
        self.calls.append(("exists", path))
        return self._disk.exists(self.on_disk(path))

    def rename(self, source_file_names, destination_file_names):
        self.calls.extend(("rename", path) for path in destination_file_names)
        self._disk.rename([self.on_disk(path) for path in source_file_names],
                          [self.on_disk(path) for path in destination_file_names])

    def delete(self, paths):
        self.calls.extend(("delete", path) for path in paths)
        self._disk.delete([self.on_disk(path) for path in paths])


def test_the_job_reads_and_writes_through_a_non_local_beam_filesystem(first_run, exported, photos, tmp_path,
                                                                      monkeypatch):
    """Planted: remote outputs created in place (no temporary name and rename); every write through the
    local writer; the rerun check with os.path.exists."""
    _, local = first_run
    store = tmp_path / "store"
    shutil.copytree(photos, store / "photos")
    monkeypatch.setattr(MappedFileSystem, "root", str(store))
    monkeypatch.setattr(MappedFileSystem, "calls", [])
    monkeypatch.chdir(tmp_path / "store" / "photos" / "nested")  # a relative "mapped:/..." path would land here
    result = batch.run(exported, "mapped://photos", "mapped://styled", CONFIG)
    assert (result.stylized, result.failed, result.skipped) == (3, 2, 0)
    assert result.failures_path == "mapped://styled/_failures.jsonl"
    assert written(store / "styled") == sorted([*GOOD, batch.FAILURES_FILE])  # no temporary files left
    assert os.listdir(".") == ["wide.jpg"]
    for name in GOOD:
        np.testing.assert_array_equal(pixels(store / "styled" / name), pixels(local / name))
    with open(store / "styled" / batch.FAILURES_FILE, encoding="utf-8") as f:
        assert [json.loads(line)["path"] for line in f] == ["mapped://photos/broken.png",
                                                           "mapped://photos/huge.bmp"]
    calls = MappedFileSystem.calls
    assert ("open", "mapped://photos/small.png") in calls
    assert sorted(path for call, path in calls if call == "rename") == sorted(
        f"mapped://styled/{name}" for name in [*GOOD, batch.FAILURES_FILE])
    assert all(path.rsplit("/", 1)[-1].startswith(".tmp-") for call, path in calls if call == "create")
    again = batch.run(exported, "mapped://photos/*.png", "mapped://styled", CONFIG)
    assert (again.stylized, again.failed, again.skipped) == (0, 1, 1)


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
    with pytest.raises(UserInputError, match="input not found"):
        batch.run(exported, str(photos / "*.tiff"), str(tmp_path / "out"))
    with pytest.raises(UserInputError, match="cannot read input 'nofs://photos': Unable to get filesystem"):
        batch.run(exported, "nofs://photos", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here")
    with pytest.raises(UserInputError, match="no images in"):
        batch.run(exported, str(tmp_path / "notes"), str(tmp_path / "out"))


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


# --- An arbitrary-style export: the job's one style on every image ------------------------------------------

STYLE_SIZE = 32  # the arbitrary export resizes styles to this shorter side (at most its max size, 64)


@pytest.fixture(scope="module")
def adain_model():
    return tiny_adain_model()


@pytest.fixture(scope="module")
def adain_exported(tmp_path_factory, adain_model):
    return saved_model.export(adain_model, str(tmp_path_factory.mktemp("adain_exports")), max_size=64,
                              style_size=STYLE_SIZE)


@pytest.fixture(scope="module")
def style_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("styles")
    rng = np.random.default_rng(3)
    paths = []
    for index, (height, width) in enumerate(((12, 12), (9, 13))):
        noise = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        paths.append(str(folder / f"style{index}.png"))
        noise.resize((width * 4, height * 4), Image.NEAREST).save(paths[-1])
    return paths


def styled(style_files, **options):
    """The job's Style: the files as `batch --style` reads them (files.read_image)."""
    return stylize.Style(tuple(files.read_image(path) for path in style_files), **options)


def test_an_arbitrary_export_gives_every_image_the_jobs_style_as_serving_default_does(
        adain_exported, photos, style_files, tmp_path, monkeypatch):
    """Planted: the style's statistics computed per batch (in run_inference) instead of once in load_model."""
    calls = {"statistics": 0, "load_model": 0}
    statistics, load_model = signatures.style_statistics, batch.StyleHandler.load_model

    def count(name, function):
        def counted(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return counted

    monkeypatch.setattr(signatures, "style_statistics", count("statistics", statistics))
    monkeypatch.setattr(batch.StyleHandler, "load_model", count("load_model", load_model))
    config = dataclasses.replace(CONFIG, max_batch_size=1, style=styled(style_files[:1]))  # three batches
    result = batch.run(adain_exported, str(photos), str(tmp_path), config)
    assert (result.stylized, result.failed, result.skipped) == (3, 2, 0)
    assert calls == {"statistics": 2, "load_model": 1}  # once at launch (the style's check), once in the worker
    serving = tf.saved_model.load(adain_exported).signatures["serving_default"]
    style_bytes = tf.constant([open(style_files[0], "rb").read()])
    inputs = {os.path.relpath(output, tmp_path): path for path, output in
              stylize.plan_outputs(str(photos), str(tmp_path), overwrite=True)}
    for name, size in GOOD.items():
        content = stylize.prepare_image(files.read_image(inputs[name]), MAX_SIZE)
        expected = serving(content_bytes=tf.stack([image_io.encode_png(content)]), style_bytes=style_bytes)
        assert expected["error"].numpy().tolist() == [b""]
        expected = tf.io.decode_png(expected["output_bytes"][0]).numpy()
        stored = io.BytesIO(image_io.encode_image(name, expected))  # wide.jpg's output is a JPEG
        assert pixels(tmp_path / name).shape == (*size, 3)
        assert np.abs(pixels(tmp_path / name) - pixels(stored)).max() <= 1, name


@pytest.mark.parametrize("options", [{"blend_weights": (3.0, 1.0), "alpha": 0.6}, {"preserve_color": "luminance"}],
                         ids=["blend_and_alpha", "luminance"])
def test_an_arbitrary_export_takes_the_styles_options_as_stylize_does(adain_exported, adain_model, photos,
                                                                     style_files, tmp_path, options):
    """Planted: alpha dropped; the blend's weights ignored; preserve_color dropped."""
    count = 1 if "preserve_color" in options else 2
    config = batch.BatchConfig(style=styled(style_files[:count], **options))
    result = batch.run(adain_exported, str(photos / "small.png"), str(tmp_path), config)
    assert (result.stylized, result.failed) == (1, 0)
    local = stylize.Style(stylize.read_styles(style_files[:count], STYLE_SIZE), **options)
    expected = stylize.stylize_image(adain_model, files.read_image(str(photos / "small.png")), style=local)
    assert np.abs(pixels(tmp_path / "small.png") - expected).max() <= 1
    plain = stylize.stylize_image(adain_model, files.read_image(str(photos / "small.png")),
                                  style=stylize.Style(local.images[:1]))
    assert np.abs(plain.astype(int) - expected).max() > 5  # the options changed the picture


def test_an_image_the_arbitrary_export_refuses_is_listed_and_the_others_written(adain_exported, style_files,
                                                                                tmp_path):
    """Planted: the export's per-row error ignored (an empty PNG decoded, or the job crashed)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((16, 200, 3), 90, np.uint8)).save(folder / "thin.png")  # 5 x 64 px at 64 px
    Image.fromarray(skimage_rgb("coffee")).resize((40, 30)).save(folder / "small.png")
    result = batch.run(adain_exported, str(folder), str(tmp_path / "styled"),
                       batch.BatchConfig(style=styled(style_files[:1])))
    assert (result.stylized, result.failed, result.skipped) == (1, 1, 0)
    assert written(tmp_path / "styled") == [batch.FAILURES_FILE, "small.png"]
    with open(result.failures_path, encoding="utf-8") as f:
        assert [json.loads(line) for line in f] == [{
            "path": str(folder / "thin.png"),
            "reason": f"image too small: 16 x 200 px, 5 x 64 px once downscaled to 64 px; {files.MIN_SIDE_RULE}"}]


def test_a_style_missing_refused_or_with_options_the_export_lacks_is_a_user_error(
        adain_exported, exported, photos, style_files, tmp_path):
    cases = [
        (adain_exported, batch.BatchConfig(), "is an arbitrary-style model; give the job a style"),
        (exported, batch.BatchConfig(style=styled(style_files[:1])), "is a one-style model and takes no style"),
        (adain_exported, batch.BatchConfig(strength=0.5, style=styled(style_files[:1])),
         "strength and preserve_color are for one-style models"),
        (adain_exported, batch.BatchConfig(style=styled(style_files, preserve_color="luminance")),
         "received 'luminance' with 2 style"),
        (adain_exported, batch.BatchConfig(style=styled(style_files[:1], preserve_color="histogram")),
         "received 'histogram' with 1 style"),
        (adain_exported, batch.BatchConfig(style=stylize.Style((np.full((20, 300, 3), 9, np.uint8),))),
         "the exported model refuses style 1 of 1: image too elongated: 20 x 300 px, 32 x 480 px"),
    ]
    for model_dir, config, message in cases:
        with pytest.raises(UserInputError, match=re.escape(message)):
            batch.run(model_dir, str(photos), str(tmp_path / "out"), config)
    assert not (tmp_path / "out").exists()


_PROBE = """
import sys
import main
try:
    code = main.main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(code, 'tensorflow' in sys.modules)
"""


def test_batch_command_takes_a_style_for_an_arbitrary_export(adain_exported, adain_model, photos, style_files,
                                                            tmp_path):
    result = run_batch(f"--model={adain_exported}", f"--input={photos / 'small.png'}", f"--output_dir={tmp_path}",
                       f"--style={style_files[0]}", "--alpha=0.6")
    assert result.returncode == 0, result.stderr
    assert "tf-nst: batch counters: stylized 1, failed 0, skipped 0" in result.stdout
    style = stylize.Style(stylize.read_styles(style_files[:1], STYLE_SIZE), alpha=0.6)
    expected = stylize.stylize_image(adain_model, files.read_image(str(photos / "small.png")), style=style)
    assert np.abs(pixels(tmp_path / "small.png") - expected).max() <= 1


@pytest.mark.parametrize("kind,args,message", [
    ("adain", [], "is an arbitrary-style model; give it --style=FILE"),
    ("adain", ["--style={style}", "--strength=0.5"],
     "is an arbitrary-style model, which takes --alpha, not --strength"),
    ("adain", ["--style={style},{style}", "--preserve_color=luminance"],
     "--preserve_color=luminance takes one --style file with an exported arbitrary-style model; received 2"),
    ("adain", ["--style={missing}"], "image file not found"),
    ("one-style", ["--style={style}"], "learnt one style and takes no --style"),
    ("one-style", ["--alpha=0.5"], "learnt one style and takes no --alpha"),
])
def test_batch_command_refuses_a_style_mismatch_before_loading_tensorflow(
        adain_exported, exported, photos, style_files, tmp_path, kind, args, message):
    """Planted: the model's kind read after TensorFlow loads (from the loaded signatures)."""
    args = [arg.format(style=style_files[0], missing=tmp_path / "missing.png") for arg in args]
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, "main.py", "batch", f"--model={adain_exported if kind == 'adain' else exported}",
         f"--input={photos}", f"--output_dir={tmp_path / 'o'}", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.stdout.split() == ["2", "False"], result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tf-nst: error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "o").exists()
