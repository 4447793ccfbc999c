"""Class labels: one check (data.base.check_labels over check_integer_values) behind the array files'
labels, eval.probe.class_indices (sample_per_class, topk_error) and train_probe, each naming its own labels
and fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsecoder.data import load
from sparsecoder.data.base import MAX_CLASSES, check_integer_values, check_labels
from sparsecoder.eval.probe import class_indices, sample_per_class, topk_error, train_probe

REFUSED = [  # (labels of 4 samples, n_classes, fragment of the problem named)
    (np.array([0, 1, 2, 3.5]), 4, r"1 of the L is not an integer \(e.g. 3.5\); expected integers 0–3"),
    (np.array([0.5, 1, 2, 3.5]), 4, r"2 L are not integers \(e.g. 0.5\); expected integers 0–3"),
    (np.array([True, False, True, False]), 4, "L have dtype bool"),
    (np.array([0.0, np.nan, 1.0, 2.0]), 4, "1 of the L is NaN or inf"),
    (np.array([0.0, np.nan, np.inf, 2.0]), 4, "2 L are NaN or inf"),
    (np.array([0.0, np.inf, 1.0, 2.0]), 4, "1 of the L is NaN or inf"),
    (np.array([0, -1, 1, 2]), 4, r"L range from -1 to 2 \(int64\)"),
    (np.array([0, 1, 2, 4]), 4, r"L range from 0 to 4 \(int64\); expected integers 0–3"),
    (np.array([0, 1, 2, 10**12]), None, f"L range from 0 to 1000000000000 .*integers 0–{MAX_CLASSES - 1}"),
    (np.array([0, 1, 2, 2**63 + 5], dtype=np.uint64), None,
     "L range from 0 to 9223372036854775813 \\(uint64"),
    (np.array([0.0, 1.0, 2.0, 1e300]), None, "L range from 0.0 to 1e\\+300"),
    (np.array([0, 1, 2, 2**70], dtype=object), None, r"L have dtype object \(Python objects"),
    (np.array(["0", "1", "2", "3"]), None, "L have dtype <U1"),
    (np.array([0, 1, 2, 3], dtype=np.complex64), None, "L have dtype complex64"),
    (np.array([[0, 1], [2, 3]]), None, r"L must be 1-D, one class index per sample \(shape \(n,\)\), got "
                                       r"shape \(2, 2\)"),
    ([[0, 1], [2]], None, "L are not an array of numbers"),
]


@pytest.mark.parametrize("labels, n_classes, problem", REFUSED)
def test_check_labels_names_the_labels_the_problem_and_the_fix(labels, n_classes, problem):
    with pytest.raises(ValueError, match=f"^{problem}.*; FIX$"):
        check_labels(labels, "L", "FIX", n_classes=n_classes)


def test_check_labels_accepts_integral_floats_and_every_integer_dtype():
    for labels in ([0, 3, 1], np.array([0.0, 3.0, 1.0], dtype=np.float32), np.array([0, 3, 1], np.uint64),
                   torch.tensor([0, 3, 1], dtype=torch.int16),
                   torch.tensor([0.0, 3.0, 1.0], dtype=torch.bfloat16)):
        out = check_labels(labels, "L", "FIX", n_classes=4)
        assert out.dtype == np.int64 and out.tolist() == [0, 3, 1]
    assert check_labels([MAX_CLASSES - 1], "L", "FIX").tolist() == [MAX_CLASSES - 1]
    with pytest.raises(ValueError, match=r"^L must be 1-D.*\(shape \(3,\)\), got shape \(2,\); FIX$"):
        check_labels([0, 1], "L", "FIX", length=3)
    assert check_labels(np.zeros(0), "L", "FIX", length=0).shape == (0,)


def test_check_integer_values_refuses_bools_now():
    """Booleans passed as 0/1; a bool array is not integer pixel data or class labels."""
    with pytest.raises(ValueError, match=r"^f.idx: pixel values have dtype bool \(True/False"):
        check_integer_values("f.idx", "pixel values", np.ones(3, dtype=bool), 0, 255, "fix")


@pytest.mark.parametrize("labels, n_classes, problem", REFUSED)
def test_probe_twins_refuse_the_same_labels_naming_their_own(labels, n_classes, problem):
    """class_indices let bools (True as class 1), labels up to 2**62 (with no n_classes) and bfloat16
    tensors (a TypeError) through its own copy of the check; now it is check_labels."""
    problem = problem.replace("L ", "labels ", 1)
    with pytest.raises(ValueError, match=f"^{problem}"):
        class_indices(labels, n_classes=n_classes)
    if n_classes is None and isinstance(labels, np.ndarray) and labels.ndim == 1:
        with pytest.raises(ValueError, match=f"^{problem}.*renumber the classes 0, 1"):
            sample_per_class(labels, 1, seed=0)


def test_topk_error_and_train_probe_name_their_labels():
    logits = torch.eye(4)
    with pytest.raises(ValueError, match="^labels have dtype bool.*labels index the 4 columns of logits"):
        topk_error(logits, torch.tensor([True, False, True, False]))
    x, y = torch.randn(8, 3), torch.arange(8) % 4
    with pytest.raises(ValueError, match="^val labels have dtype bool.*below n_classes=4$"):
        train_probe(x, y, x, y.bool(), x, y, n_classes=4, epochs=1)
    with pytest.raises(ValueError, match=r"^train labels range from 0 to 1000000000000"):
        train_probe(x, torch.where(y == 3, 10**12, y), x, y, x, y, n_classes=4, epochs=1)
    # the linear layer is n_classes wide: refused before torch is asked for terabytes
    with pytest.raises(ValueError, match=f"n_classes=1000000000000 is more than the {MAX_CLASSES:,} classes"):
        train_probe(x, y, x, y, x, y, n_classes=10**12, epochs=1)
    assert train_probe(x, y.double(), x, y, x, y, n_classes=4, epochs=1).n_train == 8  # 3.0 is class 3


@pytest.mark.parametrize("labels, problem", [
    (np.array([0, 1, 2**31, 0, 1, 2]), r"labels range from 0 to 2147483648"),  # passed: n_classes 2**31 + 1
    (np.array([0, 1, 2, 0, 1, 2.5]), r"1 of the labels is not an integer \(e.g. 2.5\)"),
    (np.array([0, 1, 2, 0, 1]), r"labels must be 1-D.*\(shape \(6,\)\), got shape \(5,\)"),
    (np.array([0, 1, 1, 0, 1, 0], dtype=bool), "labels have dtype bool"),
    (np.array([0, 1, 2, 0, 1, np.nan]), "1 of the labels is NaN or inf"),
])
def test_array_file_labels_are_checked_by_the_same_function(tmp_path, labels, problem):
    path = tmp_path / "acts.npz"
    np.savez(path, x=np.random.default_rng(0).random((6, 3)), labels=labels)
    fix = "renumber the classes from 0.*unlabelled rows$"
    with pytest.raises(ValueError, match=f"acts.npz: {problem}.*{fix}"):
        load("arrays", path=str(path))
    np.savez(path, x=np.random.default_rng(0).random((6, 3)), y=labels)
    named = problem.replace("labels", r"labels \('y'\)", 1)
    with pytest.raises(ValueError, match=f"acts.npz: {named}.*{fix}"):
        load("arrays", path=str(path))


def test_array_file_labels_that_are_integral_floats_are_class_indices(tmp_path):
    """The file's labels were held to integer dtypes while the probe took 3.0 as class 3; one rule now."""
    path = tmp_path / "acts.npz"
    labels = np.arange(20) % 4
    np.savez(path, x=np.random.default_rng(0).random((20, 3)), labels=labels.astype(np.float32))
    data = load("arrays", path=str(path))
    assert data.n_classes == 4 and data.train.labels.dtype == torch.int64
