"""Corrupt and forged CIFAR-10 batches: one ValueError naming the file, never a crash of the process, a
MemoryError or an exception from deep inside the unpickler."""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

from sparsecoder.data.cifar import read_cifar_batch
from sparsecoder.data.safe_pickle import UnsafePickleError

# uint8's dtype state (3, '|', None, None, None, -1, -1, 0) as protocol 2 writes it
GENUINE_STATE = b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"


def _read_in_a_fresh_process(path):
    code = ("import sys; from sparsecoder.data.cifar import read_cifar_batch\n"
            "try:\n    read_cifar_batch(sys.argv[1])\nexcept ValueError as err:\n"
            "    print('ValueError:', err); sys.exit(3)\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("genuine, forged", [
    (b"|q\x19N", b"|q\x19q"),  # one byte of a genuine batch changed: found by flipping bytes
    (GENUINE_STATE, b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t"),  # flags: the dtype holds objects
])
def test_a_forged_dtype_state_is_refused_not_a_segmentation_fault(tmp_path, genuine, forged):
    """numpy's dtype.__setstate__ accepts malformed state tuples: with one byte of a genuine batch changed
    (an N turned into BINPUT) the process died of a segmentation fault inside the "safe" unpickler, and
    flags claiming object references left a uint8 dtype that numpy cannot use (RuntimeError)."""
    data = np.zeros((2, 3072), np.uint8)
    batch = {b"batch_label": b"x", b"data": data, b"labels": [0, 0], b"filenames": [b"a.png"] * 2}
    blob = pickle.dumps(batch, protocol=2)
    assert blob.count(genuine) == 1
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob.replace(genuine, forged))
    result = _read_in_a_fresh_process(path)
    assert result.returncode == 3, (result.returncode, result.stderr[-2000:])
    assert str(path) in result.stdout and "dtype" in result.stdout


def test_a_length_claiming_terabytes_is_refused_naming_the_file_not_a_memory_error(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 2**45) + b"abc")  # BINBYTES8 of 32 TiB
    with pytest.raises(ValueError, match=r"data_batch_1: cannot read CIFAR batch .*corrupt or truncated"):
        read_cifar_batch(path)


@pytest.mark.parametrize("edit", [
    (b"latin1", b"lati<1"),  # _codecs.encode(…, 'lati<1'): LookupError
    (b"]q", b"(q"),  # a list turned into a MARK: AttributeError, IndexError…
])
def test_corrupt_bytes_give_one_error_naming_the_file(tmp_path, edit):
    blob = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"batch_label": b"x"},
                        protocol=2)
    assert edit[0] in blob
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob.replace(edit[0], edit[1], 1))
    with pytest.raises(ValueError, match=r"data_batch_1: "):
        read_cifar_batch(path)


def test_numpy_dtype_called_as_a_class_cannot_change_numpys_own_dtypes(tmp_path):
    """NEWOBJ of numpy.dtype gives numpy's shared int64 dtype (no copy); a BUILD then set its byte order
    for the whole process."""
    blob = (b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00i8\x85\x81"
            b"(K\x03X\x01\x00\x00\x00>NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.")
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match="data_batch_1"):
        read_cifar_batch(path)
    assert np.dtype("i8").byteorder == "=" and np.arange(3).tolist() == [0, 1, 2]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("labels", ["list", "int64", ">i8", "uint8"])
def test_genuine_batches_of_every_protocol_and_label_dtype_still_load(tmp_path, protocol, labels):
    data = np.random.default_rng(protocol).integers(0, 256, (3, 3072), dtype=np.uint8)
    values = [3, 0, 9]
    path = tmp_path / "data_batch_1"
    label_value = values if labels == "list" else np.array(values, dtype=labels)
    path.write_bytes(pickle.dumps({b"data": data, b"labels": label_value, b"filenames": [b"a.png"] * 3},
                                  protocol=protocol))
    images, got = read_cifar_batch(path)
    np.testing.assert_array_equal(images, data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    assert got.tolist() == values


def test_a_global_outside_the_allowed_ones_is_still_refused_before_import(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R.")
    with pytest.raises(UnsafePickleError, match="refused to unpickle the global 'os.system'"):
        read_cifar_batch(path)
