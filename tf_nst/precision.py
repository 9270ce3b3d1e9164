"""Compute precision of the networks: the Keras dtype policies tf_nst accepts, applied while building."""

import contextlib

# Gram matrices and losses stay float32 under every policy (see losses.py).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


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
