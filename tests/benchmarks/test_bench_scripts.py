"""The benchmark scripts other than bench_training.py, as a user re-runs them: bad arguments refused before
any work in one line, a missing competitor skipped with a note naming the install command, output files
checked before the run."""

import os
import sys

import pytest

from tests.benchmarks.test_bench_training import load_script, refused


@pytest.fixture(scope="module")
def dictionary_learning():
    saved = dict(os.environ)  # the script pins the BLAS threads to 1 in the environment when imported
    try:
        return load_script("bench_dictionary_learning")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_dictionary_learning_without_spams_skips_its_column_and_says_so(dictionary_learning, monkeypatch,
                                                                         capsys):
    monkeypatch.setitem(sys.modules, "spams", None)  # as if not installed
    assert list(dictionary_learning.peers()) == ["scikit-learn MBDL (cd, batch 256)"]
    note = capsys.readouterr().err
    assert "spams is not installed" in note and "pip install spams-bin" in note and "make bench" in note
    assert dictionary_learning.peers(skip_sklearn=True) == {}


def test_dictionary_learning_refuses_bad_arguments_before_any_work(dictionary_learning, tmp_path, capsys):
    main = dictionary_learning.main
    refused(main, ["--epochs", "0"], capsys, "--epochs", ">= 1")
    refused(main, ["--batch-size", "-4"], capsys, "--batch-size", ">= 1")
    refused(main, ["--peer-epochs", "1", "0"], capsys, "--peer-epochs", ">= 1")
    refused(main, ["--plot", str(tmp_path)], capsys, "--plot", "is a folder")
    (tmp_path / "curves.png").write_bytes(b"kept")
    refused(main, ["--plot", str(tmp_path / "curves.png")], capsys, "exists", "--overwrite")
    assert (tmp_path / "curves.png").read_bytes() == b"kept"


@pytest.fixture(scope="module")
def sparse_encode_bench():
    return load_script("bench_sparse_encode")


def test_sparse_encode_refuses_bad_arguments_before_any_work(sparse_encode_bench, tmp_path, capsys,
                                                              monkeypatch):
    main = sparse_encode_bench.main
    refused(main, ["--repeats", "0"], capsys, "--repeats", ">= 1")  # was a StatisticsError after the inputs
    refused(main, ["--n", "10", "--threads", "0"], capsys, "--threads", ">= 1")
    refused(main, ["--n", "10", "--gap", "-1"], capsys, "--gap", ">= 0")
    refused(main, ["--output", str(tmp_path)], capsys, "--output", "is a folder")
    (tmp_path / "table.md").write_text("kept")
    refused(main, ["--output", str(tmp_path / "table.md")], capsys, "exists", "--overwrite")
    assert (tmp_path / "table.md").read_text() == "kept"
    monkeypatch.setitem(sys.modules, "spams", None)  # as if not installed
    refused(main, ["--n", "10"], capsys, "needs spams", "make bench", "pip install spams-bin")


def test_sparse_encode_without_spams_leaves_out_its_rows_and_says_so(sparse_encode_bench, monkeypatch,
                                                                   capsys):
    monkeypatch.setitem(sys.modules, "spams", None)
    names = list(sparse_encode_bench.solvers())
    assert names and not any("SPAMS" in name for name in names)
    note = capsys.readouterr().err
    assert "spams is not installed" in note and "pip install spams-bin" in note
