"""tf_nst: neural style transfer for TensorFlow 2 and Keras 3.

Importing the package is cheap; TensorFlow is imported by the modules that need it, and by the first call of
`transfer` or `load_stylizer`:

    import tf_nst
    image = tf_nst.transfer("photo.jpg", "painting.jpg", image_size=256, num_steps=100, verbose=1)
    stylizer = tf_nst.load_stylizer("runs/painting")   # .keras, train_dir or SavedModel version
    styled = stylizer(image)                           # uint8 in, uint8 out
"""

import importlib
import os
import sys

from tf_nst.errors import UserInputError

__all__ = ["SAMPLES_DIR", "RandomStyle", "UserInputError", "load_stylizer", "stylize_frames", "stylize_video",
           "transfer"]
__version__ = "0.1.0"

# Small public-domain images shipped for the default run; sources in samples/SOURCES.md.
SAMPLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")


def transfer(content, style, **options):
    """Stylises `content` with `style` by optimising its pixels; see tf_nst.api.transfer for the options.

    Returns:
      The stylised image, a uint8 [H, W, 3] NumPy array.
    """
    _import_tensorflow()
    from tf_nst import api  # pylint: disable=import-outside-toplevel

    return api.transfer(content, style, **options)


def load_stylizer(path):
    """A trained stylizer (`.keras` file, train_dir or SavedModel version) as a function of uint8 images."""
    _import_tensorflow()
    from tf_nst import api  # pylint: disable=import-outside-toplevel

    return api.load_stylizer(path)


def stylize_video(input_path, output_path, style=None, **options):
    """Stylises a video file (or a folder of frames) into an MP4, a GIF or a folder of PNG frames, without flicker;
    see tf_nst.api.stylize_video for the options.

    Returns:
      A tf_nst.video.VideoResult (the output, its frames, whether audio was copied).
    """
    _import_tensorflow()
    from tf_nst import api  # pylint: disable=import-outside-toplevel

    return api.stylize_video(input_path, output_path, style, **options)


def stylize_frames(frames, style=None, **options):
    """A generator: uint8 [H, W, 3] frames in, stylised frames out, each consistent with the one before (see
    tf_nst.api.stylize_frames)."""
    _import_tensorflow()
    from tf_nst import api  # pylint: disable=import-outside-toplevel

    return api.stylize_frames(frames, style, **options)


def _import_tensorflow():
    """Imports TensorFlow as the command line does (cli.common.import_tensorflow), without the start-up lines its
    C++ runtime prints (CUDA probing, oneDNN, CPU features), unless the caller imported it already."""
    if "tensorflow" not in sys.modules:
        from tf_nst.cli import common  # pylint: disable=import-outside-toplevel

        common.import_tensorflow()


def __getattr__(name):
    """`tf_nst.RandomStyle`, `tf_nst.losses` and the other submodules, imported on first use (they import
    TensorFlow)."""
    if name.startswith("_"):
        raise AttributeError(name)
    if name == "RandomStyle":  # style augmentation, a Keras layer (tf_nst.augment)
        return importlib.import_module(f"{__name__}.augment").RandomStyle
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
