"""Fault injection through `main.py`: every fault is one line on stderr, the documented exit status, and no
half-written file or temporary left behind. Grow it with every new writer.

Tests run as root, so a read-only or denied folder is simulated by patching the writers inside the command's
own process (FAULT_SETUP, run before main); a folder beneath a regular file (ENOTDIR) is real.
"""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--weights=none", "--image_size=32", "--num_steps=2"]

# Runs FAULT_SETUP (Python, may patch anything), then the command; prints whether TensorFlow was imported.
_DRIVER = """
import os, sys
exec(os.environ.get("FAULT_SETUP", ""))
import main
try:
    status = main.main(sys.argv[1:])
except SystemExit as e:
    status = e.code
print("tensorflow-loaded" if "tensorflow" in sys.modules else "tensorflow-not-loaded")
sys.exit(status)
"""

# Makes the writer `os.<name>` (replace, rename, link: the destination is the last argument) fail with `code` for destinations whose path contains `marker`.
_FAIL_OS_CALL = """
import errno, os
_real = getattr(os, {name!r})
def _failing(*args, **kwargs):
    if {marker!r} in str(args[-1] if {name!r} in ("replace", "rename", "link") else args[0]):
        raise OSError(errno.{code}, os.strerror(errno.{code}), str(args[-1]))
    return _real(*args, **kwargs)
setattr(os, {name!r}, _failing)
"""

# Makes outputs.check_writable's probe fail with `code` (root can write where users cannot).
_FAIL_PROBE = """
import builtins, errno, os
import tf_nst.outputs
def _open(path, *args, **kwargs):
    if str(path).endswith(".probe"):
        raise OSError(errno.{code}, os.strerror(errno.{code}), str(path))
    return builtins.open(path, *args, **kwargs)
tf_nst.outputs.open = _open
"""


def run_main(*args, setup="", umask=None, timeout=300):
    return subprocess.run([sys.executable, "-c", _DRIVER, "main.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False, env={**os.environ, "FAULT_SETUP": setup},
                          preexec_fn=None if umask is None else lambda: os.umask(umask))


def error_line(result, status, *fragments):
    """The one stderr line of a failed run, checked: `tf-nst: error: ...`, the status, the fragments."""
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tf-nst: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def leftovers(folder):
    """Every temporary name under folder (the probe's and the atomic writers')."""
    return [os.path.join(root, name) for root, dirs, names in os.walk(folder) for name in names + dirs
            if name.startswith(".tmp-") or name.endswith("_temp")]


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory):
    """An untrained slim stylizer file (TensorFlow is loaded here, once)."""
    import keras  # pylint: disable=import-outside-toplevel

    from tf_nst import transformer  # pylint: disable=import-outside-toplevel

    path = str(tmp_path_factory.mktemp("model") / "stylizer.keras")
    keras.utils.set_random_seed(0)
    transformer.build_transformer(width_multiplier=0.25).save(path)
    return path


@pytest.fixture
def blocked(tmp_path):
    """A regular file: any output path beneath it fails with ENOTDIR, even for root."""
    path = tmp_path / "a_file"
    path.write_bytes(b"x")
    return str(path)


# --- 1. Writability is proven before the work -----------------------------------------------------------

def _command_args(command, tmp_path, image_files, blocked):
    (tmp_path / "data").mkdir(exist_ok=True)
    Image.open(image_files["content"]).save(tmp_path / "data" / "photo.png")
    fake_model = tmp_path / "m.keras"
    fake_model.write_bytes(b"not opened before the check")
    (tmp_path / "sm").mkdir(exist_ok=True)
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    out = f"{blocked}/sub"
    return {
        "transfer": ["transfer", f"--content={image_files['content']}", f"--output={out}/o.png", *FAST],
        "train": ["train", f"--dataset_dir={tmp_path / 'data'}", f"--style={image_files['style']}",
                  f"--train_dir={out}", "--weights=none"],
        "stylize": ["stylize", f"--model={fake_model}", f"--input={tmp_path / 'data'}", f"--output_dir={out}"],
        "export": ["export", f"--model={fake_model}", f"--export_dir={out}"],
        "serve-request": ["serve-request", f"--input={tmp_path / 'data'}", f"--output_dir={out}"],
        "batch": ["batch", f"--model={tmp_path / 'sm'}", f"--input={tmp_path / 'data'}", f"--output_dir={out}"],
    }[command]


@pytest.mark.parametrize("command", ["transfer", "train", "stylize", "export", "serve-request", "batch"])
def test_an_output_below_a_file_fails_before_tensorflow_loads(command, tmp_path, image_files, blocked):
    result = run_main(*_command_args(command, tmp_path, image_files, blocked))
    assert result.stdout.split() == ["tensorflow-not-loaded"], result.stdout
    error_line(result, 2, "cannot write", f"{blocked}/sub", "Not a directory")
    assert os.path.isfile(blocked)


@pytest.mark.parametrize("code,cause", [("EACCES", "Permission denied"), ("EROFS", "Read-only file system")])
def test_a_denied_or_read_only_folder_fails_before_tensorflow_loads(code, cause, tmp_path, image_files):
    out = tmp_path / "ro"
    result = run_main("transfer", f"--content={image_files['content']}", f"--output={out}/o.png", *FAST,
                      setup=_FAIL_PROBE.format(code=code))
    assert result.stdout.split() == ["tensorflow-not-loaded"]
    error_line(result, 2, f"cannot write --output to {str(out)!r}", cause)
    assert not leftovers(tmp_path)


# --- 2. Faults at write time: one line, exit 1, nothing half-written ----------------------------------------

# The system temp folder (tempfile.gettempdir) of the command's process: transfer's fallback for its result.
_TEMP_DIR = """
import tempfile
tempfile.tempdir = {folder!r}
"""


