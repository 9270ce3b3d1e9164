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

from conftest import skimage_rgb, tiny_adain_model
from export import litert
from export import saved_model
from tf_nst import adain
from tf_nst import image_io
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


# --- an arbitrary-style network: the style_statistics and stylize signatures ---------------------------------

# Grey-level error allowed against the Keras model, and the statistics' error relative to their largest value.
# Measured on the tiny network below at 64-128 px: none 1 (mean 0.000), statistics 6.9e-5; float16 1 (mean
# 0.05), 3.6e-4; dynamic_int8 9 (mean 1.1), 4.1e-3. The bounds leave room for other CPUs' rounding.
ARBITRARY_BOUNDS = {"none": 1, "float16": 2, "dynamic_int8": 16}
STATISTICS_RTOL = {"none": 5e-4, "float16": 3e-3, "dynamic_int8": 2e-2}
ARBITRARY_SIZES = ((64, 96), (70, 100))  # the second is not a multiple of 8: padded and cropped back


@pytest.fixture(scope="module")
def arbitrary_model():
    return tiny_adain_model()


@pytest.fixture(scope="module")
def arbitrary_converted(arbitrary_model, tmp_path_factory):
    """{quantisation: path of the .tflite} for the tiny arbitrary-style network."""
    folder = tmp_path_factory.mktemp("litert_adain")
    return {quantize: litert.export_arbitrary(arbitrary_model, str(folder / f"{quantize}.tflite"), quantize)
            for quantize in litert.QUANTIZATIONS}


@pytest.fixture(scope="module")
def style_photo():
    return np.asarray(Image.fromarray(skimage_rgb("astronaut")).resize((128, 96), Image.BILINEAR))


def keras_statistics(model, style):
    return adain.style_statistics(model, style[None].astype(np.float32)).numpy()


def keras_stylized(model, image, statistics, alpha):
    """The Keras model's uint8 result from style_statistics and alpha (adain.stylize_with_statistics)."""
    stylized = adain.stylize_with_statistics(model, image[None].astype(np.float32), [statistics], alpha=alpha)
    return np.asarray(image_io.to_uint8(stylized))[0]


def test_arbitrary_model_has_two_signatures_of_builtin_ops(arbitrary_converted):
    interpreter = litert.load_interpreter(arbitrary_converted["none"])
    assert interpreter.get_signature_list() == {
        "style_statistics": {"inputs": ["style_images"], "outputs": ["style_statistics"]},
        "stylize": {"inputs": ["alpha", "images", "style_statistics"], "outputs": ["stylized"]}}
    ops = operator_names(arbitrary_converted["none"])
    assert {"CONV_2D", "MIRROR_PAD", "DEPTH_TO_SPACE"} <= ops  # both signatures' ops are listed
    assert not [op for op in ops if op.startswith("CUSTOM")], sorted(ops)  # Flex ops are custom ops


def operator_names(path):
    """The operators of every subgraph of a .tflite file: builtin names, or CUSTOM:<name> (Flex ops too)."""
    from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=import-outside-toplevel
    from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=import-outside-toplevel

    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    return {names[max(code.builtinCode, code.deprecatedBuiltinCode)]
            + (f":{code.customCode.decode()}" if code.customCode else "")
            for code in flatbuffer_utils.read_model(path).operatorCodes}


