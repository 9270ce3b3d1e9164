"""A small TF Serving client for the exported stylizer: image files in, stylised files out, by REST or gRPC.

Request building and response decoding are pure functions; only `rest_predict` and `grpc_predict` talk to a
server. Images travel encoded (as read from disk) to the `serving_default` signature, which decodes them and
returns a PNG per image, or, for an image it refuses, empty bytes and the reason (its `error` output). An
arbitrary-style model's `serving_default` takes a style image per row: the client sends the one style with
every image. The 26-style network's (magenta-26) takes `style_weights` [N, 26] beside image_bytes: the client
sends the one weights vector (pretrained.builtin_weights) with every image.
"""

import base64
import json
import typing
import urllib.error
import urllib.request

from tf_nst import optional
from tf_nst import outputs
from tf_nst.errors import UserInputError

SIGNATURE = "serving_default"
INPUT = "image_bytes"
# An arbitrary-style model's serving_default inputs.
CONTENT_INPUT = "content_bytes"
STYLE_INPUT = "style_bytes"
# The 26-style network's second serving_default input (export/saved_model.py STYLE_WEIGHTS).
WEIGHTS_INPUT = "style_weights"
OUTPUT = "output_bytes"
ERROR = "error"
PROTOCOLS = ("rest", "grpc")
DEFAULT_PORTS = {"rest": 8501, "grpc": 8500}
# gRPC refuses messages over 4 MB by default; a few large PNGs exceed that.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# gRPC status codes that a user can fix (wrong address or model name, bad image, too large, too slow).
_GRPC_USER_ERRORS = ("INVALID_ARGUMENT", "NOT_FOUND", "UNAVAILABLE", "FAILED_PRECONDITION",
                     "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED")


def request_inputs(images, style=None, style_weights=None):
    """{input name: [value per row]}: the images alone, or with `style` (encoded bytes) for an arbitrary-style
    model, or with `style_weights` (26 floats) for the 26-style network, repeated on every row."""
    if style_weights is not None:
        return {INPUT: list(images), WEIGHTS_INPUT: [[float(w) for w in style_weights]] * len(images)}
    if style is None:
        return {INPUT: list(images)}
    return {CONTENT_INPUT: list(images), STYLE_INPUT: [style] * len(images)}


def _json_value(name, value):
    """A REST row's value: bytes as {"b64": ...}, numbers as they are."""
    return {"b64": base64.b64encode(value).decode("ascii")} if name != WEIGHTS_INPUT else value


def build_rest_request(images, signature_name=SIGNATURE, style=None, style_weights=None):
    """The JSON body (as a dict) of a REST predict request, in row format, for encoded images (bytes) and,
    for an arbitrary-style model, the encoded style, or for the 26-style network, the style weights."""
    inputs = request_inputs(images, style, style_weights)
    return {
        "signature_name": signature_name,
        "instances": [{name: _json_value(name, values[row]) for name, values in inputs.items()}
                      for row in range(len(images))],
    }


class Prediction(typing.NamedTuple):
    """One image's answer: its PNG and error "", or png b"" and the server's one-line reason for refusing it."""

    png: bytes
    error: str = ""


def decode_rest_response(response):
    """The answers in a REST predict response (a dict parsed from JSON): a Prediction per image.

    Accepts row format (`{"predictions": [{"output_bytes": {"b64": ...}, "error": ""}, ...]}`; TF Serving
    leaves out the output name when a signature has one output, as exports without `error` did:
    `{"predictions": [{"b64": ...}]}`) and columnar format (`{"outputs": {"output_bytes": [...], "error":
    [...]}}`, or the bare list).

    Raises:
      UserInputError: the response is an error or holds no images.
    """
    if "error" in response:
        raise UserInputError(f"the server refused the request: {_first_line(str(response['error']))}")
    if "predictions" in response:
        rows = [row if isinstance(row, dict) and OUTPUT in row else {OUTPUT: row}
                for row in response["predictions"]]
    elif "outputs" in response:
        outputs = response["outputs"]
        columns = outputs if isinstance(outputs, dict) and OUTPUT in outputs else {OUTPUT: outputs}
        errors = columns.get(ERROR, [""] * len(columns[OUTPUT]))
        rows = [{OUTPUT: value, ERROR: error} for value, error in zip(columns[OUTPUT], errors)]
    else:
        raise UserInputError(f"the server's response has no predictions; keys: {sorted(response)}")
    return [_prediction(_b64(row[OUTPUT]), str(row.get(ERROR) or "")) for row in rows]


