"""The serving client's failure modes against scripted local servers: unreachable, slow, wrong replies."""

import base64
import http.server
import json
import socket
import threading
import time

import pytest

from export import client
from tf_nst.errors import UserInputError

_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


@pytest.fixture(name="scripted_server")
def fixture_scripted_server():
    """Starts a local REST server whose every answer is (delay in seconds, JSON body)."""
    servers = []

    def start(delay, body):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # pylint: disable=invalid-name
                self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout test)

            def log_message(self, *args):
                del args

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _closed_port():
    """A local port that nothing listens on: bound, then released (no assumption about fixed ports)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _b64(data):
    return {"b64": base64.b64encode(data).decode()}


def test_unreachable_server_names_the_url_and_the_port_to_publish():
    server = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(UserInputError, match=rf"cannot reach http://{server}/v1/models/m:predict .*REST port"):
        client.rest_predict(server, "m", [b"x"], timeout=5)


def test_a_server_slower_than_the_timeout_is_one_line(scripted_server):
    server = scripted_server(2.0, {"predictions": [_b64(_PNG)]})
    start = time.perf_counter()
    with pytest.raises(UserInputError, match=r"did not answer within 0.3 s"):
        client.rest_predict(server, "m", [b"x"], timeout=0.3)
    assert time.perf_counter() - start < 1.5


def test_a_reply_that_is_not_a_png_is_refused(scripted_server):
    server = scripted_server(0, {"predictions": [_b64(b"GIF89a not a png")]})
    with pytest.raises(UserInputError, match="not a PNG image"):
        client.rest_predict(server, "m", [b"x"])
    assert client.rest_predict(scripted_server(0, {"predictions": [_b64(_PNG)]}), "m", [b"x"]) == [(_PNG, "")]


def test_a_reply_with_the_wrong_number_of_images_writes_nothing(scripted_server, tmp_path):
    pairs = []
    for name in ("a", "b"):
        (tmp_path / f"{name}.png").write_bytes(_PNG)
        pairs.append((str(tmp_path / f"{name}.png"), str(tmp_path / "out" / f"{name}.png")))
    server = scripted_server(0, {"predictions": [_b64(_PNG)]})
    with pytest.raises(UserInputError, match="sent 2 images but the server returned 1"):
        client.stylize_files(pairs, server, "m")
    assert not (tmp_path / "out").exists()