@pytest.mark.parametrize("code,cause", [("ENOSPC", "No space left on device"), ("EROFS", "Read-only")])
def test_a_fault_at_the_final_write_of_transfer_keeps_the_image_elsewhere(code, cause, tmp_path, image_files):
    out, rescue = tmp_path / "out" / "o.png", tmp_path / "tmp"
    rescue.mkdir()
    result = run_main("transfer", f"--content={image_files['content']}", f"--output={out}", *FAST,
                      setup=_TEMP_DIR.format(folder=str(rescue)) +
                      _FAIL_OS_CALL.format(name="link", marker=str(out), code=code))  # no --overwrite
    line = error_line(result, 1, f"cannot write {str(out)!r}", cause, "the finished image is saved at")
    assert os.listdir(out.parent) == []  # no output, no temporary
    kept = line.rsplit(" saved at ", 1)[1].split("'")[1]
    assert os.path.dirname(kept) == str(rescue) and os.listdir(rescue) == [os.path.basename(kept)]
    assert kept.endswith(".png") and Image.open(kept).size == (32, 21)


def test_a_fault_at_the_final_write_of_transfer_and_of_its_fallbacks_says_so(tmp_path, image_files):
    out, rescue = tmp_path / "out" / "o.png", tmp_path / "tmp"
    rescue.mkdir()
    result = run_main("transfer", f"--content={image_files['content']}", f"--output={out}", *FAST,
                      setup=_TEMP_DIR.format(folder=str(rescue)) +
                      _FAIL_OS_CALL.format(name="link", marker=".png", code="ENOSPC"))
    error_line(result, 1, f"cannot write {str(out)!r}", "No space left on device", f"{str(rescue)!r}",
               "could not be saved anywhere")
    assert os.listdir(out.parent) == [] and os.listdir(rescue) == []
    assert not leftovers(ROOT)


