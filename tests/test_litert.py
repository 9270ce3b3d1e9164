"""The LiteRT export (export/litert.py): the converted stylizer runs at any size in ai-edge-litert's
interpreter and matches the SavedModel it came from; an op LiteRT lacks is a one-line error naming it."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("ai_edge_litert")

# pylint: disable=wrong-import-position
import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from conftest import skimage_rgb
from export import litert
from export import saved_model
from tf_nst import transformer
from tf_nst.errors import UserInputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Grey-level error (max, mean) allowed against the SavedModel on the test photos. Measured for the small
# untrained stylizer below: none 1 (mean 0.0), float16 1 (0.08), dynamic_int8 21 (3.0); the bounds leave
# room for other CPUs' rounding. bench/bench_litert.py measures the full-width network.
BOUNDS = {"none": (1, 0.05), "float16": (2, 0.25), "dynamic_int8": (32, 4.5)}
SIZES = ((40, 56), (64, 48))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = transformer.build_transformer(width_multiplier=0.25)
    return saved_model.export(model, str(tmp_path_factory.mktemp("exports")))


@pytest.fixture(scope="module")
def converted(exported, tmp_path_factory):
    """{quantisation: path of the .tflite}."""
    folder = tmp_path_factory.mktemp("litert")
    return {quantize: litert.export(exported, str(folder / f"{quantize}.tflite"), quantize)
            for quantize in litert.QUANTIZATIONS}


@pytest.fixture(scope="module")
def photos():
    coffee = Image.fromarray(skimage_rgb("coffee"))
    return [np.asarray(coffee.resize((width, height), Image.BILINEAR)) for height, width in SIZES]


@pytest.mark.parametrize("quantize", litert.QUANTIZATIONS)
def test_runs_at_two_sizes_and_matches_the_saved_model(exported, converted, photos, quantize):
    signature = tf.saved_model.load(exported).signatures[saved_model.IMAGES]
    interpreter = litert.load_interpreter(converted[quantize])
    (detail,) = interpreter.get_input_details()
    assert detail["dtype"] == np.uint8 and list(detail["shape_signature"]) == [1, -1, -1, 3]
    assert interpreter.get_output_details()[0]["dtype"] == np.uint8
    max_bound, mean_bound = BOUNDS[quantize]
    for image in [*photos, photos[0]]:  # back to the first size after the second
        output = litert.stylize(interpreter, image)
        expected = signature(images=tf.constant(image[None]))["stylized"].numpy()[0]
        assert output.shape == image.shape and output.dtype == np.uint8
        error = np.abs(output.astype(int) - expected.astype(int))
        assert error.max() <= max_bound and error.mean() <= mean_bound, (error.max(), error.mean())


def test_quantised_files_are_smaller(converted):
    size = {quantize: os.path.getsize(path) for quantize, path in converted.items()}
    assert size["float16"] < 0.6 * size["none"]
    assert size["dynamic_int8"] < 0.7 * size["float16"]


def test_written_beside_the_saved_model_and_never_replaced(exported):
    path = litert.export(exported)
    assert path == os.path.join(exported, "model.tflite")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    before = os.path.getmtime(path)
    with pytest.raises(UserInputError, match="already exists"):
        litert.export(exported)
    assert os.path.getmtime(path) == before
    assert [name for name in os.listdir(exported) if name.startswith(".tmp")] == []


class _Hue(keras.layers.Layer):
    """A layer built on an op that LiteRT has no built-in kernel for (AdjustHue)."""

    def call(self, inputs):
        return tf.image.adjust_hue(inputs / 255.0, 0.1) * 255.0


def test_an_op_litert_lacks_is_a_one_line_error_naming_it(tmp_path):
    inputs = keras.Input(shape=(None, None, 3))
    version_dir = saved_model.export(keras.Model(inputs, _Hue()(inputs)), str(tmp_path))
    with pytest.raises(UserInputError) as error:
        litert.export(version_dir, quantize="none")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("LiteRT has no built-in kernel for the TensorFlow op(s) AdjustHue in ")
    assert not os.path.exists(os.path.join(version_dir, litert.MODEL_FILE))


def test_bad_arguments_are_user_errors(exported, tmp_path):
    with pytest.raises(UserInputError, match="quantize must be one of none, float16, dynamic_int8; received 'int4'"):
        litert.convert(exported, "int4")
    with pytest.raises(UserInputError, match="no SavedModel in"):
        litert.convert(str(tmp_path))
    with pytest.raises(UserInputError, match="must end in .tflite"):
        litert.export(exported, str(tmp_path / "model.bin"))


# --- `export --format=litert` ---------------------------------------------------------------------------------

def run_export(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "export", *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, check=False)


def test_export_command_writes_the_saved_model_and_the_tflite_beside_it(tmp_path, photos):
    keras.utils.set_random_seed(0)
    transformer.build_transformer(width_multiplier=0.25).save(str(tmp_path / "stylizer.keras"))
    result = run_export(f"--model={tmp_path / 'stylizer.keras'}", f"--export_dir={tmp_path / 'exports'}",
                        "--format=litert", "--quantize=none")
    assert result.returncode == 0, result.stderr
    version_dir = tmp_path / "exports" / "stylizer" / "1"
    assert f"tf-nst: wrote {version_dir / 'model.tflite'} (LiteRT, none, " in result.stdout
    interpreter = litert.load_interpreter(str(version_dir / "model.tflite"))
    signature = tf.saved_model.load(str(version_dir)).signatures[saved_model.IMAGES]
    expected = signature(images=tf.constant(photos[1][None]))["stylized"].numpy()[0]
    assert np.abs(litert.stylize(interpreter, photos[1]).astype(int) - expected).max() <= 1
    # An exported version folder as --model: converted only, to --output.
    again = run_export(f"--model={version_dir}", "--format=litert", f"--output={tmp_path / 'int8.tflite'}",
                       "--quantize=dynamic_int8")
    assert again.returncode == 0, again.stderr
    assert os.path.getsize(tmp_path / "int8.tflite") < os.path.getsize(version_dir / "model.tflite")
    assert sorted(os.listdir(tmp_path / "exports" / "stylizer")) == ["1"]


def test_export_command_names_the_op_litert_lacks_in_one_line(tmp_path):
    inputs = keras.Input(shape=(None, None, 3))
    version_dir = saved_model.export(keras.Model(inputs, _Hue()(inputs)), str(tmp_path))
    result = run_export(f"--model={version_dir}", "--format=litert")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "tf-nst: error: LiteRT has no built-in kernel for the TensorFlow op(s) AdjustHue in "), result.stderr
