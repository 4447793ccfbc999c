"""Issue 11, class 1: no code execution from data files (CIFAR batches: restricted unpickler)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from sparsecoder.cli import main
from sparsecoder.data.cifar import read_cifar_batch
from sparsecoder.data.safe_pickle import UnsafePickleError, load_data_pickle

BATCHES = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]


class _CreatesMarker:
    """Unpickling this calls ``open(marker, "w")``: a harmless stand-in for ``os.system``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _genuine_batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"training batch 1 of 5", b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img{k}.png".encode() for k in range(n)]}


def _write_folder(folder, poisoned=None):
    folder.mkdir(parents=True, exist_ok=True)
    for name in BATCHES:
        (folder / name).write_bytes(pickle.dumps(_genuine_batch(), protocol=2))
    if poisoned is not None:
        (folder / "data_batch_1").write_bytes(poisoned)


@pytest.mark.parametrize("where", ["top", "labels", "object_array"])
def test_a_batch_that_would_run_code_is_refused_and_nothing_runs(tmp_path, where):
    marker = tmp_path / "MARKER"
    batch = _genuine_batch()
    if where == "top":
        payload = _CreatesMarker(marker)
    elif where == "labels":
        batch[b"labels"] = [1, _CreatesMarker(marker)]
        payload = batch
    else:  # hidden inside an object array: its elements are unpickled too
        batch[b"data"] = np.array([_CreatesMarker(marker), 1], dtype=object)
        payload = batch
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(payload, protocol=2))
    # the independent truth: an unrestricted pickle.load really would run it
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_CreatesMarker(probe))).close()
    assert probe.exists()
    with pytest.raises(UnsafePickleError) as err:
        read_cifar_batch(path)
    assert str(path) in str(err.value) and "io.open" in str(err.value)
    assert not marker.exists()


def test_the_cli_refuses_the_file_in_one_line_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    folder = tmp_path / "cifar"
    _write_folder(folder, poisoned=pickle.dumps(_CreatesMarker(marker), protocol=4))
    code = main(["data", "show", "cifar_patches", "--data-dir", str(folder),
                 "--out", str(tmp_path / "g.png")])
    err = capsys.readouterr().err
    assert code != 0 and not marker.exists() and not (tmp_path / "g.png").exists()
    assert err.startswith("error: ") and err.count("\n") == 1
    assert str(folder / "data_batch_1") in err and "io.open" in err and "Traceback" not in err


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_genuine_batches_load_identically_to_pickle_load(tmp_path, protocol):
    batch = _genuine_batch(n=5, seed=protocol)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    ours = load_data_pickle(path)
    theirs = pickle.loads(path.read_bytes(), encoding="bytes")
    assert ours.keys() == theirs.keys()
    np.testing.assert_array_equal(ours[b"data"], theirs[b"data"])
    assert ours[b"labels"] == theirs[b"labels"] and ours[b"filenames"] == theirs[b"filenames"]
    images, labels = read_cifar_batch(path)
    # channel-major rows: red plane first (independent re-derivation of the layout)
    np.testing.assert_array_equal(images[:, :, :, 0].reshape(5, -1), batch[b"data"][:, :1024])
    np.testing.assert_array_equal(labels, batch[b"labels"])


def test_numpy1_module_names_of_the_real_cifar_files_are_admitted(tmp_path):
    """The downloaded CIFAR-10 batches were written by NumPy 1.x: 'numpy.core.multiarray._reconstruct'."""
    raw = pickle.dumps(_genuine_batch(), protocol=2)
    assert b"numpy._core.multiarray" in raw
    path = tmp_path / "data_batch_1"
    path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    images, _ = read_cifar_batch(path)
    assert images.shape == (4, 32, 32, 3)


def test_an_ndarray_subclass_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": np.ma.masked_array(np.zeros((2, 3072), np.uint8)),
                                   b"labels": [0, 1]}))
    with pytest.raises(UnsafePickleError, match="numpy.ma.core"):
        read_cifar_batch(path)


def test_a_30_byte_pickle_asking_numpy_for_terabytes_is_refused_naming_the_file(tmp_path):
    # before: numpy.ndarray and _reconstruct were admitted as callables, so REDUCE ndarray((2**40,)) (or
    # _reconstruct(ndarray, (2**40,), 'b')) allocated what the file asked: a MemoryError with no file named
    huge, empty = b"\x8a\x06\x00\x00\x00\x00\x00\x01\x85", b"K\x00\x85"  # the tuples (2**40,), (0,)
    direct = b"\x80\x02cnumpy\nndarray\n(" + huge + b"tR."
    via_reconstruct = (b"\x80\x02cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + empty
                       + b"U\x01b\x87R.")
    path = tmp_path / "data_batch_1"
    path.write_bytes(direct)
    with pytest.raises(UnsafePickleError, match="data_batch_1: refused to unpickle a call of numpy.ndarray"):
        read_cifar_batch(path)
    path.write_bytes(via_reconstruct.replace(empty, huge))
    with pytest.raises(UnsafePickleError, match=r"_reconstruct\(numpy.ndarray, \(1099511627776,\)"):
        read_cifar_batch(path)
    path.write_bytes(via_reconstruct)  # the genuine call: an empty array
    assert load_data_pickle(path).shape == (0,)


def test_a_batch_of_ragged_rows_is_named(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": [[0] * 3072, [0]], b"labels": [1, 2]}))
    with pytest.raises(ValueError, match=r"data_batch_1: b'data' is not an \(n, 3072\) array"):
        read_cifar_batch(path)
