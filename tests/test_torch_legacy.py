"""The legacy torch.save reader, against a writer of that format written here from torch's `_legacy_save`."""

import collections
import os
import pickle
import sys
import types

import numpy as np
import pytest

from tf_nst import torch_legacy
from tf_nst.errors import UserInputError

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_STORAGE_NAMES = {np.dtype(np.uint8): "ByteStorage", np.dtype(np.float32): "FloatStorage",
                  np.dtype(np.int64): "LongStorage", np.dtype(np.float16): "HalfStorage"}


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _Tensor:
    """Pickles as torch does: _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)."""

    def __init__(self, storage, offset, shape, strides):
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides

    def __reduce__(self):
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        return rebuild, (self.storage, self.offset, self.shape, self.strides, False, collections.OrderedDict())


def _fake_torch(monkeypatch):
    """Modules named like torch's, so that pickle writes the same GLOBAL opcodes as torch."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        del args

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in _STORAGE_NAMES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class _Pickler(pickle.Pickler):
    def __init__(self, file, torch):
        super().__init__(file, protocol=2)
        self.torch, self.storages = torch, {}

    def persistent_id(self, obj):
        if not isinstance(obj, _Storage):
            return None
        self.storages[obj.key] = obj.array
        storage_type = getattr(self.torch, _STORAGE_NAMES[obj.array.dtype])
        return ("storage", storage_type, obj.key, "cpu", obj.array.size, None)


def write_legacy(path, obj, monkeypatch):
    """torch/serialization.py `_legacy_save`: five pickles, then each storage as int64 count + raw bytes."""
    torch = _fake_torch(monkeypatch)
    with open(path, "wb") as f:
        for header in (_MAGIC_NUMBER, 1001, {"protocol_version": 1001, "little_endian": True,
                                             "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(header, f, protocol=2)
        pickler = _Pickler(f, torch)
        pickler.dump(obj)
        keys = sorted(pickler.storages)
        pickle.dump(keys, f, protocol=2)
        for key in keys:
            array = pickler.storages[key]
            f.write(np.int64(array.size).tobytes())
            f.write(array.astype(array.dtype.newbyteorder("<")).tobytes())
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.delitem(sys.modules, "torch._utils")


def test_tensors_come_back_exact_with_offsets_strides_and_shared_storage(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    indices = rng.integers(0, 256, size=(4, 3, 3, 3), dtype=np.uint8)
    table = rng.normal(size=256).astype(np.float32)
    shared = rng.normal(size=30).astype(np.float32)
    counts = np.arange(5, dtype=np.int64) - 2
    storage = _Storage("140001", shared)
    obj = collections.OrderedDict([
        ("conv_W_q", _Tensor(_Storage("2", indices.ravel()), 0, (4, 3, 3, 3), (27, 9, 3, 1))),
        ("conv_W_table", _Tensor(_Storage("10", table), 0, (256,), (1,))),
        ("first", _Tensor(storage, 0, (2, 5), (5, 1))),          # rows 0-1 of a 6x5 storage
        ("transposed", _Tensor(storage, 10, (5, 4), (1, 5))),    # rows 2-5, transposed, from offset 10
        ("counts", _Tensor(_Storage("3", counts), 0, (5,), (1,))),
        ("half", _Tensor(_Storage("4", np.float16([1.5, -2.25])), 0, (2,), (1,))),
        ("step", 7),
    ])
    path = str(tmp_path / "tensors.bin")
    write_legacy(path, obj, monkeypatch)
    loaded = torch_legacy.load(path)
    assert list(loaded) == list(obj)
    np.testing.assert_array_equal(loaded["conv_W_q"], indices)
    assert loaded["conv_W_q"].dtype == np.uint8
    np.testing.assert_array_equal(loaded["conv_W_table"], table)
    np.testing.assert_array_equal(loaded["first"], shared.reshape(6, 5)[:2])
    np.testing.assert_array_equal(loaded["transposed"], shared.reshape(6, 5)[2:].T)
    np.testing.assert_array_equal(loaded["counts"], counts)
    np.testing.assert_array_equal(loaded["half"], np.float16([1.5, -2.25]))
    assert loaded["step"] == 7


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_a_file_that_asks_for_other_globals_is_refused_without_running_them(tmp_path):
    marker = str(tmp_path / "ran")
    path = str(tmp_path / "evil.bin")
    with open(path, "wb") as f:
        for header in (_MAGIC_NUMBER, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump({"layer": _RunsCode(marker)}, f, protocol=2)
    with pytest.raises(UserInputError, match=r"asks to load (posix|os)\.mkdir.*refusing") as raised:
        torch_legacy.load(path)
    assert not os.path.exists(marker)
    assert "\n" not in str(raised.value)


def test_truncated_zip_and_foreign_files_are_one_line_errors(tmp_path, monkeypatch):
    good = str(tmp_path / "good.bin")
    write_legacy(good, {"w": _Tensor(_Storage("1", np.arange(100, dtype=np.float32)), 0, (100,), (1,))},
                 monkeypatch)
    data = open(good, "rb").read()
    cases = {"truncated.bin": (data[:-10], "truncated"), "zip.pt": (b"PK\x03\x04" + data, "zip-format"),
             "text.bin": (b"hello world", "not a PyTorch legacy tensor file")}
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(UserInputError, match=message):
            torch_legacy.load(str(path))
