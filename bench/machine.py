"""The machine line every bench script prints: CPU model, cores, native bfloat16 or not, TensorFlow version, GPU
or CPU only."""

import os
import platform


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (platform.processor() where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
                        platform.processor() or "?")
    except OSError:
        return platform.processor() or "?"


def describe():
    """'<cpu>, <n> cores, native bf16 (<flags>)|no native bf16, TF <version>, GPU|CPU only'; imports TensorFlow.

    Native bfloat16 (tf_nst.precision.native_bfloat16: the instructions, with TensorFlow's oneDNN on) took the
    VGG step to about 0.55x float32's time in mixed_bfloat16 and is what --precision=auto looks for, so every table
    says whether its machine had it."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from tf_nst import precision  # pylint: disable=import-outside-toplevel

    flags_of_cpu = precision.cpu_flags()
    native = sorted(set(precision.BF16_CPU_FLAGS) & flags_of_cpu)
    bf16 = f"native bf16 ({', '.join(native)})" if precision.native_bfloat16(flags_of_cpu) else "no native bf16"
    gpus = tf.config.list_physical_devices("GPU")
    return f"{cpu_model()}, {os.cpu_count()} cores, {bf16}, TF {tf.__version__}, {'GPU' if gpus else 'CPU only'}"
