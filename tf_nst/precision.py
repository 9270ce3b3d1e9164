"""Compute precision of the networks: the Keras dtype policies tf_nst accepts, applied while building, and the
policy "auto" stands for on this machine (whether its CPU has native bfloat16)."""

import contextlib
import os

# Gram matrices and losses stay float32 under every policy (see losses.py).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# "auto" (per-image transfer's default) stands for the fastest of them that gives the same picture here: see
# resolve().
AUTO = "auto"
# CPU flags of native bfloat16 arithmetic. With them, oneDNN ran the VGG19 step in mixed_bfloat16 in 0.52-0.60x
# the float32 time at 256 and 512 px (an AMD EPYC with avx512_bf16); without them, in 9x the time (BENCHMARKS.md,
# "Per-image transfer" and "bfloat16 on a CPU that has it").
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is missing)."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bfloat16(flags_of_cpu, environ=os.environ):
    """Whether TensorFlow runs bfloat16 natively on this CPU: the CPU has the instructions (BF16_CPU_FLAGS) and
    TensorFlow's oneDNN kernels, which use them, are not turned off (TF_ENABLE_ONEDNN_OPTS=0). With oneDNN off a
    VGG19 forward and backward at 128 px took 1364 ms in mixed_bfloat16 against 106 ms in float32 here."""
    onednn = environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false")
    return onednn and bool(set(BF16_CPU_FLAGS) & set(flags_of_cpu))


def resolve(name, has_gpu=None, flags_of_cpu=None, environ=os.environ):
    """The dtype policy `name` stands for: itself, or for "auto" mixed_bfloat16 on a machine without a GPU that
    runs bfloat16 natively (native_bfloat16), float32 elsewhere (GPUs included: mixed precision there is
    unmeasured).

    Args:
      name: "auto" or one of PRECISIONS.
      has_gpu: whether TensorFlow sees a GPU (default: ask TensorFlow).
      flags_of_cpu: the CPU's feature flags (default: cpu_flags()).
      environ: the environment, for TF_ENABLE_ONEDNN_OPTS.
    """
    if name != AUTO:
        return name
    if has_gpu is None:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        has_gpu = bool(tf.config.list_physical_devices("GPU"))
    flags_of_cpu = cpu_flags() if flags_of_cpu is None else flags_of_cpu
    return "mixed_bfloat16" if not has_gpu and native_bfloat16(flags_of_cpu, environ) else "float32"


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy for the layers created inside, and restores it afterwards.

    keras.applications and the transformer read the global policy when their layers are created.
    """
    import keras  # pylint: disable=import-outside-toplevel  # keeps PRECISIONS importable without TensorFlow

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