def test_a_full_disk_during_stylize(tmp_path, image_files, stylizer):
    result = run_main("stylize", f"--model={stylizer}", f"--input={image_files['content']}",
                      f"--output_dir={tmp_path / 'out'}",
                      setup=_FAIL_OS_CALL.format(name="link", marker="out", code="ENOSPC"))  # no --overwrite
    error_line(result, 1, "No space left on device", str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("call,marker,fragment", [
    ("rename", os.sep + "1", "stylizer/1'"),  # the version folder
    ("replace", "models.config", "models.config"),  # the server config, written after it
])
def test_a_full_disk_during_export(call, marker, fragment, tmp_path, stylizer):
    exports = tmp_path / "exports"
    result = run_main("export", f"--model={stylizer}", f"--export_dir={exports}",
                      setup=_FAIL_OS_CALL.format(name=call, marker=marker, code="ENOSPC"))
    error_line(result, 1, fragment, "No space left on device")
    assert not leftovers(exports)
    assert not os.path.exists(exports / "models.config")


# What SaveV2 raises on a full disk (ENOSPC is RESOURCE_EXHAUSTED), its op text around the cause.
_SAVE_V2_FULL = ("{{function_node __wrapped__SaveV2_dtypes_4_device_/job:localhost/replica:0/task:0/device:CPU:0}} "
                 "/x/.tmp-1-ab-1/variables/variables_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; "
                 "No space left on device [Op:SaveV2]")


def test_a_full_disk_in_tensorflows_saved_model_writer_is_its_cause(tmp_path, stylizer, monkeypatch):
    import keras  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from export import saved_model  # pylint: disable=import-outside-toplevel
    from tf_nst.errors import WriteError  # pylint: disable=import-outside-toplevel

    class FullDiskArchive:
        def write_out(self, *args, **kwargs):
            raise tf.errors.ResourceExhaustedError(None, None, _SAVE_V2_FULL)

    monkeypatch.setattr(saved_model, "build_archive", lambda *args: FullDiskArchive())
    with pytest.raises(WriteError) as raised:
        saved_model.export(keras.models.load_model(stylizer), str(tmp_path / "exports"))
    message = str(raised.value)
    assert message.startswith(f"cannot write {str(tmp_path / 'exports' / 'stylizer' / '1')!r}: ")
    assert "No space left on device" in message and "\n" not in message
    assert "function_node" not in message and "[Op:" not in message, message
    assert not leftovers(tmp_path)


_FAIL_SECOND_CHECKPOINT = """
import os
from tf_nst.cli import common
common.import_tensorflow()  # quietly, as the command does
import tensorflow as tf
_save = tf.train.CheckpointManager.save
_calls = []
def _save_or_fail(self, checkpoint_number=None, **kwargs):
    _calls.append(checkpoint_number)
    if len(_calls) == 2:  # as SaveV2 on a full disk: a temp folder left, then the error
        os.makedirs(os.path.join(self.directory, f"ckpt-{int(checkpoint_number)}_temp", "part-0"))
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device [Op:SaveV2]")
    return _save(self, checkpoint_number=checkpoint_number, **kwargs)
tf.train.CheckpointManager.save = _save_or_fail
"""


def test_a_full_disk_during_train_keeps_the_last_good_checkpoint(tmp_path, image_files):
    (tmp_path / "data").mkdir()
    Image.open(image_files["content"]).save(tmp_path / "data" / "photo.png")
    run = tmp_path / "run"
    result = run_main("train", f"--dataset_dir={tmp_path / 'data'}", f"--style={image_files['style']}",
                      f"--train_dir={run}", "--weights=none", "--train_image_size=32", "--train_style_size=32",
                      "--batch_size=1", "--num_train_steps=3", "--checkpoint_every=1", "--width_multiplier=0.25",
                      "--summary_every=0", setup=_FAIL_SECOND_CHECKPOINT)
    line = error_line(result, 1, "ckpt-2", "No space left on device", "last good checkpoint", "ckpt-1")
    assert "resume" in line
    assert not leftovers(run)
    assert os.path.isfile(run / "ckpt-1.index") and not os.path.exists(run / "stylizer.keras")


# The summaries of step 2 fail as a full disk: ckpt-1 is the last good checkpoint.
_FAIL_SECOND_SUMMARY = """
from tf_nst.cli import common
common.import_tensorflow()
import tensorflow as tf
_scalar, _steps = tf.summary.scalar, set()
def _scalar_or_full(name, data, step=None, **kwargs):
    _steps.add(int(tf.summary.experimental.get_step()))
    if len(_steps) == 2:
        raise tf.errors.ResourceExhaustedError(None, None, "{{function_node __wrapped__WriteScalarSummary}} "
                                               "events.out.tfevents.1; No space left on device [Op:WriteScalarSummary]")
    return _scalar(name, data, step, **kwargs)
tf.summary.scalar = _scalar_or_full
"""


def test_a_full_disk_at_a_summary_during_train_keeps_the_last_good_checkpoint(tmp_path, image_files):
    (tmp_path / "data").mkdir()
    Image.open(image_files["content"]).save(tmp_path / "data" / "photo.png")
    run = tmp_path / "run"
    result = run_main("train", f"--dataset_dir={tmp_path / 'data'}", f"--style={image_files['style']}",
                      f"--train_dir={run}", *_TINY_TRAIN[:4], "--width_multiplier=0.25", "--num_train_steps=3",
                      "--checkpoint_every=1", "--summary_every=1", setup=_FAIL_SECOND_SUMMARY)
    line = error_line(result, 1, f"cannot write TensorBoard summaries in {str(run)!r} at step 2",
                      "No space left on device", "last good checkpoint", "ckpt-1", "resume")
    assert "function_node" not in line and "[Op:" not in line
    assert os.path.isfile(run / "ckpt-1.index") and not os.path.exists(run / "ckpt-2.index")
    assert not os.path.exists(run / "stylizer.keras") and not leftovers(run)


def test_a_full_disk_when_train_closes_its_summaries_is_its_cause_and_the_checkpoint_kept(tmp_path, monkeypatch):
    import types  # pylint: disable=import-outside-toplevel

    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tf_nst import train  # pylint: disable=import-outside-toplevel
    from tf_nst.errors import WriteError  # pylint: disable=import-outside-toplevel

    class QueuedSummaries:  # what is still queued cannot be written at the close
        def close(self):
            raise tf.errors.ResourceExhaustedError(None, None, "events.out.tfevents.1; No space left on device")

    monkeypatch.setattr(tf.summary, "create_file_writer", lambda logdir: QueuedSummaries())
    trainer = types.SimpleNamespace(config=types.SimpleNamespace(train_dir=str(tmp_path)), strategy=None,
                                    step=tf.Variable(2), manager=types.SimpleNamespace(latest_checkpoint="r/ckpt-2"))
    trainer.kept_checkpoint = lambda: train.Trainer.kept_checkpoint(trainer)
    trainer.summary_error = lambda error: train.Trainer.summary_error(trainer, error)
    with pytest.raises(WriteError) as raised:
        with train._summary_writer(trainer):  # pylint: disable=protected-access
            pass
    assert str(raised.value) == (
        f"cannot write TensorBoard summaries in {str(tmp_path)!r} at step 2: events.out.tfevents.1; No space left "
        "on device; training stopped, the last good checkpoint 'r/ckpt-2' is kept: rerun the same command to "
        "resume from it")
    with pytest.raises(KeyError):  # an error in flight is the one reported, not the close's
        with train._summary_writer(trainer):  # pylint: disable=protected-access
            raise KeyError("in flight")


# A full disk where train first writes: TensorBoard's events file (as CreateSummaryFileWriter fails on ENOSPC:
# an empty events file left, then the error) or the first checkpoint (SaveV2, its temp folder left).
_FULL_DISK_AT_TRAIN_START = """
import os
from tf_nst.cli import common
common.import_tensorflow()
import tensorflow as tf
def _full(path):
    return tf.errors.ResourceExhaustedError(None, None, "{{{{function_node __wrapped__Op}}}} " + path +
                                            "; No space left on device\\n\\tCould not initialize events writer.")
if {what!r} == "summaries":
    def _create_file_writer(logdir, *args, **kwargs):
        path = os.path.join(logdir, "events.out.tfevents.1.host.1.0.v2")
        open(path, "wb").close()
        raise _full(path)
    tf.summary.create_file_writer = _create_file_writer
else:
    def _write(self, file_prefix, *args, **kwargs):
        os.makedirs(file_prefix + "_temp")
        raise _full(file_prefix + "_temp/part-00000-of-00001.data-00000-of-00001")
    tf.train.Checkpoint.write = _write
    tf.train.Checkpoint._write = _write
"""


@pytest.mark.parametrize("what,fragment", [("summaries", "TensorBoard summaries"), ("checkpoint", "checkpoint")])
def test_a_full_disk_at_the_start_of_train_is_one_line_before_the_first_step(what, fragment, tmp_path, image_files):
    (tmp_path / "data").mkdir()
    Image.open(image_files["content"]).save(tmp_path / "data" / "photo.png")
    run = tmp_path / "run"
    result = run_main("train", f"--dataset_dir={tmp_path / 'data'}", f"--style={image_files['style']}",
                      f"--train_dir={run}", *_TINY_TRAIN[:-1], "--num_train_steps=2", "--print_every=1",
                      setup=_FULL_DISK_AT_TRAIN_START.format(what=what))
    error_line(result, 1, f"cannot write {fragment}", str(run), "No space left on device", "before the first step")
    assert "step 1/" not in result.stdout, result.stdout
    assert not os.path.exists(run) or os.listdir(run) == [], os.listdir(run)


# --- 4. Ctrl-C and SIGTERM -----------------------------------------------------------------------------------

def test_ctrl_c_during_transfer_writes_the_image_so_far(tmp_path, image_files):
    out = tmp_path / "o.png"
    process = subprocess.Popen(
        [sys.executable, "main.py", f"--content={image_files['content']}", f"--output={out}", "--weights=none",
         "--image_size=48", "--num_steps=5000", "--print_every=1", "--tolerance=0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(240, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            if line.startswith("step ") and int(line.split()[1].split("/")[0]) >= 3:
                process.send_signal(signal.SIGINT)
                break
        stdout, stderr = process.communicate()
    finally:
        watchdog.cancel()
    assert process.returncode == 130, stderr
    assert stderr == "" and "Traceback" not in stdout
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("tf-nst: interrupted at step ") and last.endswith(f" of 5000; wrote {out}"), last
    assert Image.open(out).size == (48, 32)
    assert os.listdir(tmp_path) == ["o.png"]


def test_sigterm_while_waiting_for_the_server_is_one_line(tmp_path, image_files):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "main.py", "serve-request", f"--input={image_files['content']}", f"--output_dir={out}",
         f"--server=127.0.0.1:{listener.getsockname()[1]}"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    listener.settimeout(60)
    connection, _ = listener.accept()  # the request is in flight; the server never answers
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        connection.close()
        listener.close()
    assert process.returncode == 143
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "serve-request interrupted by SIGTERM" in lines[0], stderr
    assert not os.path.exists(out) or os.listdir(out) == []


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    from tf_nst import outputs  # pylint: disable=import-outside-toplevel

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (tmp_path / f".tmp-{dead}-abc-o.png").write_bytes(b"half")
    (tmp_path / f".tmp-{dead}-def-1").mkdir()
    (tmp_path / f".tmp-{dead}-def-1" / "saved_model.pb").write_bytes(b"half")
    mine = tmp_path / f".tmp-{os.getpid()}-ghi-o.png"  # a live process's: kept
    mine.write_bytes(b"in progress")
    (tmp_path / ".tmp-notapid").write_bytes(b"not ours")
    outputs.check_writable(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted([".tmp-notapid", mine.name])


# --- 5. Numbers that are not numbers ----------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--style_weight=nan"], ["--style_weight=inf"], ["--content_weight=nan"], ["--learning_rate=inf"],
    ["--style_scale=inf"], ["--scale_factor=nan"], ["--tv_weight=1e39"], ["--style_layer_weights=1,1,1,1,inf"],
    ["train", "--width_multiplier=nan"], ["train", "--train_learning_rate=inf"], ["batch", "--strength=nan"],
])
def test_non_finite_float_flags_are_one_line(args):
    result = run_main(*args)
    name = args[-1].split("=")[0]
    error_line(result, 2, name)
    assert result.stdout.split() == ["tensorflow-not-loaded"]


# For one command: parses each of its integer flags at a huge and at a negative value, in this one process, and
# prints [flag, value, exit status, stderr] per parse as JSON lines; the command's body is never run.
_PARSE_EVERY_INTEGER_FLAG = """
import contextlib, importlib, io, json, sys
from absl import flags
from absl.testing import flagsaver
import main
from tf_nst import cli
from tf_nst.cli import common
command = sys.argv[1]
module = importlib.import_module(cli.COMMANDS[command].module)
common.run_command = lambda *args: 0  # a value that parses would run nothing
names = sorted(flag.name for flag in flags.FLAGS.get_key_flags_for_module(module)
               if isinstance(flag.parser, flags.IntegerParser))
for name in names:
    for value in (10**20, -1 - 10**20, -1):
        stderr = io.StringIO()
        with flagsaver.flagsaver(), contextlib.redirect_stderr(stderr):
            try:
                status = main.main(["main.py", command, f"--{name}={value}"])
            except SystemExit as e:
                status = e.code
        print(json.dumps([name, value, status, stderr.getvalue()]))
"""

# What each command's integer flags must include: a test that found none would pass for nothing.
_SOME_INTEGER_FLAGS = {
    "transfer": {"seed", "image_size", "num_steps", "lbfgs_history", "coarse_steps", "save_every", "tile_size",
                 "tile_overlap", "print_every"},
    "train": {"seed", "train_resize", "train_image_size", "train_style_size", "batch_size", "num_train_steps",
              "checkpoint_every", "summary_every", "print_every"},
    "stylize": {"max_size", "style_size"}, "export": {"version", "export_max_size", "style_size"},
    "serve-request": set(), "batch": {"max_size"},
}


@pytest.mark.parametrize("command", ["transfer", "train", "stylize", "export", "serve-request", "batch"])
def test_every_integer_flag_refuses_huge_and_negative_values_in_one_line(command):
    result = subprocess.run([sys.executable, "-c", _PARSE_EVERY_INTEGER_FLAG, command], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=True)
    parses = [json.loads(line) for line in result.stdout.splitlines()]
    assert _SOME_INTEGER_FLAGS[command] <= {name for name, *_ in parses}, parses
    wrong = []
    for name, value, status, stderr in parses:
        lines = stderr.strip().splitlines()
        if not (status == 2 and len(lines) == 1 and lines[0].startswith(f"tf-nst: error: flag --{name}={value}: ")
                and "Traceback" not in stderr):
            wrong.append((name, value, status, stderr))
    assert not wrong, wrong


def test_a_run_too_large_for_memory_suggests_a_tile_size(tmp_path, image_files):
    result = run_main(f"--content={image_files['content']}", f"--output={tmp_path / 'o.png'}", "--weights=none",
                      "--image_size=10000")
    line = error_line(result, 2, "--image_size=10000", "untiled", "GB is available", "--tile_size=")
    assert result.stdout.split() == ["tensorflow-not-loaded"]
    error_line(run_main("--image_size=10001"), 2, "10001", "[16, 10000]")
    tile = int(line.rsplit("--tile_size=", 1)[1])
    from tf_nst import memory  # pylint: disable=import-outside-toplevel

    assert memory.fits(6652, 10000, "lbfgs", 100, tile, memory.available_bytes())[0]


def test_a_huge_style_scale_is_one_line_before_tensorflow_loads(tmp_path, image_files):
    result = run_main(f"--content={image_files['content']}", f"--output={tmp_path / 'o.png'}", *FAST,
                      "--style_scale=1e6")
    error_line(result, 2, "--style_scale=1e6", "in the range [0.01, 10.0]")
    assert result.stdout.split() == ["tensorflow-not-loaded"]
    result = run_main(f"--content={image_files['content']}", f"--output={tmp_path / 'o.png'}", *FAST[:-1],
                      "--image_size=5000", "--style_scale=4")
    error_line(result, 2, "--style_scale=4", "20000 px", "at most 10000 px")
    assert result.stdout.split() == ["tensorflow-not-loaded"] and os.listdir(tmp_path) == []


def test_the_memory_check_counts_the_style_images(tmp_path, image_files):
    setup = "import tf_nst.memory\ntf_nst.memory.available_bytes = lambda *args: 3e9\n"
    result = run_main(f"--content={image_files['content']}", f"--style={image_files['style']}",
                      f"--output={tmp_path / 'o.png'}", "--weights=none", "--image_size=256", "--num_steps=1",
                      "--style_scale=10", setup=setup)
    error_line(result, 2, "--style_scale=10", f"style image {image_files['style']!r}", "2560x2240 px",
               "3.0 GB is available", "lower --style_scale")
    assert result.stdout.split() == ["tensorflow-not-loaded"] and os.listdir(tmp_path) == []
    from tf_nst import memory  # pylint: disable=import-outside-toplevel

    assert memory.estimate_peak_bytes(256, 256, "adam", 100, style_pixels=[100 * 100]) == (
        memory.estimate_peak_bytes(256, 256, "adam", 100))  # a style smaller than the content costs nothing more


def test_stylize_refuses_a_style_size_or_an_input_past_its_memory_before_tensorflow_loads(tmp_path, image_files):
    """The red-team probe `stylize --style_size=<large>` ran out of memory (killed) instead of one line."""
    setup = "import tf_nst.memory\ntf_nst.memory.available_bytes = lambda *args: 3e9\n"
    style = tmp_path / "style.png"
    Image.new("RGB", (300, 100)).save(style)
    out = tmp_path / "out"
    result = run_main("stylize", f"--input={image_files['content']}", f"--style={style}", f"--output_dir={out}",
                      "--style_size=1600", setup=setup)
    error_line(result, 2, "--style_size=1600", f"style image {str(style)!r}", "4800x1600 px", "3.0 GB is available",
               "lower --style_size")
    assert result.stdout.split() == ["tensorflow-not-loaded"] and not out.exists()
    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 1200)).save(big)
    result = run_main("stylize", f"--input={big}", f"--style={style}", f"--output_dir={out}", setup=setup)
    error_line(result, 2, f"input {str(big)!r}", "3000x1200 px", "3.0 GB is available", "smaller --max_size")
    assert result.stdout.split() == ["tensorflow-not-loaded"] and not out.exists()
    from tf_nst import memory  # pylint: disable=import-outside-toplevel

    # At --max_size=1024 the same input fits: 1024x410 px at the measured cost per pixel.
    assert memory.estimate_stylize_bytes(1024 * 410, 256 * 768) <= memory.HEADROOM * 3e9


