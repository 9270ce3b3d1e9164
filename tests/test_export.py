"""The TF Serving export, proven offline: the TF1 session loader TF Serving uses, saved_model_cli, the ops in
the graph, warmup records, server config, the REST and gRPC client, Keras TFSMLayer and the `export` CLI."""

import base64
import concurrent.futures
import hashlib
import http.server
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import zlib

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from PIL import Image
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from export import client, saved_model
from tf_nst import transformer
from tf_nst.errors import UserInputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_SIZE = 64  # the export under test downscales encoded images to this longer side


# --- Fixtures: one small model, exported once; its SavedModel loaded as TF Serving loads it ----------------

@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return transformer.build_transformer(width_multiplier=0.25)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model):
    export_dir = str(tmp_path_factory.mktemp("exports"))
    return saved_model.export(model, export_dir, max_size=MAX_SIZE)


class SessionModel:
    """The SavedModel in a TF1 Session, loaded by tf.compat.v1.saved_model.loader: TF Serving's loader."""

    def __init__(self, path):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], path)
        self.signatures = meta_graph.signature_def

    def run(self, signature_name, **inputs):
        signature = self.signatures[signature_name]
        unknown = sorted(set(inputs) - set(signature.inputs))
        if unknown:
            raise KeyError(unknown[0])  # (a protobuf map would give an empty TensorInfo)
        feed = {signature.inputs[name].name: value for name, value in inputs.items()}
        names = sorted(signature.outputs)
        values = self.session.run([signature.outputs[name].name for name in names], feed_dict=feed)
        return dict(zip(names, values))


@pytest.fixture(scope="module")
def served(exported):
    session_model = SessionModel(exported)
    yield session_model
    session_model.session.close()


@pytest.fixture(scope="module")
def photos(image_files):
    """Small RGB test images of several sizes (the coffee photo from scikit-image, resized)."""
    source = Image.open(image_files["coffee"]).convert("RGB")
    return {size: np.asarray(source.resize((size[1], size[0]), Image.BILINEAR))
            for size in ((40, 56), (33, 47), (48, 30), (80, 96))}