def _b64(value):
    if not (isinstance(value, dict) and "b64" in value):
        raise UserInputError(
            f"expected a base64 PNG ({{'b64': ...}}) in the response; received {value!r:.80}")
    return base64.b64decode(value["b64"])


def _prediction(data, error):
    """A Prediction, once checked: a refused image carries its reason, any other one a PNG."""
    if error:
        return Prediction(b"", _first_line(error))
    if not data.startswith(_PNG_MAGIC):
        raise UserInputError("the server returned bytes that are not a PNG image")
    return Prediction(data)


def rest_predict(server, model_name, images, timeout=60.0, style=None, style_weights=None):
    """POSTs images (and the style, for an arbitrary-style model) to
    `http://<server>/v1/models/<model_name>:predict`; returns a Prediction per image.

    Raises:
      UserInputError: the server is unreachable, or it rejected the request (unknown model, bad image).
    """
    url = f"http://{server}/v1/models/{model_name}:predict"
    body = json.dumps(build_rest_request(images, style=style, style_weights=style_weights)).encode("utf-8")
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return decode_rest_response(json.loads(reply.read()))
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        try:
            detail = json.loads(detail).get("error", detail)
        except (ValueError, AttributeError):
            pass
        if e.code >= 500:
            raise
        raise UserInputError(f"{url} answered {e.code}: {_first_line(str(detail))}") from None
    except urllib.error.URLError as e:
        raise UserInputError(f"cannot reach {url} ({e.reason}); is TF Serving running with its REST "
                             "port published?") from None
    except TimeoutError:
        raise UserInputError(f"{url} did not answer within {timeout:g} s") from None


def _first_line(message):
    """The informative line of a TensorFlow error message (not its header or the failing node's name)."""
    lines = [line.strip() for line in message.splitlines()]
    useful = [line for line in lines if line and not line.startswith("[[") and not line.endswith("error:")]
    return useful[0] if useful else message.strip()


