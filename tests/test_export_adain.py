"""The TF Serving export of an arbitrary-style network (tf_nst.adain): its five signatures through the TF1
session loader that TF Serving uses and through saved_model_cli, core ops only, the style embedding reused,
bad rows of either image refused one by one, warmup records, and the `export` CLI. The machinery it shares
with the one-style export is tested in test_export.py, whose helpers this file reuses."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import tiny_adain_model
from export import client
from export import saved_model
from test_export import (ROOT, SessionModel, _session_predict, assert_core_ops, assert_signatures_shown,
                         assert_within_one_level, decode_png, encode, header_only_png, saved_model_cli_run)
from test_export import fake_grpc_server, fake_rest_server  # noqa: F401  # pylint: disable=unused-import  # fixtures
from tf_nst import adain
from tf_nst import files
from tf_nst import image_io
from tf_nst import stylize
from tf_nst import transformer
from tf_nst.api import read_style_images
from tf_nst.errors import UserInputError

MAX_SIZE = 64  # the export under test downscales content images to this longer side
STYLE_SIZE = 32  # and resizes style images to this shorter side, as `stylize --style_size` does
RNG = np.random.default_rng(0)
CONTENT = RNG.integers(0, 256, (40, 56, 3), dtype=np.uint8)
STYLES = (np.asarray(Image.fromarray(RNG.integers(0, 256, (12, 12, 3), dtype=np.uint8)).resize((48, 48))),
          RNG.integers(60, 200, (33, 47, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def model():
    return tiny_adain_model()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model):
    return saved_model.export(model, str(tmp_path_factory.mktemp("exports")), max_size=MAX_SIZE,
                              style_size=STYLE_SIZE)


@pytest.fixture(scope="module")
def served(exported):
    session_model = SessionModel(exported)
    yield session_model
    session_model.session.close()


def sized(style):
    """The style as `stylize --style_size=STYLE_SIZE` reads it: its shorter side STYLE_SIZE, uint8."""
    return read_style_images(style, STYLE_SIZE)[0]


def reference(model, content, style, alpha=1.0, preserve_color="none"):
    """The in-memory network's uint8 result through stylize.py (the `stylize` command's path)."""
    return stylize.stylize_image(model, content, style=stylize.Style((sized(style),), alpha=alpha,
                                                                       preserve_color=preserve_color))


def pngs(*images):
    return np.array([encode(image) for image in images], dtype=object)


def test_saved_model_cli_shows_the_five_signatures(exported):
    string, png = ("DT_STRING", "(-1)"), {"output_bytes": ("DT_STRING", "(-1)"), "error": ("DT_STRING", "(-1)")}
    statistics = ("DT_FLOAT", f"(-1, {adain.STATISTICS_SIZE})")
    assert_signatures_shown(exported, {
        "serving_default": ({"content_bytes": string, "style_bytes": string}, png),
        "stylize_with_options": ({"content_bytes": string, "style_bytes": string, "alpha": ("DT_FLOAT", "(-1)"),
                                  "preserve_color": ("DT_BOOL", "(-1)")}, png),
        "style_embedding": ({"style_bytes": string}, {"style_statistics": statistics, "error": string}),
        "stylize_with_embedding": ({"content_bytes": string, "style_statistics": statistics,
                                    "alpha": ("DT_FLOAT", "(-1)")}, png),
        "stylize_images": ({"images": ("DT_UINT8", "(-1, -1, -1, 3)"),
                            "style_images": ("DT_UINT8", "(-1, -1, -1, 3)")},
                           {"stylized": ("DT_UINT8", "(-1, -1, -1, 3)")}),
    })


@pytest.mark.parametrize("signature", saved_model.ARBITRARY_SIGNATURES)
def test_saved_model_cli_runs_every_signature_like_the_keras_model(tmp_path, exported, model, signature):
    expected = np.stack([reference(model, CONTENT, STYLES[0]), reference(model, CONTENT, STYLES[1])])
    inputs = {"content_bytes": pngs(CONTENT, CONTENT), "style_bytes": pngs(*STYLES)}
    if signature == "stylize_with_options":
        inputs.update(alpha=np.array([1.0, 0.5], np.float32), preserve_color=np.array([False, True]))
        expected[1] = reference(model, CONTENT, STYLES[1], alpha=0.5, preserve_color="luminance")
    elif signature == "style_embedding":
        inputs = {"style_bytes": inputs["style_bytes"]}
    elif signature == "stylize_with_embedding":
        statistics = [adain.style_statistics(model, sized(style)[None].astype(np.float32)).numpy()
                      for style in STYLES]
        inputs = {"content_bytes": inputs["content_bytes"], "style_statistics": np.concatenate(statistics),
                  "alpha": np.array([1.0, 1.0], np.float32)}
    elif signature == "stylize_images":
        inputs = {"images": np.stack([CONTENT, CONTENT]), "style_images": np.stack([STYLES[0], STYLES[0]])}
        expected[1] = expected[0]
    results = saved_model_cli_run(tmp_path, exported, signature, inputs)
    if signature == "stylize_images":
        assert sorted(results) == ["stylized"] and results["stylized"].dtype == np.uint8
        assert_within_one_level(results["stylized"], expected)
    elif signature == "style_embedding":
        assert sorted(results) == ["error", "style_statistics"] and results["error"].tolist() == [b"", b""]
        for row, style in zip(results["style_statistics"], STYLES):
            ours = adain.style_statistics(model, sized(style)[None].astype(np.float32)).numpy()[0]
            np.testing.assert_allclose(row, ours, rtol=1e-4, atol=1e-4)
    else:
        assert sorted(results) == ["error", "output_bytes"] and results["error"].tolist() == [b"", b""]
        assert_within_one_level(np.stack([decode_png(data) for data in results["output_bytes"]]), expected)


def test_graph_and_every_function_use_only_core_ops(exported):
    ops = assert_core_ops(exported)
    assert {"While", "StatelessIf", "DecodeImage", "EncodePng", "Conv2D", "MirrorPad"} <= ops


def test_a_cached_style_embedding_gives_the_one_call_result(served):
    content = [encode(CONTENT), encode(CONTENT[::-1])]
    embedding = served.run("style_embedding", style_bytes=[encode(STYLES[0]), encode(STYLES[1])])
    assert embedding["error"].tolist() == [b"", b""]
    assert embedding["style_statistics"].shape == (2, adain.STATISTICS_SIZE)
    alpha = np.array([1.0, 0.4], np.float32)
    cached = served.run("stylize_with_embedding", content_bytes=content,
                        style_statistics=embedding["style_statistics"], alpha=alpha)
    direct = served.run("stylize_with_options", content_bytes=content,
                        style_bytes=[encode(STYLES[0]), encode(STYLES[1])], alpha=alpha,
                        preserve_color=[False, False])
    assert cached["error"].tolist() == direct["error"].tolist() == [b"", b""]
    for ours, theirs in zip(cached["output_bytes"], direct["output_bytes"]):
        assert_within_one_level(decode_png(ours), decode_png(theirs))
    assert np.abs(decode_png(cached["output_bytes"][0]).astype(int) - decode_png(cached["output_bytes"][1])).mean() > 5


def test_bad_rows_of_either_image_are_refused_one_by_one(served, model):
    good_content, good_style = encode(CONTENT), encode(STYLES[0])
    rows = [  # (content, style, pattern of the row's error)
        (good_content, good_style, r"^$"),
        (good_content, b"\xfe\xfa\x00junk", r"^style: not an image: .*\(hex\) fe fa 00 6a 75 6e 6b$"),
        (encode(CONTENT[:3, :3]), good_style, r"^content: image too small: 3 x 3 px; "),
        (good_content, header_only_png(100_000, 100_000),
         r"^style: image refused before decoding: its header claims 100000 x 100000 px"),
        (good_content, encode(np.resize(STYLES[0], (20, 300, 3))),
         r"^style: image too elongated: 20 x 300 px, 32 x 480 px once resized to a shorter side of 32 px, more "
         r"than 64 x 64 pixels$"),
    ]
    outputs = served.run("serving_default", content_bytes=[row[0] for row in rows],
                         style_bytes=[row[1] for row in rows])
    for (_, _, pattern), error, output in zip(rows, outputs["error"], outputs["output_bytes"]):
        assert re.search(pattern, error.decode()), error
        assert (output == b"") == bool(pattern != "^$")
    assert_within_one_level(decode_png(outputs["output_bytes"][0]), reference(model, CONTENT, STYLES[0]))
    embedding = served.run("style_embedding", style_bytes=[good_style, b"", encode(STYLES[1][:3])])
    assert [bool(error) for error in embedding["error"]] == [False, True, True]
    assert not embedding["style_statistics"][1:].any() and embedding["style_statistics"][0].any()
    statistics = np.repeat(embedding["style_statistics"][:1], 3, axis=0)
    statistics[1, 0] = np.nan
    cached = served.run("stylize_with_embedding", content_bytes=[good_content] * 3, style_statistics=statistics,
                        alpha=np.array([1.0, 1.0, 1.5], np.float32))
    assert cached["error"][0] == b"" and b"style_statistics must be finite" in cached["error"][1]
    assert cached["error"][2] == b"alpha must be in [0, 1]; received 1.500000"


def test_a_corrupt_or_tiny_style_fails_only_its_own_row(served, model):
    good_content, good_style = encode(CONTENT), encode(STYLES[0])
    truncated = good_style[:120]  # a good PNG header, a body cut short
    tiny = encode(STYLES[0][:1, :1])
    outputs = served.run("serving_default", content_bytes=[good_content] * 4,
                         style_bytes=[truncated, good_style, tiny, good_style[:40]])
    errors = [error.decode() for error in outputs["error"]]
    assert errors[0] == errors[3] == ("style: not an image: its data cannot be decoded (a corrupt or truncated "
                                      "body behind a valid header)")
    assert errors[1] == "" and errors[2].startswith("style: image too small: 1 x 1 px; tf_nst needs at least 16 px")
    assert_within_one_level(decode_png(outputs["output_bytes"][1]), reference(model, CONTENT, STYLES[0]))
    embedding = served.run("style_embedding", style_bytes=[truncated, good_style, tiny])
    assert [bool(error) for error in embedding["error"]] == [True, False, True]
    with pytest.raises(tf.errors.InvalidArgumentError, match="style_images too small: each side must be at least"):
        served.run("stylize_images", images=CONTENT[None], style_images=STYLES[0][None, :1, :1])


def test_the_served_style_is_sized_as_stylize_sizes_it(tmp_path, served, model):
    """Planted: the style downscaled to max_size on its longer side (the old rule: 21 x 64 px here, where
    `stylize --style_size=32` reads 32 x 96)."""
    noise = RNG.integers(0, 256, (10, 30, 3), dtype=np.uint8)
    Image.fromarray(noise).resize((120, 40), Image.NEAREST).save(tmp_path / "wide_style.png")
    Image.fromarray(CONTENT).save(tmp_path / "content.png")
    style = stylize.Style(stylize.read_styles([str(tmp_path / "wide_style.png")], STYLE_SIZE))
    assert style.images[0].shape == (32, 96, 3)
    written = stylize.stylize_files(model, [(str(tmp_path / "content.png"), str(tmp_path / "out.png"))],
                                    style=style).written
    expected = np.asarray(Image.open(written[0]))
    outputs = served.run("serving_default", content_bytes=[(tmp_path / "content.png").read_bytes()],
                         style_bytes=[(tmp_path / "wide_style.png").read_bytes()])
    assert outputs["error"].tolist() == [b""]
    assert_within_one_level(decode_png(outputs["output_bytes"][0]), expected)
    images = served.run("stylize_images", images=CONTENT[None], style_images=np.asarray(
        Image.open(tmp_path / "wide_style.png"))[None])["stylized"]
    assert_within_one_level(images[0], expected)
    longer_side = np.asarray(image_io.to_uint8(image_io.resize_max_side(np.asarray(
        Image.open(tmp_path / "wide_style.png")), MAX_SIZE)))  # the two rules give different pictures here
    old_rule = stylize.stylize_image(model, CONTENT, style=stylize.Style((longer_side,)))
    assert np.abs(old_rule.astype(int) - expected).max() > 2


def test_a_style_size_above_the_max_size_is_refused(tmp_path, model):
    with pytest.raises(UserInputError, match="style size 128 is more than max size 64: every style would be "
                                             "refused"):
        saved_model.export(model, str(tmp_path), max_size=MAX_SIZE, style_size=128)
    with pytest.raises(UserInputError, match="style size must be at least 16 pixels; received 8"):
        saved_model.export(model, str(tmp_path), max_size=MAX_SIZE, style_size=8)
    assert not os.listdir(tmp_path)


def test_inputs_of_different_lengths_are_invalid_argument(served):
    with pytest.raises(tf.errors.InvalidArgumentError, match="give one style_bytes per image"):
        served.run("serving_default", content_bytes=[encode(CONTENT)] * 2, style_bytes=[encode(STYLES[0])])


def test_warmup_records_replay_every_signature(exported, served):
    from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=import-outside-toplevel

    path = os.path.join(exported, saved_model.WARMUP_FILE)
    requests = [prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
                for record in tf.data.TFRecordDataset(path)]
    assert sorted(r.model_spec.signature_name for r in requests) == sorted(saved_model.ARBITRARY_SIGNATURES)
    for request in requests:
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        assert set(inputs) == set(served.signatures[request.model_spec.signature_name].inputs)
        outputs = served.run(request.model_spec.signature_name, **inputs)
        assert list(outputs.get("error", [b""])) == [b""]
        assert all(len(value) == 1 for value in outputs.values())


def test_export_cli_writes_the_layout_with_the_five_signatures(tmp_path, model):
    """Planted: --style_size not passed on to the export."""
    model_path = str(tmp_path / files.MODEL_FILE)
    model.save(model_path)

    def export_command(*args, path=model_path):
        return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "export", f"--model={path}",
                               f"--export_dir={tmp_path / 'exports'}", *args],
                              capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)

    result = export_command(f"--export_max_size={MAX_SIZE}", f"--style_size={STYLE_SIZE}")
    assert result.returncode == 0, result.stderr
    assert f"signatures: {', '.join(saved_model.ARBITRARY_SIGNATURES)}" in result.stdout
    assert sorted(os.listdir(tmp_path / "exports")) == sorted([saved_model.MODELS_CONFIG,
                                                               saved_model.BATCHING_PARAMETERS, "stylizer"])
    assert os.path.isfile(tmp_path / "exports" / "stylizer" / "1" / saved_model.WARMUP_FILE)
    # --format=litert on this model: tests/test_litert.py (test_export_command_converts_an_arbitrary_model).
    embedding = tf.saved_model.load(str(tmp_path / "exports" / "stylizer" / "1")).signatures["style_embedding"](
        style_bytes=tf.constant([encode(STYLES[1])]))["style_statistics"].numpy()
    ours = adain.style_statistics(model, sized(STYLES[1])[None].astype(np.float32)).numpy()
    np.testing.assert_allclose(embedding, ours, rtol=1e-4, atol=1e-4)
    result = export_command(f"--export_max_size={MAX_SIZE}", "--style_size=128")
    assert result.returncode == 2 and "--style_size=128 is more than --export_max_size=64" in result.stderr
    one_style = str(tmp_path / "one_style.keras")
    transformer.build_transformer(width_multiplier=0.25).save(one_style)
    result = export_command("--style_size=256", path=one_style)
    assert result.returncode == 2 and "takes no style image, so no --style_size" in result.stderr
    assert sorted(os.listdir(tmp_path / "exports" / "stylizer")) == ["1"]


# --- serve-request and the client, against fake servers answering from the session-loaded SavedModel --------

def _content_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(CONTENT).save(folder / "a.png")
    Image.fromarray(CONTENT[::-1]).save(folder / "b.bmp")
    Image.fromarray(STYLES[1]).save(tmp_path / "style.png")
    return folder


def test_serve_request_cli_sends_the_style_over_rest(tmp_path, fake_rest_server, model):
    folder = _content_folder(tmp_path)

    def serve_request(style):
        return subprocess.run(
            [sys.executable, os.path.join(ROOT, "main.py"), "serve-request", f"--input={folder}",
             f"--output_dir={tmp_path / 'out'}", f"--server={fake_rest_server}", f"--style={style}",
             "--overwrite"], capture_output=True, text=True, timeout=300, check=False)

    result = serve_request(tmp_path / "style.png")
    assert result.returncode == 0, result.stderr
    for name, content in (("a.png", CONTENT), ("b.bmp", CONTENT[::-1])):
        assert_within_one_level(np.asarray(Image.open(tmp_path / "out" / name)), reference(model, content, STYLES[1]))
    # Readable here, but too long once the server resizes it to STYLE_SIZE: every row is refused.
    Image.fromarray(np.resize(STYLES[1], (20, 300, 3))).save(tmp_path / "thin.png")
    result = serve_request(tmp_path / "thin.png")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"tf-nst: skipped {folder / name}: style: image too elongated: 20 x 300 px, 32 x 480 px once resized to "
        "a shorter side of 32 px, more than 64 x 64 pixels" for name in ("a.png", "b.bmp")]
    Image.fromarray(STYLES[1][:8, :8]).save(tmp_path / "small.png")  # refused before any request
    result = serve_request(tmp_path / "small.png")
    assert result.returncode == 2 and "is 8x8 px; tf_nst needs at least 16 px" in result.stderr
    result = serve_request(f"{tmp_path / 'style.png'},{tmp_path / 'style.png'}")
    assert result.returncode == 2 and "serve-request sends one style file" in result.stderr


def test_grpc_client_sends_the_style(tmp_path, served, fake_grpc_server, model):
    server = fake_grpc_server(_session_predict(served))
    folder = _content_folder(tmp_path)
    pairs = [(str(folder / "a.png"), str(tmp_path / "out" / "a.png"))]
    result = client.stylize_files(pairs, server, "stylizer", protocol="grpc",
                                  style=(tmp_path / "style.png").read_bytes())
    assert result.written == (pairs[0][1],) and not result.failed
    assert_within_one_level(np.asarray(Image.open(pairs[0][1])), reference(model, CONTENT, STYLES[1]))


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory, model):
    path = str(tmp_path_factory.mktemp("model") / files.MODEL_FILE)
    model.save(path)
    return path


@pytest.mark.parametrize("options", [
    {"alpha": 0.5},
    {"style_blend_weights": (1.4, 0.6), "alpha": 0.8},  # weights summing to 2: normalised
    {"preserve_color": "luminance"},
], ids=["alpha", "blend", "luminance"])
def test_load_stylizer_on_an_export_gives_the_keras_models_picture(tmp_path, exported, keras_file, options):
    """Planted: alpha not passed to the export; the blend's weights ignored, or not normalised; preserve_color
    dropped."""
    import tf_nst  # pylint: disable=import-outside-toplevel

    Image.fromarray(STYLES[0]).save(tmp_path / "style.png")
    style = str(tmp_path / "style.png") if "style_blend_weights" not in options else [str(tmp_path / "style.png"),
                                                                                    STYLES[1]]
    images = np.stack([CONTENT, CONTENT[::-1]])
    served = tf_nst.load_stylizer(exported)(images, style=style, **options)
    local = tf_nst.load_stylizer(keras_file)(images, style=style, style_size=STYLE_SIZE, **options)
    assert served.dtype == np.uint8 and served.shape == images.shape
    assert np.abs(served.astype(int) - local).max() <= 1
    single = tf_nst.load_stylizer(exported)(CONTENT, style=style, **options)
    np.testing.assert_array_equal(single, served[0])


def test_load_stylizer_on_an_export_refuses_what_its_signatures_cannot_do(exported):
    import tf_nst  # pylint: disable=import-outside-toplevel

    stylizer = tf_nst.load_stylizer(exported)
    with pytest.raises(UserInputError, match="is an arbitrary-style network; give it style="):
        stylizer(CONTENT)
    with pytest.raises(UserInputError, match=r"resizes each style by the --style_size it was exported with; "
                                             r"leave style_size unset \(received 64\)$"):
        stylizer(CONTENT, style=STYLES[0], style_size=64)
    for color, styles in (("histogram", STYLES[0]), ("luminance", list(STYLES))):
        with pytest.raises(UserInputError, match=f"takes preserve_color 'none' \\(with any blend of styles\\) or "
                                                 f"'luminance' with one style; received '{color}'"):
            stylizer(CONTENT, style=styles, preserve_color=color)
    with pytest.raises(UserInputError, match=r"alpha must be in \[0, 1\]; received 2"):
        stylizer(CONTENT, style=STYLES[0], alpha=2)
    with pytest.raises(UserInputError, match="refuses style 2 of 2: image too elongated: 20 x 300 px"):
        stylizer(CONTENT, style=[STYLES[0], np.resize(STYLES[0], (20, 300, 3))])
    with pytest.raises(UserInputError, match="refuses image 1 of 1: image too small: 20 x 300 px, 4 x 64 px"):
        stylizer(np.resize(CONTENT, (20, 300, 3)), style=STYLES[0])