def test_train_refuses_a_batch_past_its_memory_before_tensorflow_loads(tmp_path, image_files):
    """`train --train_image_size=4096 --batch_size=64` was killed by the kernel's OOM killer after its first line."""
    setup = "import tf_nst.memory\ntf_nst.memory.available_bytes = lambda *args: 4e9\n"
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(image_files["content"]).save(photos / "a.png")
    train_dir = tmp_path / "run"
    result = run_main("train", f"--dataset_dir={photos}", f"--style={image_files['style']}",
                      f"--train_dir={train_dir}", "--train_image_size=512", "--batch_size=2", setup=setup)
    error_line(result, 2, "--batch_size=2", "--train_image_size=512", "4.0 GB is available",
               "lower --batch_size or --train_image_size")
    assert result.stdout.split() == ["tensorflow-not-loaded"] and not train_dir.exists()
    from tf_nst import memory  # pylint: disable=import-outside-toplevel

    # train's defaults (four crops of 256 px) fit in the same 4 GB; two crops of 512 px do not.
    assert memory.estimate_train_bytes(4, 256, 512 * 512) <= memory.HEADROOM * 4e9 < memory.estimate_train_bytes(
        2, 512, 512 * 512)


_NAN_AT_STEP_3 = """
import tf_nst.progress
_step = tf_nst.progress.Progress.step
def _nan_at_3(self, total, terms, image):
    return _step(self, float("nan") if self._steps == 2 else total, terms, image)
tf_nst.progress.Progress.step = _nan_at_3
"""