def encode(image, fmt="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return buffer.getvalue()


def decode_png(data):
    assert data.startswith(b"\x89PNG")
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def reference(model, images):
    """The in-memory Keras model's uint8 result for uint8 images [H, W, 3] or [N, H, W, 3]."""
    batch = np.asarray(images)[None] if np.ndim(images) == 3 else np.asarray(images)
    output = np.clip(np.round(np.asarray(model(batch.astype(np.float32), training=False))), 0, 255)
    output = output.astype(np.uint8)
    return output[0] if np.ndim(images) == 3 else output


def assert_within_one_level(actual, expected):
    assert actual.shape == expected.shape
    assert np.abs(actual.astype(int) - expected.astype(int)).max() <= 1


def luma(rgb):
    return np.asarray(rgb, np.float64) @ np.array([0.299, 0.587, 0.114])


def chroma(rgb):
    """U and V (BT.601, as tf.image.rgb_to_yuv): scaled B - Y and R - Y, in [0, 255] units."""
    rgb = np.asarray(rgb, np.float64)
    y = luma(rgb)
    return np.stack([0.492 * (rgb[..., 2] - y), 0.877 * (rgb[..., 0] - y)], axis=-1)


def header_only_png(width, height):
    """A PNG whose header claims width x height, with almost no pixel data (a decompression bomb stand-in)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


# --- saved_model_cli: the signatures as TF Serving sees them, run by the TF1 session loader ---------------

def saved_model_cli(*args):
    result = subprocess.run(["saved_model_cli", *args], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_saved_model_cli_shows_the_three_signatures(exported):
    assert_signatures_shown(exported, {
        "serving_default": ({"image_bytes": ("DT_STRING", "(-1)")},
                            {"output_bytes": ("DT_STRING", "(-1)"), "error": ("DT_STRING", "(-1)")}),
        "stylize_with_options": ({"image_bytes": ("DT_STRING", "(-1)"), "strength": ("DT_FLOAT", "(-1)"),
                                  "preserve_color": ("DT_BOOL", "(-1)")},
                                 {"output_bytes": ("DT_STRING", "(-1)"), "error": ("DT_STRING", "(-1)")}),
        "stylize_images": ({"images": ("DT_UINT8", "(-1, -1, -1, 3)")},
                           {"stylized": ("DT_UINT8", "(-1, -1, -1, 3)")}),
    })


def test_signature_names_are_read_from_saved_model_pb_as_the_protobuf_library_reads_them(exported, tmp_path):
    """files.exported_signatures walks the wire format by hand (no TensorFlow before the flags are checked)."""
    from tf_nst import files  # pylint: disable=import-outside-toplevel

    message = saved_model_pb2.SavedModel()
    with open(os.path.join(exported, "saved_model.pb"), "rb") as pb:
        message.ParseFromString(pb.read())
    expected = {name for graph in message.meta_graphs for name in graph.signature_def}
    assert set(files.exported_signatures(exported)) == expected
    assert "serving_default" in expected and not files.is_arbitrary_export(exported)
    # A second meta graph with another signature: every graph's names are read.
    extra = message.meta_graphs.add()
    extra.signature_def["style_embedding"].method_name = "tensorflow/serving/predict"
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "saved_model.pb").write_bytes(message.SerializeToString())
    assert set(files.exported_signatures(tmp_path / "two")) == expected | {"style_embedding"}
    assert files.is_arbitrary_export(tmp_path / "two")
    # Not a protobuf, cut short, or missing: no names (loading it later says why).
    (tmp_path / "bad").mkdir()
    for data in (b"\x12\xff\xff\xff\xff\x0f", message.SerializeToString()[:-7]):
        (tmp_path / "bad" / "saved_model.pb").write_bytes(data)
        assert files.exported_signatures(tmp_path / "bad") == ()
    assert files.exported_signatures(tmp_path / "missing") == ()


def assert_signatures_shown(exported, expected):
    """Asserts that `saved_model_cli show` lists each signature of `expected` {name: (inputs, outputs)}, each
    {tensor name: (dtype, shape)}, as a Predict method."""
    shown = saved_model_cli("show", "--dir", exported, "--all")
    blocks = {name: (block, method) for name, block, method in re.findall(
        r"signature_def\['(\w+)'\]:\n(.*?)Method name is: ([^\n]*)", shown, re.S)}
    assert set(expected) <= set(blocks)
    for name, (inputs, outputs) in expected.items():
        block, method = blocks[name]
        assert method == "tensorflow/serving/predict"
        inputs_part, outputs_part = block.split("contains the following output(s):")
        for part, tensors in ((inputs_part, inputs), (outputs_part, outputs)):
            found = dict((key, (dtype, shape)) for key, dtype, shape in re.findall(
                r"\w+\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))", part))
            assert found == tensors, (name, found)


@pytest.mark.parametrize("signature", saved_model.SIGNATURES)
def test_saved_model_cli_runs_every_signature_like_the_keras_model(tmp_path, exported, model, photos,
                                                                   signature):
    content = photos[(40, 56)]
    expected = reference(model, content)
    if signature == "stylize_images":
        inputs = {"images": np.stack([content, content[::-1]])}
        expected = reference(model, inputs["images"])
    else:
        inputs = {"image_bytes": np.array([encode(content)] * 2, dtype=object)}
        if signature == "stylize_with_options":
            inputs["strength"] = np.array([1.0, 0.5], np.float32)
            inputs["preserve_color"] = np.array([False, True])
            # Row 2: luminance-only transfer (every channel shifted by the luma difference), half strength.
            shifted = content + (luma(expected) - luma(content))[..., None]
            expected = np.stack([expected, np.clip(np.round(0.5 * content + 0.5 * shifted), 0, 255)])
        else:
            expected = np.stack([expected, expected])
    results = saved_model_cli_run(tmp_path, exported, signature, inputs)
    if signature != "stylize_images":
        assert sorted(results) == ["error", "output_bytes"]
        assert results["error"].tolist() == [b"", b""]
        outputs = np.stack([decode_png(data) for data in results["output_bytes"]])
    else:
        outputs = results["stylized"]
        assert sorted(results) == ["stylized"] and outputs.dtype == np.uint8
    assert_within_one_level(outputs, expected.astype(np.uint8))


def saved_model_cli_run(tmp_path, exported, signature, inputs):
    """`saved_model_cli run` on one signature with {input name: numpy value}: {output name: numpy value}."""
    arguments = []
    for name, value in inputs.items():
        np.save(str(tmp_path / f"{name}.npy"), value)
        arguments.append(f"{name}={tmp_path / f'{name}.npy'}")
    saved_model_cli("run", "--dir", exported, "--tag_set", "serve", "--signature_def", signature,
                    "--inputs", ";".join(arguments), "--outdir", str(tmp_path / "out"))
    return {name[:-len(".npy")]: np.load(str(tmp_path / "out" / name), allow_pickle=True)
            for name in os.listdir(tmp_path / "out")}


# --- The graph: core TensorFlow ops only ------------------------------------------------------------------

def test_graph_and_every_function_use_only_core_ops(exported):
    ops = assert_core_ops(exported)
    # The walk reached the map_fn loop bodies and the branches that hold the image ops.
    assert {"While", "StatelessIf", "DecodeImage", "EncodePng", "DecodeRaw", "AsString", "Conv2D"} <= ops


def assert_core_ops(exported):
    """Asserts that the served graph and every function in its library use core TensorFlow ops only, with no
    Python callback and no XLA; returns the set of ops seen."""
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(exported, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    (meta_graph,) = [m for m in saved.meta_graphs if "serve" in m.meta_info_def.tags]
    library = meta_graph.graph_def.library.function
    function_names = {function.signature.name for function in library}
    nodes = list(meta_graph.graph_def.node) + [node for function in library for node in function.node_def]
    ops = {node.op for node in nodes}
    problems = []
    for node in nodes:
        if node.op in function_names:
            continue  # a call of a function in the library, itself checked
        if op_def_registry.get(node.op) is None or not hasattr(tf.raw_ops, node.op):
            problems.append(f"{node.name}: {node.op} is not a core TensorFlow op")
        if node.op in ("PyFunc", "EagerPyFunc", "PyFuncStateless") or node.op.startswith("Xla"):
            problems.append(f"{node.name}: {node.op}")
        if "_XlaMustCompile" in node.attr and node.attr["_XlaMustCompile"].b:
            problems.append(f"{node.name}: {node.op} must be compiled with XLA")
    assert not problems, problems
    return ops


# --- Requests through the session loader ------------------------------------------------------------------

def test_one_request_with_images_of_different_sizes_and_formats(served, model, photos):
    rows = [(photos[(40, 56)], "PNG"), (photos[(33, 47)], "BMP"), (photos[(48, 30)], "JPEG"),
            (photos[(80, 96)], "GIF")]
    outputs = served.run("serving_default", image_bytes=[encode(image, fmt) for image, fmt in rows])
    assert outputs.pop("error").tolist() == [b""] * 4
    (outputs,) = outputs.values()
    sizes = [decode_png(data).shape for data in outputs]
    # The 80x96 GIF is larger than MAX_SIZE: downscaled, antialiased, to a longer side of 64.
    assert sizes == [(40, 56, 3), (33, 47, 3), (48, 30, 3), (53, 64, 3)]
    assert_within_one_level(decode_png(outputs[1]), reference(model, photos[(33, 47)]))


def jpeg_claiming(image, height, width):
    """A JPEG of `image` whose frame header (SOF0) is rewritten to claim height x width."""
    data = bytearray(encode(image, "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# The error of a row whose header passes and whose body the decoder refuses.
CORRUPT = r"^not an image: its data cannot be decoded \(a corrupt or truncated body behind a valid header\)$"


def corrupt_rows(image):
    """{kind: bytes}: a good header, a body the decoder refuses."""
    png, jpeg = encode(image), encode(image, "JPEG")
    bad_crc = bytearray(png)
    bad_crc[-13] ^= 0xFF  # the last byte of the IDAT chunk's CRC (IEND's 12 bytes follow)
    return {"PNG with a bad CRC": bytes(bad_crc), "truncated PNG": png[:len(png) // 2],
            "truncated JPEG": jpeg[:len(jpeg) // 2], "bare PNG header": png[:40],
            "PNG header without its pixels": header_only_png(500, 500)}


def bad_rows(photos):
    """{kind: (bytes, pattern its error matches)}: rows that the byte signatures refuse, each in its own row:
    from their header, or (the corrupt ones) once the decoder refuses them."""
    image = photos[(40, 56)]
    jpeg = encode(image, "JPEG")
    return {**{kind: (data, CORRUPT) for kind, data in corrupt_rows(image).items()},
        "empty": (b"", r"^not an image: the bytes are empty$"),
        "random bytes": (b"\xfe\xfa\x00garbage \xff\xfe" + np.random.default_rng(0).bytes(300),
                         r"^not an image: the bytes are not JPEG, PNG, GIF, BMP .*\(hex\) fe fa 00 67 61 72 62 61$"),
        "WebP": (encode(image, "WEBP"), r"^not an image: .*\(WebP is not served\).*\(hex\) 52 49 46 46 "),
        "3x3": (encode(image[:3, :3]), r"^image too small: 3 x 3 px; .*at least 16 px on each side"),
        "thin once downscaled": (encode(np.resize(image, (20, 300, 3))),
                                 r"^image too small: 20 x 300 px, 4 x 64 px once downscaled to 64 px; "),
        "huge PNG header": (header_only_png(100_000, 100_000),
                            r"^image refused before decoding: its header claims 100000 x 100000 px, more than "),
        "huge JPEG header": (jpeg_claiming(image, 65_000, 65_000),
                             r"^image refused before decoding: its header claims 65000 x 65000 px"),
        "zero size": (header_only_png(0, 10), r"^image header gives a zero or negative size: 10 x 0 px$"),
        "JPEG cut before its frame": (jpeg[:jpeg.index(b"\xff\xc0")],
                                      r"^not an image: a JPEG whose frame header \(SOFn\) was not found$"),
    }


def good_rows(photos):
    return [encode(photos[(40, 56)]), encode(photos[(33, 47)], "JPEG"), encode(photos[(80, 96)], "GIF")]


def assert_refused(outputs, index, pattern):
    error = outputs["error"][index].decode("ascii")  # hex-quoted: always ASCII
    assert outputs["output_bytes"][index] == b"" and re.search(pattern, error), error
    assert "\n" not in error


def test_bad_rows_are_refused_one_by_one_and_good_rows_in_the_same_call_are_stylised(served, photos):
    good = good_rows(photos)
    alone = served.run("serving_default", image_bytes=good)
    assert alone["error"].tolist() == [b""] * len(good)
    bad = bad_rows(photos)
    # Each bad row between the good ones, then all of them in one call.
    calls = [[kind] for kind in bad] + [list(bad)]
    for kinds in calls:
        rows = [good[0], *(bad[kind][0] for kind in kinds), *good[1:]]
        outputs = served.run("serving_default", image_bytes=rows)
        for index, kind in enumerate(kinds, start=1):
            assert_refused(outputs, index, bad[kind][1])
        for index, expected in zip((0, len(rows) - 2, len(rows) - 1), alone["output_bytes"]):
            assert outputs["error"][index] == b""
            assert_within_one_level(decode_png(outputs["output_bytes"][index]), decode_png(expected))


def test_options_refuse_bad_rows_and_bad_strengths_one_by_one(served, photos):
    good = encode(photos[(40, 56)])
    (bad, pattern), = [bad_rows(photos)["huge PNG header"]]
    outputs = served.run("stylize_with_options", image_bytes=[good, bad, good, good, good],
                         strength=np.array([1.0, 1.0, 1.5, np.nan, 0.0], np.float32),
                         preserve_color=np.array([False, False, False, True, False]))
    assert_refused(outputs, 1, pattern)
    assert_refused(outputs, 2, r"^strength must be in \[0, 1\]; received 1.5")
    assert_refused(outputs, 3, r"^strength must be in \[0, 1\]; received nan$")
    assert outputs["error"][[0, 4]].tolist() == [b"", b""]
    assert_within_one_level(decode_png(outputs["output_bytes"][0]),
                            decode_png(served.run("serving_default", image_bytes=[good])["output_bytes"][0]))
    np.testing.assert_array_equal(decode_png(outputs["output_bytes"][4]), photos[(40, 56)])


def test_a_corrupt_body_behind_a_good_header_fails_only_its_own_row(served, photos):
    """The header passes the check, so only the decoder finds the fault: each row is decoded where its error
    is caught (image_io.try_decode), in every byte signature; the rows around it are stylised."""
    good = encode(photos[(40, 56)])
    corrupt = list(corrupt_rows(photos[(40, 56)]).values())
    expected = decode_png(served.run("serving_default", image_bytes=[good])["output_bytes"][0])
    count = len(corrupt) + 2
    outputs = served.run("stylize_with_options", image_bytes=[good, *corrupt, good],
                         strength=np.ones(count, np.float32), preserve_color=np.zeros(count, bool))
    for index in range(1, count - 1):
        assert_refused(outputs, index, CORRUPT)
    for index in (0, count - 1):
        assert outputs["error"][index] == b""
        assert_within_one_level(decode_png(outputs["output_bytes"][index]), expected)


# --- Mixed traffic from many threads: what TF Serving's batching makes of several clients' requests ---------

def mixed_request(served, good, expected, bad, index):
    """One request of mixed traffic, checked: two good rows around a bad one (kind by `index`, the corrupt
    bodies included)."""
    row, pattern = bad[index % len(bad)]
    rows = [good, row, good]
    outputs = served.run("serving_default", image_bytes=rows)
    assert_refused(outputs, 1, pattern)
    for index in (0, 2):
        assert outputs["error"][index] == b""
        assert_within_one_level(decode_png(outputs["output_bytes"][index]), expected)


def mixed_traffic(served, photos, calls, threads=8):
    good = encode(photos[(40, 56)])
    expected = decode_png(served.run("serving_default", image_bytes=[good])["output_bytes"][0])
    bad = list(bad_rows(photos).values())
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(mixed_request, served, good, expected, bad, index) for index in range(calls)]
    for future in futures:
        future.result()  # raises what the request raised: an assertion, or any exception


def test_eight_threads_of_mixed_traffic_raise_nothing(served, photos):
    mixed_traffic(served, photos, calls=80)


def _rss_mb():
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_memory_stays_flat_over_rounds_of_mixed_traffic(served, photos):
    mixed_traffic(served, photos, calls=40)  # warm-up: graphs, thread pools and the allocator's pools
    before = _rss_mb()
    after = []
    for _ in range(4):
        mixed_traffic(served, photos, calls=40)
        after.append(_rss_mb())
    # It grew by 0.04 MB on the development machine. 128 requests succeed with 3 rows each: a leak of each
    # row's decoded float image (26 KB) would add 10 MB.
    assert max(after) - before < 8, (before, after)


def test_strength_zero_returns_the_content_and_preserve_color_keeps_its_chroma(served, model, photos):
    content = photos[(40, 56)]
    outputs = served.run("stylize_with_options", image_bytes=[encode(content)] * 3,
                         strength=np.array([0.0, 1.0, 1.0], np.float32),
                         preserve_color=np.array([False, True, False]))["output_bytes"]
    unchanged, colour_kept, stylized = (decode_png(data) for data in outputs)
    np.testing.assert_array_equal(unchanged, content)  # PNG is lossless and the blend is exact at 0
    assert_within_one_level(stylized, reference(model, content))
    # The chroma of the colour-kept result is the content's wherever no channel was clipped to 0 or 255.
    inside = np.all((colour_kept > 0) & (colour_kept < 255), axis=-1)
    assert inside.mean() > 0.5
    assert np.abs(chroma(colour_kept) - chroma(content))[inside].max() <= 1.5
    # ... while its brightness is the stylised image's: the styled result really differs from the content.
    assert np.abs(luma(colour_kept) - luma(stylized))[inside].max() <= 1.5
    assert np.abs(chroma(stylized) - chroma(content)).mean() > 3


def test_options_of_another_length_than_the_images_are_invalid_argument(served, photos):
    image = encode(photos[(40, 56)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="one strength per image"):
        served.run("stylize_with_options", image_bytes=[image, image], strength=[0.5],
                   preserve_color=[False, True])


# --- Warmup records and server config ---------------------------------------------------------------------

def test_warmup_records_parse_and_replay_through_the_session_loader(exported, served):
    path = os.path.join(exported, "assets.extra", "tf_serving_warmup_requests")
    logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(path)]
    requests = [log.predict_log.request for log in logs]
    assert sorted(request.model_spec.signature_name for request in requests) == sorted(saved_model.SIGNATURES)
    for request in requests:
        assert request.model_spec.name == "stylizer"
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        assert set(inputs) == set(served.signatures[request.model_spec.signature_name].inputs)
        outputs = served.run(request.model_spec.signature_name, **inputs)
        for value in outputs.values():
            assert len(value) == 1


def _batching_parameters_class():
    """BatchingParameters, to parse batching_parameters.txt as the server does.

    Transcribed from tensorflow_serving/servables/tensorflow/session_bundle_config.proto, which the pip
    package does not ship.
    """
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(name="batching.proto", package="tensorflow.serving",
                                               dependency=["google/protobuf/wrappers.proto"], syntax="proto3")
    message = proto.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    wrapped = ((1, "max_batch_size", "Int64Value"), (2, "batch_timeout_micros", "Int64Value"),
               (3, "max_enqueued_batches", "Int64Value"), (4, "num_batch_threads", "Int64Value"),
               (5, "thread_pool_name", "StringValue"))
    for number, name, type_name in wrapped:
        message.field.add(name=name, number=number, type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL,
                          type_name=f".google.protobuf.{type_name}")
    message.field.add(name="allowed_batch_sizes", number=6, type=field.TYPE_INT64, label=field.LABEL_REPEATED)
    message.field.add(name="pad_variable_length_inputs", number=7, type=field.TYPE_BOOL,
                      label=field.LABEL_OPTIONAL)
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def test_models_config_and_batching_parameters_parse(exported):
    export_dir = os.path.dirname(os.path.dirname(exported))
    with open(os.path.join(export_dir, "models.config"), encoding="utf-8") as f:
        server_config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    (model_config,) = server_config.model_config_list.config
    assert (model_config.name, model_config.base_path, model_config.model_platform) == (
        "stylizer", "/models/stylizer", "tensorflow")
    with open(os.path.join(export_dir, "batching_parameters.txt"), encoding="utf-8") as f:
        batching = text_format.Parse(f.read(), _batching_parameters_class()())
    assert batching.max_batch_size.value == 8 and batching.num_batch_threads.value >= 1
    assert not batching.pad_variable_length_inputs
    assert not [name for name in os.listdir(export_dir) if name.startswith(".tmp")]


def test_versions_are_never_overwritten_and_names_are_checked(exported, model):
    export_dir = os.path.dirname(os.path.dirname(exported))
    with pytest.raises(UserInputError, match="version 1 of 'stylizer' already exists"):
        saved_model.export(model, export_dir, version=1)
    with pytest.raises(UserInputError, match="model name"):
        saved_model.export(model, export_dir, model_name="../escape")
    assert saved_model.next_version(os.path.join(export_dir, "stylizer")) == 2


# --- The client: REST JSON and gRPC, against the exported model -------------------------------------------

def rest_reply(served, body):
    """TF Serving's REST predict in row format: b64 in for *_bytes inputs, and out for *_bytes outputs, other
    strings as JSON strings; with a single output the name is omitted and each prediction is the value
    itself, with several each prediction is an object keyed by output name."""
    signature_name = body.get("signature_name", "serving_default")
    instances = body["instances"]
    inputs = {name: [base64.b64decode(row[name]["b64"]) if isinstance(row[name], dict) else row[name]
                     for row in instances] for name in instances[0]}
    outputs = served.run(signature_name, **inputs)
    as_json = {name: [{"b64": base64.b64encode(value).decode()} if name.endswith("_bytes")
                      else value.decode() if isinstance(value, bytes) else value.tolist()
                      for value in values] for name, values in outputs.items()}
    if len(as_json) == 1:
        return {"predictions": next(iter(as_json.values()))}
    return {"predictions": [dict(zip(as_json, row)) for row in zip(*as_json.values())]}


def test_rest_request_and_response_round_trip(served, model, photos):
    content = photos[(33, 47)]
    body = json.loads(json.dumps(client.build_rest_request([encode(content)])))
    assert body == {"signature_name": "serving_default",
                    "instances": [{"image_bytes": {"b64": base64.b64encode(encode(content)).decode()}}]}
    reply = json.loads(json.dumps(rest_reply(served, body)))
    assert set(reply) == {"predictions"} and set(reply["predictions"][0]) == {"output_bytes", "error"}
    assert reply["predictions"][0]["error"] == ""
    ((png, error),) = client.decode_rest_response(reply)
    assert error == ""
    assert_within_one_level(decode_png(png), reference(model, content))
    # A refused image: empty bytes and its reason, in the same reply as the good one.
    body["instances"].append({"image_bytes": {"b64": ""}})
    reply = json.loads(json.dumps(rest_reply(served, body)))
    assert reply["predictions"][1] == {"output_bytes": {"b64": ""}, "error": "not an image: the bytes are empty"}
    assert client.decode_rest_response(reply)[1] == (b"", "not an image: the bytes are empty")
    # The other shapes TF Serving may answer with: columnar format, an export without `error` (one output,
    # so no names); and errors.
    b64 = reply["predictions"][0]["output_bytes"]
    assert client.decode_rest_response({"outputs": {"output_bytes": [b64, {"b64": ""}],
                                                    "error": ["", "refused"]}}) == [(png, ""), (b"", "refused")]
    assert client.decode_rest_response({"predictions": [b64]}) == [(png, "")]
    assert client.decode_rest_response({"outputs": [b64]}) == [(png, "")]
    assert client.decode_rest_response({"outputs": {"output_bytes": [b64]}}) == [(png, "")]
    with pytest.raises(UserInputError, match="not a PNG image"):
        client.decode_rest_response({"predictions": [{"output_bytes": {"b64": ""}, "error": ""}]})
    with pytest.raises(UserInputError, match="not an image"):
        client.decode_rest_response({"error": "assertion failed: [not an image: ...]"})


def test_grpc_request_and_response_round_trip(served, model, photos):
    content = photos[(33, 47)]
    request = predict_pb2.PredictRequest.FromString(
        client.build_grpc_request([encode(content)], "stylizer").SerializeToString())
    assert (request.model_spec.name, request.model_spec.signature_name) == ("stylizer", "serving_default")
    inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    inputs["image_bytes"] = np.append(inputs["image_bytes"], [b"GIF89a"])
    outputs = served.run(request.model_spec.signature_name, **inputs)
    response = predict_pb2.PredictResponse()
    for name, value in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
    (png, error), refused = client.decode_grpc_response(
        predict_pb2.PredictResponse.FromString(response.SerializeToString()))
    assert error == ""
    assert_within_one_level(decode_png(png), reference(model, content))
    assert refused == (b"", "image header gives a zero or negative size: 0 x 0 px")


class _RestHandler(http.server.BaseHTTPRequestHandler):
    served = None

    def do_POST(self):  # pylint: disable=invalid-name
        assert re.fullmatch(r"/v1/models/stylizer:predict", self.path), self.path
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            status, reply = 200, rest_reply(self.served, body)
        except tf.errors.InvalidArgumentError as e:
            status, reply = 400, {"error": e.message}
        except KeyError as e:  # as TF Serving answers an input that the signature lacks
            status, reply = 400, {"error": f"JSON object: does not have named input: {e.args[0]}"}
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, predict):
        self._predict = predict

    def Predict(self, request, context):  # pylint: disable=invalid-name
        return self._predict(request, context)


@pytest.fixture
def fake_rest_server(served):
    """A local stand-in for TF Serving's REST port, answering from the session-loaded SavedModel."""
    handler = type("Handler", (_RestHandler,), {"served": served})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_grpc_server():
    """Starts a local PredictionService with a given predict(request, context) function."""
    servers = []

    def start(predict):
        server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2),
                             options=[("grpc.max_send_message_length", 64 << 20)])
        service = _PredictionService(predict)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(None)


