"""What every command shares at run time: one-line errors, flag parsing, importing TensorFlow quietly.

Commands check their flags and paths first, then call import_tensorflow(), so that a mistake is reported
before TensorFlow spends seconds loading.
"""

import contextlib
import functools
import math
import os
import sys

from absl import flags

from tf_nst import files
from tf_nst import precision as precision_lib
from tf_nst import pretrained
from tf_nst import signals
from tf_nst.errors import UserInputError
from tf_nst.errors import WriteError


def error(message):
    print(f"tf-nst: error: {message}", file=sys.stderr, flush=True)


def warn(message):
    print(f"tf-nst: warning: {message}", file=sys.stderr, flush=True)


def report_file(path, output, error):
    """One line per input file of `stylize` and `serve-request`: written (stdout) or skipped with its reason
    (stderr)."""
    if error:
        print(f"tf-nst: skipped {path}: {error}", file=sys.stderr, flush=True)
    else:
        print(f"tf-nst: wrote {output}", flush=True)


def require_finite_floats():
    """Registers one validator on every float flag defined so far: nan and inf are not numbers here.

    absl's bounds let them through (nan compares false with any bound), and a nan loss weight used to give a
    black image with exit status 0; numbers past float32's range become inf in the graph. parse_flags calls
    this, so every command's float flags get it.
    """
    for name, flag in flags.FLAGS._flags().items():  # pylint: disable=protected-access
        if isinstance(flag.parser, flags.FloatParser) and name not in _FINITE_CHECKED:
            _FINITE_CHECKED.add(name)
            flags.register_validator(name, functools.partial(_finite, name))


_FINITE_CHECKED = set()
# Values are computed in float32, where anything larger is inf.
_FLOAT32_MAX = 3.4028234663852886e38


def _finite(name, value):
    if value is not None and not (math.isfinite(value) and abs(value) <= _FLOAT32_MAX):
        raise flags.ValidationError(f"not a finite number (float32: at most 3.4e38); give a number such as "
                                    f"--{name}={flags.FLAGS[name].default}")
    return True


def parse_flags(argv):
    """Parses flags; a bad flag is a one-line error and exit status 2 (absl's default is a usage dump)."""
    require_finite_floats()
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        error(str(e).splitlines()[0] if str(e) else type(e).__name__)
        sys.exit(2)


def parse_known_flags(argv):
    """Like parse_flags, but flags that no command defined are left in the returned argv (after argv[0]).

    For a command that passes other flags on, as `batch` passes Beam's pipeline options.
    """
    require_finite_floats()
    try:
        return flags.FLAGS(argv, known_only=True)
    except flags.Error as e:
        error(str(e).splitlines()[0] if str(e) else type(e).__name__)
        sys.exit(2)


def run_command(command, body, argv):
    """Runs body() for `command`: a UserInputError becomes one line on stderr and exit status 2, a WriteError
    (an output that could not be written) one line and status 1, SIGINT or SIGTERM one line and 128 + signal.

    Internal errors are not caught: they stay loud.
    """
    try:
        with signals.raising():
            if len(argv) > 1:
                raise UserInputError(f"unexpected argument(s) {' '.join(argv[1:])!r} for `{command}`; the "
                                     "command goes first (main.py COMMAND --flags) and every value is a --flag")
            return body()
    except UserInputError as e:
        error(e)
        return 2
    except WriteError as e:
        error(e)
        return 1
    except signals.Interrupted as e:
        error(f"{command} interrupted by {e.name}; stopped, and its temporary files removed")
        return 128 + e.signum


def model_kind(model):
    """"arbitrary", "multistyle" or "one-style", for a built-in name or a .keras file (read without TensorFlow)."""
    if pretrained.is_builtin(model):
        pretrained.check_available(model)
        return pretrained.NETWORKS[model].kind
    if not os.path.exists(model) and os.sep not in model and not model.endswith(".keras"):
        raise UserInputError(f"--model={model!r} is neither a file nor a built-in network; use one of "
                             f"{', '.join(pretrained.NETWORKS)} (main.py models), a .keras file or a --train_dir")
    return "arbitrary" if files.is_arbitrary_model(files.find_model(model)) else "one-style"


def require_flags(command, *holders):
    missing = [f"--{holder.name}" for holder in holders if not holder.value]
    if missing:
        raise UserInputError(f"the {command} command needs {', '.join(missing)}")


@contextlib.contextmanager
def quiet_native_stderr():
    """Hides what TensorFlow's C++ runtime prints while it loads (CUDA probing, CPU feature notes).

    Those lines are written before TF_CPP_MIN_LOG_LEVEL takes effect. Python errors are unaffected: an
    import that fails raises after stderr is restored.
    """
    saved = os.dup(2)
    try:
        with open(os.devnull, "w", encoding="utf-8") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    """Imports TensorFlow quietly, with the pooled CPU allocator and GPU memory growth."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow's pooled (BFC) CPU allocator, read at the first allocation. The default allocator takes each
    # large activation from a fresh mmap whose pages fault in again on every call; pooling made a 512 px
    # Adam step 1.4x and the slim stylizer at 1024 px 1.15x-1.3x faster (BENCHMARKS.md). Set the variable to
    # false to keep TensorFlow's default.
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    with quiet_native_stderr():
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        tf.config.list_physical_devices("GPU")  # the CUDA probe logs on first use
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    tf.get_logger().setLevel("ERROR")


def device_name():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    gpus = tf.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU(s)" if gpus else "CPU"


def slow_settings_warnings(precision, jit_compile, has_gpu, flags_of_cpu, environ=os.environ):
    """One-line warnings for settings that run slower here than the defaults; a list of strings.

    Measured on the 2-core development CPU (issue 13): 40 steps at 256 px took 241 s in mixed_bfloat16 against
    26 s in float32 without native bf16 instructions; XLA ran the step 2-8x slower."""
    warnings = []
    if not has_gpu and precision == "mixed_bfloat16" and not precision_lib.native_bfloat16(flags_of_cpu, environ):
        warnings.append("--precision=mixed_bfloat16 on a CPU without native bfloat16 (avx512_bf16 or amx_bf16, "
                        "with TensorFlow's oneDNN on) ran about 9x slower than float32 (241 s against 26 s for 40 "
                        "steps at 256 px); use --precision=float32 here")
    if not has_gpu and jit_compile:
        warnings.append("--jit_compile on a CPU: XLA made the step 2-8x slower than without it here; drop it "
                        "unless you have measured otherwise")
    return warnings


def warn_slow_settings(precision, jit_compile=False):
    """Prints slow_settings_warnings for this machine (call after import_tensorflow)."""
    for message in slow_settings_warnings(precision, jit_compile, device_name() != "CPU", precision_lib.cpu_flags()):
        warn(message)