def test_a_loss_that_turns_nan_stops_and_keeps_the_last_finite_image(tmp_path, image_files):
    out = tmp_path / "o.png"
    result = run_main(f"--content={image_files['content']}", f"--output={out}", "--weights=none",
                      "--image_size=48", "--num_steps=5", "--optimizer=adam", setup=_NAN_AT_STEP_3)
    error_line(result, 1, "non-finite", "at step 3 of 5", "last finite image", str(out))
    image = np.asarray(Image.open(out), np.float32)
    assert image.shape == (32, 48, 3) and image.std() > 10  # the content after 2 steps, not a black image
    assert os.listdir(tmp_path) == ["o.png"]


# --- 7. One minimum side for every input image ---------------------------------------------------------------

def test_one_minimum_side_for_transfer_stylize_and_training(tmp_path, image_files):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1), (200, 100, 50)).save(tiny)
    rule = "is 1x1 px; tf_nst needs at least 16 px on each side of an input image"
    (tmp_path / "data").mkdir()
    Image.open(image_files["content"]).save(tmp_path / "data" / "photo.png")
    for args in (["transfer", f"--content={tiny}", f"--output={tmp_path / 'o.png'}", *FAST],
                 ["transfer", f"--style={tiny}", f"--output={tmp_path / 'o.png'}", *FAST],
                 ["train", f"--dataset_dir={tmp_path / 'data'}", f"--style={tiny}", f"--train_dir={tmp_path / 'r'}"]):
        error_line(run_main(*args), 2, rule)
    from tf_nst import files, train_data  # pylint: disable=import-outside-toplevel

    Image.new("RGB", (15, 40)).save(tmp_path / "data" / "thin.png")
    found = train_data.find_images(str(tmp_path / "data"))
    assert [os.path.basename(path) for path in found.skipped] == ["thin.png"]
    assert files.MIN_IMAGE_SIDE == 16


