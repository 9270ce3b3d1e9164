"""tf_nst: neural style transfer for TensorFlow 2 and Keras 3.

Importing the package is cheap; TensorFlow is imported by the modules that need it.
"""

import os

from tf_nst.errors import UserInputError

__all__ = ["SAMPLES_DIR", "UserInputError"]
__version__ = "0.1.0"

# Small public-domain images shipped for the default run; sources in samples/SOURCES.md.
SAMPLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")
