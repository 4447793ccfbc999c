"""The linear probe of the low-data experiment (Evtimova & LeCun Fig. 9): top-k error by hand, per-class
sampling, zero error on a linearly separable problem, and model selection by validation accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsecoder.eval.probe import sample_per_class, topk_error, train_probe
from sparsecoder.nn.encoders import LISTAEncoder


def test_topk_error_by_hand():
    logits = torch.tensor([[0.9, 0.5, 0.1, 0.0],    # label 0: top-1 hit
                           [0.9, 0.5, 0.1, 0.0],    # label 2: top-1 miss, top-3 hit
                           [0.1, 0.2, 0.3, 0.4],    # label 0: rank 4 -> top-3 miss
                           [0.0, 1.0, 0.0, 0.0]])   # label 1: hit
    labels = torch.tensor([0, 2, 0, 1])
    assert topk_error(logits, labels, 1) == pytest.approx(2 / 4)
    assert topk_error(logits, labels, 2) == pytest.approx(2 / 4)
    assert topk_error(logits, labels, 3) == pytest.approx(1 / 4)
    assert topk_error(logits, labels, 4) == 0.0
    with pytest.raises(ValueError, match="k must be in"):
        topk_error(logits, labels, 5)


def test_sample_per_class_draws_k_of_each_class_seeded():
    labels = np.repeat(np.arange(4), [5, 6, 7, 8])
    index = sample_per_class(labels, 3, seed=1)
    assert np.bincount(labels[index]).tolist() == [3, 3, 3, 3]
    assert len(set(index.tolist())) == 12
    assert np.array_equal(index, sample_per_class(labels, 3, seed=1))
    assert not np.array_equal(index, sample_per_class(labels, 3, seed=2))
    assert np.array_equal(sample_per_class(labels, None, seed=0), np.arange(len(labels)))
    with pytest.raises(ValueError, match="class 0 has 5 samples"):
        sample_per_class(labels, 6, seed=0)


def _separable(n, seed):
    rng = np.random.default_rng(seed)
    centres = np.eye(5, 8) * 6.0
    y = rng.integers(0, 5, n)
    x = centres[y] + rng.normal(0, 0.5, (n, 8))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def test_probe_reaches_zero_error_on_a_separable_problem(one_torch_thread):
    (xt, yt), (xv, yv), (xs, ys) = _separable(200, 0), _separable(100, 1), _separable(300, 2)
    # the classes are separated by margins of 12 σ: any reasonable linear classifier is perfect
    result = train_probe(xt, yt, xv, yv, xs, ys, n_classes=5, epochs=100, lr=1e-2, batch_size=50, seed=0)
    assert result.top1_error == 0.0 and result.top3_error == 0.0
    assert result.val_accuracy == 1.0 and 1 <= result.best_epoch <= 100 and result.n_train == 200
    again = train_probe(xt, yt, xv, yv, xs, ys, n_classes=5, epochs=100, lr=1e-2, batch_size=50, seed=0)
    assert again == result


def test_model_selection_uses_the_best_validation_epoch_not_the_last(one_torch_thread):
    # Training labels are the true labels of a separable problem; the validation labels are those of a
    # *different* rule, so validation accuracy peaks early and falls as the probe fits the training rule:
    # the best epoch must be the one the validation accuracy picks, and the test error (graded against the
    # validation rule) is that epoch's, not the last epoch's.
    (xt, yt), (xs, _) = _separable(200, 0), _separable(300, 2)
    xv, yv = _separable(100, 1)
    flip = torch.tensor([1, 0, 2, 3, 4])  # classes 0 and 1 swapped in validation and test
    ys_flipped = flip[_separable(300, 2)[1]]
    result = train_probe(xt, yt, xv, flip[yv], xs, ys_flipped, n_classes=5, epochs=60, lr=1e-2,
                         batch_size=50, seed=0)
    last = train_probe(xt, yt, xv, flip[yv], xs, ys_flipped, n_classes=5, epochs=result.best_epoch,
                       lr=1e-2, batch_size=50, seed=0)
    assert result.best_epoch < 60
    # retraining for exactly best_epoch epochs (same seed, same batches) and testing the last epoch of that
    # run gives the same errors only if the selection restored that epoch's weights
    assert last.best_epoch == result.best_epoch
    assert (last.top1_error, last.top3_error) == (result.top1_error, result.top3_error)


def test_end_to_end_features_are_trained_and_the_module_given_is_untouched(one_torch_thread):
    (xt, yt), (xv, yv), (xs, ys) = _separable(200, 0), _separable(100, 1), _separable(300, 2)
    torch.manual_seed(0)
    encoder = LISTAEncoder(8, 16, 3)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    result = train_probe(xt, yt, xv, yv, xs, ys, n_classes=5, epochs=50, lr=1e-2, batch_size=50, seed=0,
                         features=encoder, n_features_out=16)
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    assert result.top1_error <= 0.05


def test_bad_input_is_refused():
    x, y = _separable(20, 0)
    with pytest.raises(ValueError, match=r"test labels range from 5 to 9 \(int64\); expected integers 0–4; "
                                         r"every split's labels are class indices below n_classes=5"):
        train_probe(x, y, x, y, x, y + 5, n_classes=5)
    with pytest.raises(ValueError, match="inputs must be"):
        train_probe(x, y[:5], x, y, x, y, n_classes=5)


def _probe_data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(30, 5, generator=generator)
    return x, torch.arange(30) % 3


@pytest.mark.parametrize("change, message", [
    ({"train_x": "nan"}, "train inputs hold NaN or inf"),
    ({"val_x": "inf"}, "val inputs hold NaN or inf"),
    ({"test_x": "f64_huge"}, "test inputs hold NaN or inf .*float32's range"),
    ({"val_x": "narrow"}, "val inputs have 3 features but train inputs 5"),
    ({"train_y": "half"}, r"30 train labels are not integers \(e.g. 0.5\); expected integers 0–2"),
    ({"epochs": 1.5}, "epochs must be an integer >= 1, got 1.5"),
    ({"n_classes": 3.5}, "n_classes must be an integer >= 1"),
    ({"lr": float("inf")}, "lr must be a finite number > 0"),
    ({"seed": 1.5}, r"seed must be an integer in \[0, 2\*\*63 - 1\], got 1.5"),  # torch's RuntimeError
    ({"n_features_out": 7}, "n_features_out=7 is the output width of features, but no features"),
    ({"features": torch.nn.Linear(5, 4), "n_features_out": 7}, r"to \(1, 4\), not \(1, n_features_out=7\)"),
])
def test_train_probe_refuses_bad_input_before_training(change, message):
    """NaN/inf codes trained on NaN losses and still returned errors; a split with other features failed
    in torch after every epoch; labels 0.5, 1.5 were truncated to classes 0, 1."""
    x, y = _probe_data()
    args = {"train_x": x, "train_y": y, "val_x": x, "val_y": y, "test_x": x, "test_y": y}
    kwargs = {"n_classes": 3, "epochs": 2, "batch_size": 8}
    for key, value in change.items():
        if key in args:
            args[key] = {"nan": x.masked_fill(x > 1, float("nan")), "inf": x.masked_fill(x > 1, float("inf")),
                         "f64_huge": x.double() * 1e300, "narrow": x[:, :3],
                         "half": y.float() + 0.5}[value]
        else:
            kwargs[key] = value
    with pytest.raises(ValueError, match=message):
        train_probe(*args.values(), **kwargs)


@pytest.mark.parametrize("labels, k, words", [
    ([0, 1, 5], 1, r"labels range from 0 to 5 \(int64\); expected integers 0–2; labels index the 3 columns"),
    ([0, -1, 1], 1, r"labels range from -1 to 1 \(int64\); expected integers 0–2"),
    ([0.5, 1.0, 2.0], 1, r"1 of the labels is not an integer \(e.g. 0.5\)"),
    ([[0, 1, 2]], 1, r"labels \(n,\)"),
    ([0, 1, 2], 1.0, "and an integer"),
])
def test_topk_error_refuses_labels_that_are_not_class_indices(labels, k, words):
    """A label of 5 among 3 classes counted as a miss, 0.5 was truncated to class 0, k=1.0 a TypeError."""
    logits = torch.eye(3)
    with pytest.raises(ValueError, match=words):
        topk_error(logits, torch.as_tensor(labels), k=k)
    with pytest.raises(ValueError, match="finite"):
        topk_error(torch.full((3, 3), float("nan")), torch.tensor([0, 1, 2]))
    assert topk_error(logits, torch.tensor([0, 1, 0])) == pytest.approx(1 / 3)  # by hand: one miss in 3


@pytest.mark.parametrize("labels, seed, words", [
    (np.array([[0, 1], [1, 0]]), 0, "must be 1-D"),
    (np.array([0.5, 1.0, 0.5, 1.0]), 0, r"2 labels are not integers \(e.g. 0.5\)"),
    (np.array([0.0, np.nan, 1.0, 1.0]), 0, "1 of the labels is NaN or inf"),
    (np.array([], dtype=np.int64), 0, "labels is empty"),
    (np.array([0, 1, 0, 1]), -1, "seed must be an integer"),
])
def test_sample_per_class_refuses_labels_that_are_not_class_indices(labels, seed, words):
    with pytest.raises(ValueError, match=words):
        sample_per_class(labels, 1, seed)


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": 1e30, "scale": 1e30},
     "diverged in epoch 1: its (training loss is|validation logits are) NaN/inf.*lower it"),
    ({"features": torch.nn.Hardtanh(min_val=float("nan")), "n_features_out": 5},
     "NaN/inf before any training step: the features module gives NaN/inf"),
])
def test_a_diverging_probe_stops_with_the_cause_not_a_logits_error(kwargs, message):
    """NaN logits surfaced as 'logits must be finite real numbers' from topk_error, naming no cause."""
    x, y = _probe_data()
    x = x * kwargs.pop("scale", 1.0)
    with pytest.raises(ValueError, match=message):
        train_probe(x, y, x, y, x, y, n_classes=3, epochs=2, batch_size=8, **kwargs)