@pytest.mark.parametrize("quantize", litert.QUANTIZATIONS)
def test_arbitrary_signatures_match_the_keras_model(arbitrary_model, arbitrary_converted, photos, style_photo,
                                                    quantize):
    """Guards: the statistics' layout or slice differs from adain's; alpha ignored or inverted; the content not
    padded and cropped back at a size that is not a multiple of 8."""
    interpreter = litert.load_interpreter(arbitrary_converted[quantize])
    statistics = litert.style_statistics(interpreter, style_photo)
    expected_statistics = keras_statistics(arbitrary_model, style_photo)
    assert statistics.shape == (1, adain.STATISTICS_SIZE) and statistics.dtype == np.float32
    np.testing.assert_allclose(statistics, expected_statistics, rtol=STATISTICS_RTOL[quantize],
                               atol=STATISTICS_RTOL[quantize] * np.abs(expected_statistics).max())
    coffee = Image.fromarray(photos[0])
    outputs = {}
    for height, width in ARBITRARY_SIZES:
        image = np.asarray(coffee.resize((width, height), Image.BILINEAR))
        for alpha in (0.0, 0.5, 1.0):
            output = litert.stylize_arbitrary(interpreter, image, expected_statistics, alpha)
            expected = keras_stylized(arbitrary_model, image, expected_statistics, alpha)
            assert output.shape == image.shape and output.dtype == np.uint8
            error = np.abs(output.astype(int) - expected.astype(int))
            assert error.max() <= ARBITRARY_BOUNDS[quantize], (height, width, alpha, error.max(), error.mean())
            outputs[height, alpha] = output
    # alpha moves the result: 0 is the decoder's reconstruction of the content, 1 the style's.
    for height, _ in ARBITRARY_SIZES:
        assert np.abs(outputs[height, 0.0].astype(int) - outputs[height, 1.0]).mean() > 5
    # The pair equals the whole Keras model's one call (content, style, alpha).
    image = photos[1]
    whole = arbitrary_model({"content": image[None].astype(np.float32), "style": style_photo[None].astype(np.float32),
                             "alpha": np.array([0.7], np.float32)})
    error = np.abs(litert.stylize_arbitrary(interpreter, image, statistics, 0.7).astype(int)
                   - np.asarray(image_io.to_uint8(whole))[0])
    assert error.max() <= ARBITRARY_BOUNDS[quantize] + 1, error.max()


def test_arbitrary_quantised_files_are_smaller(arbitrary_converted):
    size = {quantize: os.path.getsize(path) for quantize, path in arbitrary_converted.items()}
    assert size["float16"] < 0.6 * size["none"] and size["dynamic_int8"] < 0.6 * size["float16"], size


def test_arbitrary_bad_arguments_are_user_errors(arbitrary_model, arbitrary_converted, tmp_path):
    with pytest.raises(UserInputError, match="quantize must be one of none, float16, dynamic_int8; received 'int4'"):
        litert.convert_arbitrary(arbitrary_model, "int4")
    with pytest.raises(UserInputError, match="learnt one style"):
        litert.convert_arbitrary(transformer.build_transformer(width_multiplier=0.25))
    with pytest.raises(UserInputError, match="already exists"):
        litert.export_arbitrary(arbitrary_model, arbitrary_converted["none"])


def test_export_command_converts_an_arbitrary_model(arbitrary_model, photos, style_photo, tmp_path):
    """Guards: the refusal left in; the .tflite not written beside the SavedModel, or left half-written."""
    arbitrary_model.save(str(tmp_path / "adain.keras"))
    result = run_export(f"--model={tmp_path / 'adain.keras'}", f"--export_dir={tmp_path / 'exports'}",
                        "--format=litert", "--quantize=none")
    assert result.returncode == 0, result.stderr
    version_dir = tmp_path / "exports" / "stylizer" / "1"
    assert f"tf-nst: wrote {version_dir / 'model.tflite'} (LiteRT, none, " in result.stdout
    assert [name for name in os.listdir(version_dir) if name.startswith(".tmp")] == []
    interpreter = litert.load_interpreter(str(version_dir / "model.tflite"))
    statistics = litert.style_statistics(interpreter, style_photo)
    expected = keras_stylized(arbitrary_model, photos[1], keras_statistics(arbitrary_model, style_photo), 1.0)
    assert np.abs(litert.stylize_arbitrary(interpreter, photos[1], statistics).astype(int) - expected).max() <= 1
    # Its SavedModel as --model: one line saying to convert the .keras file.
    again = run_export(f"--model={version_dir}", "--format=litert", f"--output={tmp_path / 'again.tflite'}")
    assert again.returncode == 2 and not os.path.exists(tmp_path / "again.tflite")
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds an arbitrary-style network, which converts to LiteRT from its .keras" in lines[0]


def test_export_command_bad_flags_on_an_arbitrary_model_are_one_line(arbitrary_model, tmp_path):
    arbitrary_model.save(str(tmp_path / "adain.keras"))
    (tmp_path / "taken.tflite").write_bytes(b"keep")
    for flag, message in ((f"--output={tmp_path / 'model.bin'}", "must end in .tflite for --format=litert"),
                          (f"--output={tmp_path / 'taken.tflite'}", "already exists"),
                          ("--quantize=int4", "--quantize")):
        result = run_export(f"--model={tmp_path / 'adain.keras'}", f"--export_dir={tmp_path / 'exports'}",
                            "--format=litert", flag)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert (tmp_path / "taken.tflite").read_bytes() == b"keep" and not os.path.exists(tmp_path / "exports")
