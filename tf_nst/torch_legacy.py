"""Reads PyTorch's legacy (non-zip) `torch.save` files with numpy and a restricted unpickler; no torch.

The layout (torch/serialization.py, `_legacy_save`): five pickles in a row (magic number, protocol version,
system info, the saved object, the sorted list of storage keys), then each storage's raw bytes, in that key
order, each prefixed by its element count as a little-endian int64. Tensors in the saved object are
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` calls whose storages are persistent
ids ("storage", type, key, location, count, None). Only those classes are accepted: a file that asks for any
other global is refused before anything of it runs.
"""

import collections
import io
import pickle

import numpy as np

from tf_nst.errors import UserInputError

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001
_ZIP_MAGIC = b"PK\x03\x04"

_STORAGE_DTYPES = {
    "ByteStorage": np.uint8, "CharStorage": np.int8, "ShortStorage": np.int16, "IntStorage": np.int32,
    "LongStorage": np.int64, "HalfStorage": np.float16, "FloatStorage": np.float32,
    "DoubleStorage": np.float64, "BoolStorage": np.bool_,
}


class _StorageType:
    """Stands for a `torch.<X>Storage` class inside the pickle."""

    def __init__(self, name):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _TensorRef:
    """A tensor whose storage bytes come after the pickles; materialised once they are read."""

    def __init__(self, key, offset, shape, strides):
        self.key, self.offset, self.shape, self.strides = key, offset, tuple(shape), tuple(strides)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused_args):
    return _TensorRef(storage, storage_offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals that a legacy torch tensor dict needs, and never imports anything."""

    def __init__(self, file, path, storages=None):
        super().__init__(file)
        self._path = path
        self._storages = storages  # key -> (dtype, count), filled by persistent_load; None: no tensors here

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2") and self._storages is not None:
            return _rebuild_tensor_v2
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES and self._storages is not None:
            return _StorageType(name)
        raise UserInputError(
            f"{self._path!r} asks to load {module}.{name}, which a PyTorch tensor file does not need; refusing "
            "to unpickle it (only tensors, dicts and numbers are read)")

    def persistent_load(self, pid):
        if (self._storages is None or not isinstance(pid, tuple) or len(pid) != 6 or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType) or pid[5] is not None):
            raise UserInputError(f"{self._path!r} is not a PyTorch legacy tensor file (bad storage record)")
        _, storage_type, key, _, count, _ = pid
        self._storages[key] = (storage_type.dtype, int(count))
        return key


def load(path):
    """Reads a legacy `torch.save` file of tensors as numpy arrays.

    Args:
      path: the file.

    Returns:
      The saved object with every tensor replaced by a numpy array (a copy, in the tensor's shape).

    Raises:
      UserInputError: the file is not in that format, asks for classes beyond tensors, or is truncated.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(_ZIP_MAGIC):
        raise UserInputError(f"{path!r} is a zip-format torch file; only the legacy format is read here")
    stream = io.BytesIO(data)
    try:
        header = [_RestrictedUnpickler(stream, path).load() for _ in range(3)]
        storages = {}
        saved = _RestrictedUnpickler(stream, path, storages).load()
        keys = _RestrictedUnpickler(stream, path).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError) as e:
        if isinstance(e, UserInputError):
            raise
        raise UserInputError(f"{path!r} is not a PyTorch legacy tensor file ({type(e).__name__})") from None
    magic, version, system = header
    if magic != _MAGIC_NUMBER or version != _PROTOCOL_VERSION or not isinstance(system, dict):
        raise UserInputError(f"{path!r} is not a PyTorch legacy tensor file (no magic number)")
    if not system.get("little_endian", False):
        raise UserInputError(f"{path!r} was written on a big-endian machine; that is not supported")
    arrays = _read_storages(stream, keys, storages, path)
    return _materialise(saved, arrays, path)


def _read_storages(stream, keys, storages, path):
    arrays = {}
    for key in keys:
        if key not in storages:
            raise UserInputError(f"{path!r} lists a storage {key!r} that no tensor uses")
        dtype, count = storages[key]
        prefix = stream.read(8)
        if len(prefix) != 8 or int.from_bytes(prefix, "little", signed=True) != count:
            raise UserInputError(f"{path!r} is truncated or corrupt (storage {key!r})")
        raw = stream.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise UserInputError(f"{path!r} is truncated (storage {key!r})")
        arrays[key] = np.frombuffer(raw, dtype=dtype)
    return arrays


def _materialise(value, arrays, path):
    if isinstance(value, _TensorRef):
        if value.key not in arrays:
            raise UserInputError(f"{path!r} is truncated: storage {value.key!r} is missing")
        storage = arrays[value.key]
        extent = value.offset + sum((n - 1) * s for n, s in zip(value.shape, value.strides)) + 1
        if value.offset < 0 or min(value.strides, default=0) < 0 or (np.prod(value.shape) and extent > storage.size):
            raise UserInputError(f"{path!r} is corrupt: a tensor reaches past its storage")
        item = storage.itemsize
        view = np.lib.stride_tricks.as_strided(
            storage[value.offset:], shape=value.shape, strides=[s * item for s in value.strides], writeable=False)
        return np.array(view)
    if isinstance(value, dict):
        return type(value)((key, _materialise(item, arrays, path)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_materialise(item, arrays, path) for item in value)
    return value