# --- 3. Permissions: what a plain open()/mkdir() would give under the umask ------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_export_outputs_get_the_umask_modes(umask, tmp_path, stylizer):
    exports = tmp_path / "exports"
    result = run_main("export", f"--model={stylizer}", f"--export_dir={exports}", umask=umask)
    assert result.returncode == 0, result.stderr
    mode = lambda path: os.stat(path).st_mode & 0o777
    assert mode(exports / "stylizer" / "1") == 0o777 & ~umask  # mkdtemp alone gives 0o700
    for name in ("models.config", "batching_parameters.txt"):
        assert mode(exports / name) == 0o666 & ~umask  # mkstemp alone gives 0o600
    assert mode(exports / "stylizer" / "1" / "saved_model.pb") == 0o666 & ~umask
    assert not leftovers(exports)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_files_and_folders_get_the_umask_modes(umask, tmp_path):
    script = (f"import os; os.umask({umask}); from tf_nst import outputs\n"
              f"with outputs.atomic_output({str(tmp_path / 'stylizer.keras')!r}) as temp:\n"
              "    open(temp, 'wb').write(b'model')\n"
              f"with outputs.atomic_output({str(tmp_path / 'folder')!r}, directory=True) as temp:\n"
              "    open(os.path.join(temp, 'inside'), 'wb').write(b'x')\n")
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True)
    assert os.stat(tmp_path / "stylizer.keras").st_mode & 0o777 == 0o666 & ~umask
    assert os.stat(tmp_path / "folder").st_mode & 0o777 == 0o777 & ~umask
    assert sorted(os.listdir(tmp_path)) == ["folder", "stylizer.keras"]


@pytest.mark.parametrize("directory", [False, True])
def test_an_interrupted_atomic_write_leaves_nothing(directory, tmp_path):
    from tf_nst import outputs, signals  # pylint: disable=import-outside-toplevel

    with pytest.raises(signals.Interrupted):
        with outputs.atomic_output(str(tmp_path / "out" / "result"), directory=directory) as temp:
            with open(os.path.join(temp, "part") if directory else temp, "wb") as f:
                f.write(b"half")
            raise signals.Interrupted(signal.SIGINT)  # as the handler raises it mid-write
    assert os.listdir(tmp_path / "out") == []


def test_a_write_fault_is_a_write_error_naming_the_path_and_cause(tmp_path, monkeypatch):
    from tf_nst import outputs  # pylint: disable=import-outside-toplevel
    from tf_nst.errors import WriteError  # pylint: disable=import-outside-toplevel

    def full_disk(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), args[-1])

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(WriteError, match=r"cannot write '.*data\.bin': No space left on device"):
        outputs.write_file(str(tmp_path / "data.bin"), b"x" * 1000)
    assert os.listdir(tmp_path) == []


# --- 8. Two runs with one output: the later never replaces the earlier's result without --overwrite ------------

# Another run writes this run's outputs just after this run's start-up check passed (the check finds nothing).
_ANOTHER_RUN_WRITES = """
import os
import tf_nst.outputs
_check = tf_nst.outputs.check_writable_files
def _then_another_run_writes(paths, what="outputs"):
    _check(paths, what)
    for path in paths:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"the other run's result")
tf_nst.outputs.check_writable_files = _then_another_run_writes
"""


def _kept(line, folder):
    """The path the one error line says the result is kept at, checked to be an image in `folder`."""
    kept = line.rsplit("kept at ", 1)[1].strip("'")
    assert os.path.dirname(kept) == str(folder)
    Image.open(kept).verify()
    return kept