def build_grpc_request(images, model_name, signature_name=SIGNATURE, style=None, style_weights=None):
    """A PredictRequest carrying encoded images (bytes) as a string tensor [N], and the style as another, for
    an arbitrary-style model, or the style weights as a float tensor [N, 26], for the 26-style network."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    predict_pb2 = optional.require("tensorflow_serving.apis.predict_pb2", "the gRPC client")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for name, values in request_inputs(images, style, style_weights).items():
        if name == WEIGHTS_INPUT:
            request.inputs[name].CopyFrom(tf.make_tensor_proto(values, dtype=tf.float32))
        else:
            request.inputs[name].CopyFrom(tf.make_tensor_proto(values, dtype=tf.string, shape=[len(values)]))
    return request


def decode_grpc_response(response):
    """The answers in a PredictResponse: a Prediction per image (exports without `error` answer PNGs only)."""
    if OUTPUT not in response.outputs:
        raise UserInputError(f"the server's response has no {OUTPUT!r}; outputs: {sorted(response.outputs)}")
    values = list(response.outputs[OUTPUT].string_val)
    errors = list(response.outputs[ERROR].string_val) if ERROR in response.outputs else [b""] * len(values)
    return [_prediction(value, error.decode("utf-8", "replace")) for value, error in zip(values, errors)]


def grpc_predict(server, model_name, images, timeout=60.0, style=None, style_weights=None):
    """Calls PredictionService.Predict at `server` (host:port) with the images (and the style, for an
    arbitrary-style model); returns a Prediction per image.

    Raises:
      UserInputError: the server is unreachable, or it rejected the request (unknown model, bad image).
    """
    grpc = optional.require("grpc", "the gRPC client")
    prediction_service_pb2_grpc = optional.require("tensorflow_serving.apis.prediction_service_pb2_grpc",
                                                   "the gRPC client")

    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    request = build_grpc_request(images, model_name, style=style, style_weights=style_weights)
    with grpc.insecure_channel(server, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as e:
            code, details = e.code(), e.details() or ""  # pylint: disable=no-member
            if code.name not in _GRPC_USER_ERRORS:
                raise
            hint = "; is TF Serving running with its gRPC port published?" if code.name == "UNAVAILABLE" else ""
            raise UserInputError(f"{server} (gRPC) answered {code.name}: {_first_line(details)}{hint}") from None
    return decode_grpc_response(response)


def stylize_files(pairs, server, model_name, protocol="rest", timeout=60.0, callback=None, style=None,
                  style_weights=None):
    """Sends the input images in one request and writes each stylised result to its output path.

    Args:
      pairs: (input file, output file) pairs, as from tf_nst.files.plan_outputs (which checks them). Inputs
        are sent as they are; outputs are written in the format their extension names.
      server: host:port of TF Serving's REST or gRPC port; None for localhost and the protocol's default port.
      model_name: the served model's name.
      protocol: "rest" or "grpc".
      timeout: seconds to wait for the server.
      callback: see write_outputs.
      style: the encoded style image, for an arbitrary-style model (sent with every image).
      style_weights: 26 weights, for the 26-style network (sent with every image).

    Returns:
      A tf_nst.stylize.StylizeResult: the outputs written, and (input, the server's reason) for each image
      the server refused; those outputs are not written.

    Raises:
      UserInputError: an unreadable input, an unreachable server, or a rejected request.
    """
    return write_outputs(pairs, request_files(pairs, server, model_name, protocol, timeout, style, style_weights),
                         callback)


def request_files(pairs, server, model_name, protocol="rest", timeout=60.0, style=None, style_weights=None):
    """Sends the inputs of `pairs` in one request (see stylize_files); returns one Prediction per pair.

    A REST request imports no TensorFlow, so an unreachable server is reported at once.
    """
    if protocol not in PROTOCOLS:
        raise UserInputError(f"protocol must be one of {', '.join(PROTOCOLS)}; received {protocol!r}")
    if not pairs:
        raise UserInputError("no input images given")
    images = []
    for path, _ in pairs:
        try:
            with open(path, "rb") as f:
                images.append(f.read())
        except OSError as e:
            raise UserInputError(f"cannot read {path!r} ({e.strerror})") from None
    server = server or f"localhost:{DEFAULT_PORTS[protocol]}"
    predict = rest_predict if protocol == "rest" else grpc_predict
    predictions = predict(server, model_name, images, timeout, style=style, style_weights=style_weights)
    if len(predictions) != len(images):
        raise UserInputError(f"sent {len(images)} images but the server returned {len(predictions)}")
    return predictions


def write_outputs(pairs, predictions, callback=None, replace=True):
    """Writes each stylised image to its pair's output path, in the format the extension names.

    Args:
      pairs: (input file, output file) pairs.
      predictions: a Prediction per pair.
      callback: optional callback(input_path, output_path, error) after each pair, where error is None or
        the server's reason for refusing the image (as tf_nst.stylize.stylize_files calls it).
      replace: whether an output file may be replaced; without it, one that appeared since the outputs were
        checked (another run) is kept, and the image counts as failed, its result kept beside it.

    Returns:
      A tf_nst.stylize.StylizeResult: the outputs written, and (input, reason) for each refused image.
    """
    # TensorFlow only once the server has answered.
    from tf_nst import image_io  # pylint: disable=import-outside-toplevel
    from tf_nst import stylize  # pylint: disable=import-outside-toplevel

    written, failed = [], []
    for (path, output), prediction in zip(pairs, predictions):
        error = prediction.error or None
        if not error:
            try:
                image_io.write_image(output, image_io.decode(prediction.png).numpy(), replace)
                written.append(output)
            except outputs.OutputAppearedError as e:
                error = str(e)
        if error:
            failed.append((path, error))
        if callback is not None:
            callback(path, output, error)
    return stylize.StylizeResult(tuple(written), tuple(failed))
