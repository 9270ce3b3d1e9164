"""The machine line every bench script prints: CPU model, cores, TensorFlow version, GPU or CPU only."""

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
    """'<cpu>, <n> cores, TF <version>, GPU|CPU only'; imports TensorFlow."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    gpus = tf.config.list_physical_devices("GPU")
    return f"{cpu_model()}, {os.cpu_count()} cores, TF {tf.__version__}, {'GPU' if gpus else 'CPU only'}"