def test_an_output_that_appears_during_transfer_is_not_replaced(tmp_path, image_files):
    out = tmp_path / "o.png"
    result = run_main("transfer", f"--content={image_files['content']}", f"--output={out}", *FAST,
                      setup=_ANOTHER_RUN_WRITES)
    line = error_line(result, 1, f"{str(out)!r} appeared while this run was working", "left as it is")
    assert out.read_bytes() == b"the other run's result"
    kept = _kept(line, tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(["o.png", os.path.basename(kept)])
    assert "o-kept-" in kept and kept.endswith(".png")


def test_an_output_that_appears_during_stylize_is_not_replaced(tmp_path, image_files, stylizer):
    out = tmp_path / "out"
    result = run_main("stylize", f"--model={stylizer}", f"--input={image_files['content']}", f"--output_dir={out}",
                      setup=_ANOTHER_RUN_WRITES)
    assert result.returncode == 1, result.stderr
    name = os.path.basename(image_files["content"])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tf-nst: skipped {image_files['content']}: "), result.stderr
    assert "appeared while this run was working" in lines[0] and "Traceback" not in result.stderr
    assert (out / name).read_bytes() == b"the other run's result"
    kept = _kept(lines[0], out)
    assert sorted(os.listdir(out)) == sorted([name, os.path.basename(kept)])


def test_overwrite_replaces_an_output_that_appears(tmp_path):
    from tf_nst import outputs  # pylint: disable=import-outside-toplevel

    path = tmp_path / "o.png"
    with outputs.atomic_output(str(path), replace=True) as temp:
        path.write_bytes(b"other")
        open(temp, "wb").write(b"ours")
    assert path.read_bytes() == b"ours" and os.listdir(tmp_path) == ["o.png"]


@pytest.mark.parametrize("hard_links", [True, False])
def test_atomic_output_without_replace_keeps_both_files(hard_links, tmp_path, monkeypatch):
    from tf_nst import outputs  # pylint: disable=import-outside-toplevel

    if not hard_links:  # as on FAT or some network filesystems
        def no_links(*args):
            raise OSError(errno.EPERM, os.strerror(errno.EPERM), args[0])
        monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "o.png"
    with outputs.atomic_output(str(path), replace=False) as temp:  # a new path: moved there
        open(temp, "wb").write(b"first")
    assert path.read_bytes() == b"first" and os.listdir(tmp_path) == ["o.png"]
    with pytest.raises(outputs.OutputAppearedError) as raised:
        with outputs.atomic_output(str(path), replace=False) as temp:
            open(temp, "wb").write(b"second")
    assert path.read_bytes() == b"first"
    assert open(raised.value.kept, "rb").read() == b"second" and raised.value.kept in str(raised.value)
    assert sorted(os.listdir(tmp_path)) == sorted(["o.png", os.path.basename(raised.value.kept)])


@pytest.mark.parametrize("existing", ["folder", "file"])
def test_a_folder_is_never_moved_over_one_that_appeared(existing, tmp_path):
    from tf_nst import outputs  # pylint: disable=import-outside-toplevel

    path = tmp_path / "1"
    with pytest.raises(outputs.OutputAppearedError) as raised:
        with outputs.atomic_output(str(path), directory=True) as temp:
            if existing == "folder":  # another export of the same version, finished first
                path.mkdir()
                (path / "saved_model.pb").write_bytes(b"theirs")
            else:
                path.write_bytes(b"theirs")
            (tmp_path / temp / "saved_model.pb").write_bytes(b"ours")
    assert (path / "saved_model.pb" if existing == "folder" else path).read_bytes() == b"theirs"
    assert open(os.path.join(raised.value.kept, "saved_model.pb"), "rb").read() == b"ours"
    assert sorted(os.listdir(tmp_path)) == sorted(["1", os.path.basename(raised.value.kept)])


# --- 9. One train run per --train_dir --------------------------------------------------------------------

_TINY_TRAIN = ["--weights=none", "--train_image_size=32", "--train_style_size=32", "--batch_size=1",
               "--num_train_steps=1", "--width_multiplier=0.25", "--summary_every=0"]


def test_a_second_train_run_on_one_train_dir_is_refused(tmp_path, image_files):
    import fcntl  # pylint: disable=import-outside-toplevel

    (tmp_path / "data").mkdir()
    Image.open(image_files["content"]).save(tmp_path / "data" / "photo.png")
    run = tmp_path / "run"
    run.mkdir()
    args = ["train", f"--dataset_dir={tmp_path / 'data'}", f"--style={image_files['style']}", f"--train_dir={run}",
            *_TINY_TRAIN]
    with open(run / ".lock", "w", encoding="ascii") as lock:  # as a first run holds it for its whole run
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        result = run_main(*args)
    error_line(result, 2, f"--train_dir {str(run)!r} is in use by another run", f"process {os.getpid()}",
               "give another --train_dir")
    assert result.stdout.split() == ["tensorflow-not-loaded"]
    assert os.listdir(run) == [".lock"]  # nothing of the refused run
    os.remove(run / ".lock")
    result = run_main(*args)  # once the first run is gone: trains, and leaves no lock file
    assert result.returncode == 0, result.stderr
    assert os.path.isfile(run / "stylizer.keras") and not os.path.exists(run / ".lock")


def test_folder_lock_nests_in_one_process_and_is_removed(tmp_path):
    from tf_nst import files, outputs  # pylint: disable=import-outside-toplevel

    folder = tmp_path / "new" / "run"
    with outputs.folder_lock(str(folder), what="--train_dir") as path:
        with outputs.folder_lock(str(folder), what="train_dir"):  # the CLI's, then train.train's
            assert open(path, encoding="ascii").read() == f"{os.getpid()}\n"
        holder = subprocess.run(
            [sys.executable, "-c", f"from tf_nst import outputs\nwith outputs.folder_lock({str(folder)!r}): pass"],
            cwd=ROOT, capture_output=True, text=True, check=False)
        assert "FolderInUseError" in holder.stderr and f"process {os.getpid()}" in holder.stderr
    assert not os.path.exists(tmp_path / "new")  # the folders it made, left empty, are removed
    assert files.train_lock_name("default") == ".lock"
    assert files.train_lock_name("multi_worker", {"TF_CONFIG": '{"task": {"type": "worker", "index": 1}}'}) == (
        ".lock-worker-1")


# --- 10. What the network sees after resizing: the one minimum-size rule ---------------------------------------

@pytest.fixture
def wide_photo(tmp_path, image_files):
    """A valid 600x200 photo (3:1): at --image_size=32 it becomes 32x11 px."""
    path = tmp_path / "wide.png"
    Image.open(image_files["content"]).convert("RGB").resize((600, 200)).save(path)
    return str(path)


@pytest.mark.parametrize("flag,size,expected", [
    ("content", 32, (32, 11)),  # 11 px: block4 (the deepest layer of weight > 0) is 1x1; block5 is not built
    ("style", 32, None),  # the style becomes 32x11 px
    (None, 16, None),  # the bundled photos at 16 px: 16x11
])
def test_an_image_resized_small_for_the_weight_zero_layer_still_runs(flag, size, expected, tmp_path, wide_photo):
    out = tmp_path / "o.png"
    image = [f"--{flag}={wide_photo}"] if flag else []
    result = run_main("transfer", *image, f"--output={out}", "--weights=none", f"--image_size={size}",
                      "--num_steps=2")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert Image.open(out).size == (expected or (size, round(size * 300 / 451)))


def test_an_image_too_small_after_resizing_names_the_smallest_image_size(tmp_path, wide_photo):
    result = run_main("transfer", f"--content={wide_photo}", f"--output={tmp_path / 'o.png'}", "--weights=none",
                      "--image_size=16", "--num_steps=2")
    line = error_line(result, 2, f"content image {wide_photo!r} becomes 16x5 px", "at least 8 px on each side",
                      "; --image_size=23 is the smallest that works")
    assert line.endswith("works") and os.listdir(tmp_path) == ["wide.png"]
    assert result.stdout.split() == ["tensorflow-not-loaded"]  # the header's size is enough to know
    result = run_main("transfer", f"--content={wide_photo}", f"--output={tmp_path / 'o.png'}", "--weights=none",
                      "--image_size=23", "--num_steps=2")
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "o.png").size == (23, 8)


