"""Optional dependencies: imported when a feature needs them, with a one-line error naming what to install."""

import importlib

from tf_nst.errors import MissingDependencyError

# The pip package of each module that tf_nst imports only when a feature needs it, and its extra, if any.
PACKAGES = {"grpc": "grpcio", "tensorflow_serving": "tensorflow-serving-api", "apache_beam": "apache-beam",
            "ai_edge_litert": "ai-edge-litert", "av": "av", "cv2": "opencv-python-headless"}
EXTRAS = {"grpc": "serving", "apache_beam": "beam", "ai_edge_litert": "litert", "av": "video", "cv2": "video"}


def require(module, feature):
    """Imports `module` for `feature` (e.g. "the gRPC client"), or raises MissingDependencyError.

    The message names the extra of setup.cfg to install, or the pip package when no extra provides it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = (e.name or module).split(".")[0]
        if missing in EXTRAS:
            how = f"pip install 'tf-nst[{EXTRAS[missing]}]'"
        else:
            how = f"pip install {PACKAGES.get(missing, missing)}"
        raise MissingDependencyError(
            f"{feature} needs the {missing!r} module, which is not installed; {how}") from None