def _session_predict(served):
    def predict(request, context):
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        try:
            outputs = served.run(request.model_spec.signature_name, **inputs)
        except tf.errors.InvalidArgumentError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)
        except KeyError as e:  # as TF Serving answers an input that the signature lacks
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"input {e.args[0]} not found in the signature")
        response = predict_pb2.PredictResponse()
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response
    return predict


def _inputs_folder(tmp_path, photos):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photos[(40, 56)]).save(folder / "a.png")
    Image.fromarray(photos[(33, 47)]).save(folder / "b.bmp")
    return folder


def test_serve_request_cli_over_rest(tmp_path, fake_rest_server, model, photos):
    folder = _inputs_folder(tmp_path, photos)

    def serve_request():
        return subprocess.run(
            [sys.executable, os.path.join(ROOT, "main.py"), "serve-request", f"--input={folder}",
             f"--output_dir={tmp_path / 'out'}", f"--server={fake_rest_server}", "--protocol=rest",
             "--overwrite"], capture_output=True, text=True, timeout=300, check=False)

    result = serve_request()
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.bmp"]
    for name, size in (("a.png", (40, 56)), ("b.bmp", (33, 47))):
        written = np.asarray(Image.open(tmp_path / "out" / name))
        assert_within_one_level(written, reference(model, photos[size]))
    # Two files the server refuses: one line each, with its reason; the good ones are still written.
    Image.fromarray(photos[(40, 56)][:3, :3]).save(folder / "c.png")
    (folder / "d.gif").write_bytes(b"GIF89a")
    result = serve_request()
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"tf-nst: skipped {folder / 'c.png'}: image too small: 3 x 3 px; tf_nst needs at least 16 px on each "
        "side of an input image",
        f"tf-nst: skipped {folder / 'd.gif'}: image header gives a zero or negative size: 0 x 0 px"]
    assert f"wrote 2 image(s) to {tmp_path / 'out'}; 2 refused by the server" in result.stdout
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.bmp"]