@pytest.mark.parametrize("args,fragment", [
    (["--style={wide}", "--image_size=16"], "style image {wide!r} becomes 16x5 px"),
    (["--image_size=64", "--num_scales=4"], "becomes 7x5 px at the coarsest of 4 scales"),
])
def test_a_style_or_a_coarsest_scale_too_small_is_refused_before_tensorflow_loads(args, fragment, tmp_path,
                                                                                   wide_photo):
    result = run_main("transfer", *(arg.format(wide=wide_photo) for arg in args), f"--output={tmp_path / 'o.png'}",
                      "--weights=none", "--num_steps=2")
    error_line(result, 2, fragment.format(wide=wide_photo), "the chosen layers need at least 8 px on each side",
               "is the smallest that works")
    assert result.stdout.split() == ["tensorflow-not-loaded"] and os.listdir(tmp_path) == ["wide.png"]


@pytest.mark.parametrize("server", ["host:abc", "host:0", "host:65536", "host", ":8501", "http://host:8501"])
def test_a_bad_server_is_one_line_before_any_request(server, tmp_path, image_files):
    result = run_main("serve-request", f"--input={image_files['content']}", f"--output_dir={tmp_path / 'out'}",
                      f"--server={server}")
    error_line(result, 2, f"--server={server}", "host:port with a port from 1 to 65535")
    assert result.stdout.split() == ["tensorflow-not-loaded"] and not os.path.exists(tmp_path / "out")


# --- 11. batch: a full disk, Ctrl-C and two runs into one --output_dir ----------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory, stylizer):
    """The stylizer exported as a SavedModel version folder."""
    import keras  # pylint: disable=import-outside-toplevel

    from export import saved_model  # pylint: disable=import-outside-toplevel

    return saved_model.export(keras.models.load_model(stylizer), str(tmp_path_factory.mktemp("exports")))


@pytest.fixture(scope="module")
def two_photos(tmp_path_factory, image_files):
    folder = tmp_path_factory.mktemp("photos")
    for name, size in (("a.png", (64, 48)), ("b.png", (48, 64))):
        Image.open(image_files["content"]).convert("RGB").resize(size).save(folder / name)
    return folder


def test_a_full_disk_during_batch_is_one_line_without_beams_traceback(tmp_path, exported, two_photos):
    out = tmp_path / "out"
    result = run_main("batch", f"--model={exported}", f"--input={two_photos}", f"--output_dir={out}",
                      setup=_FAIL_OS_CALL.format(name="link", marker=str(out), code="ENOSPC"))
    line = error_line(result, 1, "cannot write", str(out), "No space left on device")
    assert "while running" not in line  # Beam's step annotation
    assert os.listdir(out) == []  # no output, no temporary


# Ctrl-C as the second output is moved into place (the first is written).
_CTRL_C_AT_THE_SECOND_OUTPUT = """
import os, signal
_link, _outputs = os.link, []
def _link_or_ctrl_c(source, destination, *args, **kwargs):
    if destination.endswith(".png"):
        _outputs.append(destination)
        if len(_outputs) == 2:
            os.kill(os.getpid(), signal.SIGINT)
    return _link(source, destination, *args, **kwargs)
os.link = _link_or_ctrl_c
"""


def test_ctrl_c_during_batch_is_one_line_and_130(tmp_path, exported, two_photos):
    out = tmp_path / "out"
    result = run_main("batch", f"--model={exported}", f"--input={two_photos}", f"--output_dir={out}",
                      setup=_CTRL_C_AT_THE_SECOND_OUTPUT)
    error_line(result, 130, "batch interrupted by SIGINT")
    assert len(os.listdir(out)) == 1 and os.listdir(out)[0] in ("a.png", "b.png")  # the first, whole
    Image.open(out / os.listdir(out)[0]).verify()


# Another batch run writes a.png into the same --output_dir just after this run found it missing.
_ANOTHER_BATCH_WRITES = """
import os
import export.batch_paths
_exists = export.batch_paths.exists
def _missing_then_written(path):
    found = _exists(path)
    if path.endswith("a.png"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"the other run's result")
    return found
export.batch_paths.exists = _missing_then_written
"""


def test_an_output_that_appears_during_batch_is_not_replaced(tmp_path, exported, two_photos):
    out = tmp_path / "out"
    result = run_main("batch", f"--model={exported}", f"--input={two_photos}", f"--output_dir={out}",
                      setup=_ANOTHER_BATCH_WRITES)
    assert result.returncode == 1 and "stylized 1, failed 1, skipped 0" in result.stdout, result.stderr
    assert (out / "a.png").read_bytes() == b"the other run's result"
    failure, = [json.loads(line) for line in (out / "_failures.jsonl").read_text().splitlines()]
    assert failure["path"] == str(two_photos / "a.png") and "appeared while this run was working" in failure["reason"]
    kept = _kept(failure["reason"], out)
    assert sorted(os.listdir(out)) == sorted(["a.png", "b.png", "_failures.jsonl", os.path.basename(kept)])