def _closed_port():
    """A local port that nothing listens on: bound, then released (no assumption about fixed ports)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_rest_client_reports_refused_images_a_rejected_request_and_an_unreachable_server(fake_rest_server,
                                                                                        photos):
    good = encode(photos[(40, 56)])
    (png, error), refused = client.rest_predict(fake_rest_server, "stylizer", [good, b"not an image"])
    assert error == "" and decode_png(png).shape == (40, 56, 3)
    assert refused.png == b"" and refused.error.startswith("not an image: the bytes are not JPEG")
    with pytest.raises(UserInputError, match="answered 400: "):
        client.rest_predict(fake_rest_server, "stylizer", [good], style=good)  # no style input here
    with pytest.raises(UserInputError, match="cannot reach"):
        client.rest_predict(f"127.0.0.1:{_closed_port()}", "stylizer", [b"x"], timeout=5)


def test_grpc_client_reports_an_unreachable_server_with_the_rest_hint():
    with pytest.raises(UserInputError, match="UNAVAILABLE.*is TF Serving running with its gRPC port published"):
        client.grpc_predict(f"127.0.0.1:{_closed_port()}", "stylizer", [b"x"], timeout=5)


def test_grpc_client_writes_files(tmp_path, served, fake_grpc_server, model, photos):
    server = fake_grpc_server(_session_predict(served))
    pairs = [(str(tmp_path / "a.png"), str(tmp_path / "out" / "a.png"))]
    Image.fromarray(photos[(40, 56)]).save(pairs[0][0])
    pairs.append((str(tmp_path / "b.png"), str(tmp_path / "out" / "b.png")))
    Image.fromarray(photos[(40, 56)][:3, :3]).save(pairs[1][0])
    result = client.stylize_files(pairs, server, "stylizer", protocol="grpc")
    assert result.written == (pairs[0][1],)
    assert result.failed == ((pairs[1][0], "image too small: 3 x 3 px; tf_nst needs at least 16 px on each side "
                                           "of an input image"),)
    assert os.listdir(tmp_path / "out") == ["a.png"]
    assert_within_one_level(np.asarray(Image.open(pairs[0][1])), reference(model, photos[(40, 56)]))
    good = encode(photos[(40, 56)])
    with pytest.raises(UserInputError, match="INVALID_ARGUMENT: "):
        client.grpc_predict(server, "stylizer", [good], style=good)  # no style input here


def test_grpc_client_accepts_replies_over_the_4_mb_default(fake_grpc_server):
    noise = np.random.default_rng(0).integers(0, 256, (1300, 1300, 3), dtype=np.uint8)
    big = encode(noise)
    assert len(big) > 4 * 1024 * 1024

    def predict(request, context):  # pylint: disable=unused-argument
        response = predict_pb2.PredictResponse()
        response.outputs["output_bytes"].CopyFrom(tf.make_tensor_proto([big]))
        return response

    assert client.grpc_predict(fake_grpc_server(predict), "stylizer", [b"anything"]) == [(big, "")]


# --- Keras pipelines: TFSMLayer, as in docs/SERVING.md -----------------------------------------------------

def test_tfsmlayer_in_a_functional_model_and_in_tf_data(exported, model, photos):
    images = np.stack([photos[(40, 56)], photos[(40, 56)][::-1]])
    expected = reference(model, images)

    # docs/SERVING.md: a functional model.
    stylizer = keras.layers.TFSMLayer(exported, call_endpoint="stylize_images")
    inputs = keras.Input(shape=(None, None, 3), dtype="uint8")
    outputs = stylizer(inputs)["stylized"]
    pipeline = keras.Model(inputs, outputs)
    assert_within_one_level(np.asarray(pipeline(images)), expected)

    # docs/SERVING.md: inside tf.data.
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(2)
    dataset = dataset.map(lambda batch: stylizer(batch)["stylized"])
    (batch,) = list(dataset)
    assert batch.dtype == tf.uint8
    assert_within_one_level(batch.numpy(), expected)


def test_serving_functions_cast_a_float16_output(photos):
    """A mixed-precision network may return float16; the signatures convert through float32 either way."""
    inputs = keras.Input(shape=(None, None, 3))
    scaled = keras.layers.Rescaling(0.5, dtype="float16")(inputs)
    half_model = keras.Model(inputs, scaled)
    functions = saved_model.serving_functions(half_model, saved_model.ServingConfig(max_size=MAX_SIZE))
    content = photos[(33, 47)]
    serve_images, _ = functions["stylize_images"]
    (stylized,) = serve_images(tf.constant(content[None])).values()
    assert stylized.dtype == tf.uint8
    np.testing.assert_array_equal(stylized.numpy()[0], np.round(content * 0.5).astype(np.uint8))
    serve_bytes, _ = functions["serving_default"]
    (png,) = serve_bytes(tf.constant([encode(content)]))["output_bytes"].numpy()
    np.testing.assert_array_equal(decode_png(png), np.round(content * 0.5).astype(np.uint8))


# --- The `export` command -----------------------------------------------------------------------------------

def _tree_digest(folder):
    digest = hashlib.sha256()
    for root, dirs, names in sorted(os.walk(folder)):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def test_export_cli_writes_new_versions_and_never_overwrites(tmp_path, model):
    model_file = str(tmp_path / "stylizer.keras")
    model.save(model_file)
    export_dir = tmp_path / "exports"

    def run(*args):
        command = [sys.executable, os.path.join(ROOT, "main.py"), "export", f"--model={model_file}",
                   f"--export_dir={export_dir}", "--export_max_size=64", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)

    first = run()
    assert first.returncode == 0, first.stderr
    assert f"wrote {export_dir / 'stylizer' / '1'}" in first.stdout
    second = run()
    assert second.returncode == 0, second.stderr
    assert sorted(os.listdir(export_dir / "stylizer")) == ["1", "2"]
    assert {"saved_model.pb", "variables", "assets.extra"} <= set(os.listdir(export_dir / "stylizer" / "2"))
    before = _tree_digest(export_dir / "stylizer" / "1")
    again = run("--version=1")
    assert again.returncode == 2
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tf-nst: error: version 1 of 'stylizer' already exists")
    assert _tree_digest(export_dir / "stylizer" / "1") == before
    assert sorted(os.listdir(export_dir / "stylizer")) == ["1", "2"]  # no temporary folder left behind
    assert sorted(os.listdir(export_dir)) == ["batching_parameters.txt", "models.config", "stylizer"]


def test_bytes_that_are_no_image_are_quoted_in_hex(served):
    # Raw bytes in the message made the caller's decoding of it fail with UnicodeDecodeError.
    outputs = served.run("serving_default", image_bytes=[b"\xfe\xfa\x00garbage \xff\xfe"])
    assert outputs["error"][0].decode("ascii").endswith("start with (hex) fe fa 00 67 61 72 62 61")


def test_empty_batches_return_empty_results_on_every_signature(served):
    for outputs in (served.run("serving_default", image_bytes=np.array([], object)),
                    served.run("stylize_with_options", image_bytes=np.array([], object),
                               strength=np.zeros([0], np.float32), preserve_color=np.zeros([0], bool))):
        assert {name: value.shape for name, value in outputs.items()} == {"output_bytes": (0,), "error": (0,)}
    for shape in ((0, 0, 0, 3), (0, 24, 32, 3)):  # an empty JSON list arrives as the first
        (outputs,) = served.run("stylize_images", images=np.zeros(shape, np.uint8)).values()
        assert outputs.shape == shape and outputs.dtype == np.uint8
