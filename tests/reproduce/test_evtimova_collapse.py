"""``evtimova-collapse`` (paper §4.4) end to end on its quick profile (serial executor): per-epoch rows for
every variant, the per-epoch validation metrics it reads (code L1, decoder column norms, dead atoms)
recomputed with numpy from the last epoch's checkpoint, SDL's unit-norm columns, the collapse verdict on
hand-made curves, and (slow) the collapse itself: no guard vs VDL at the same λ."""

import math
import re

import numpy as np
import pytest
import torch

from sparsecoder.data import load as load_data
from sparsecoder.reproduce import reproduce
from sparsecoder.reproduce.evtimova_collapse import (
    FINAL_METRICS,
    QUANTITIES,
    QUICK,
    check_settings,
    collapse_verdict,
    collapsed_text,
    fall_text,
    final_cells,
    read_history,
)
from sparsecoder.train import load_run
from sparsecoder.train.logging import read_history_rows


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("collapse") / "out"
    result = reproduce("evtimova-collapse", out, quick=True, executor="serial", progress=False)
    return out, result


def test_quick_profile_has_every_epoch_of_every_variant_and_a_final_row(quick):
    out, result = quick
    assert [p.name for p in result["files"]] == ["results.md", "results.csv", "collapse.png"]
    assert (out / "collapse.png").stat().st_size > 20_000
    epochs = [r for r in result["rows"] if r["stage"] == "epoch"]
    finals = {r["variant"]: r for r in result["rows"] if r["stage"] == "final"}
    assert [(r["variant"], r["epoch"]) for r in epochs] == [(v, e) for v in ("none", "vdl", "sdl")
                                                           for e in (1, 2, 3)]
    for row in epochs:
        assert row["code_l1_mean"] >= 0 and 0 <= row["dead_atoms_mean"] <= 128
        assert 0 < row["column_norm_min_mean"] <= row["column_norm_mean_mean"] <= row["column_norm_max_mean"]
        assert 5 < row["psnr_mean"] < 60 and 0 <= row["sparsity_mean"] <= 1
    assert set(finals) == {"none", "vdl", "sdl"}
    assert (finals["none"]["lam"], finals["vdl"]["lam"], finals["sdl"]["lam"]) == (0.02, 0.02, 0.005)
    assert finals["none"]["paper"] == "collapses" and finals["vdl"]["paper"] == "no collapse"
    for variant, final in finals.items():
        last = next(r for r in epochs if (r["variant"], r["epoch"]) == (variant, 3))
        assert final["code_l1_mean"] == last["code_l1_mean"] and final["collapsed_mean"] in (0.0, 1.0)
    # SDL's guard: every column has unit L2 norm after each step (SPEC §2.5)
    sdl = [r for r in epochs if r["variant"] == "sdl"]
    assert all(abs(r[k] - 1) < 1e-5 for r in sdl for k in ("column_norm_min_mean", "column_norm_max_mean"))
    text = (out / "results.md").read_text()
    assert "| NONE | no guard" in text and "epochs: 3 (the paper's MNIST runs: 200)" in text


def test_per_epoch_metrics_match_numpy_on_the_last_checkpoint(quick):
    """history.csv's last row (validation split) against numpy on the weights of checkpoint.pt (the last
    epoch): mean code L1 norm, dead atoms (components never non-zero), decoder column L2 norms."""
    out, _ = quick
    run_dir = out / "trials/none-mnist/none-mnist/default/seed=0"
    last = read_history_rows(run_dir / "history.csv")[-1]
    assert last["epoch"] == 3
    config, model, _ = load_run(run_dir)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
    model.load_state_dict(state)
    weight = state["decoder.weight"].numpy().astype(np.float64)  # (d, l): one atom per column
    norms = np.sqrt((weight ** 2).sum(axis=0))
    assert last["val_decoder_column_norm_mean"] == pytest.approx(norms.mean(), rel=1e-5)
    assert last["val_decoder_column_norm_min"] == pytest.approx(norms.min(), rel=1e-5)
    assert last["val_decoder_column_norm_max"] == pytest.approx(norms.max(), rel=1e-5)
    val = load_data(config.data, seed=config.seed, limit=config.limit).val
    codes = model.encode(val.x).numpy().astype(np.float64)
    assert last["val_code_l1"] == pytest.approx(np.abs(codes).sum(axis=1).mean(), rel=1e-5)
    assert last["val_dead_atoms"] == int(np.sum(~(codes != 0).any(axis=0)))


@pytest.mark.parametrize("curve, expected", [
    ([1.0, 5.0, 0.4, 0.6], {"collapsed": 1.0, "l1_peak": 5.0, "l1_min": 0.4, "l1_min_epoch": 3.0,
                            "l1_fall": 12.5, "l1_last": 0.6}),
    ([3.0, 2.0, 1.0], {"collapsed": 0.0, "l1_peak": 3.0, "l1_min": 1.0, "l1_min_epoch": 3.0, "l1_fall": 3.0,
                       "l1_last": 1.0}),
    ([0.1, 8.0, 9.0], {"collapsed": 0.0, "l1_peak": 9.0, "l1_min": 9.0, "l1_min_epoch": 3.0, "l1_fall": 1.0,
                       "l1_last": 9.0}),  # a low value before the peak is not a collapse
    ([2.0, 0.0], {"collapsed": 1.0, "l1_peak": 2.0, "l1_min": 0.0, "l1_min_epoch": 2.0, "l1_fall": math.inf,
                  "l1_last": 0.0}),
])
def test_collapse_verdict_on_hand_made_curves(curve, expected):
    assert collapse_verdict(curve) == pytest.approx(expected)


def test_a_code_l1_norm_that_falls_to_zero_is_reported_as_such_and_its_seed_counted():
    """A seed whose code L1 norm fell to exactly 0 (fall = inf) was left out of the mean: the table said
    "nan×" for one seed, and for three the mean of the two others (13×) as if it had not run."""
    curves = {0: [2.0, 0.0], 1: [5.0, 0.5], 2: [4.0, 0.25]}  # falls inf, 10, 16
    rows = [{"variant": "none", "seed": s, **collapse_verdict(c)} for s, c in curves.items()]
    rows.append({"variant": "vdl", "seed": 0, **collapse_verdict([3.0, 1.0])})
    rows.append({"variant": "sdl", "seed": 0, **collapse_verdict([3.0, 0.0])})
    cells = {c["variant"]: c for c in final_cells(rows, FINAL_METRICS)}
    none, vdl, sdl = cells["none"], cells["vdl"], cells["sdl"]
    assert none["n_seeds"] == 3 and none["l1_zero_seeds"] == 1 and none["collapsed_mean"] == 1.0
    assert none["l1_fall_mean"] == math.inf and math.isnan(none["l1_fall_std"])
    assert fall_text(none) == "→ 0 in 1 of 3 seeds (the others 13×)"
    assert (vdl["l1_zero_seeds"], vdl["l1_fall_mean"], fall_text(vdl)) == (0, 3.0, "3×")
    assert (sdl["l1_fall_mean"], fall_text(sdl)) == (math.inf, "→ 0")
    assert fall_text({**none, "l1_zero_seeds": 3}) == "→ 0 (all 3 seeds)"


def test_a_code_l1_norm_that_is_zero_from_the_first_epoch_is_not_called_a_collapse():
    """A norm that was 0 at every epoch (the encoder never gave a non-zero code) was reported as collapsed
    "→ 0", as if it had fallen from a scale it never had."""
    verdict = collapse_verdict([0.0, 0.0, 0.0])
    assert math.isnan(verdict["collapsed"]) and math.isnan(verdict["l1_fall"])
    assert (verdict["l1_peak"], verdict["l1_min"], verdict["l1_last"]) == (0.0, 0.0, 0.0)
    curves = {"none": {0: [0.0, 0.0], 1: [5.0, 0.5], 2: [4.0, 0.0]},  # from the start, 10×, → 0
              "vdl": {0: [0.0, 0.0]}, "sdl": {0: [0.0, 0.0], 1: [0.0, 0.0]},
              "sdl-nl": {0: [0.0, 0.0], 1: [3.0, 1.0]}}
    rows = [{"variant": v, "seed": s, **collapse_verdict(c)} for v, seeds in curves.items()
            for s, c in seeds.items()]
    cells = {c["variant"]: c for c in final_cells(rows, FINAL_METRICS)}
    none, vdl, sdl, sdl_nl = cells["none"], cells["vdl"], cells["sdl"], cells["sdl-nl"]
    assert (none["l1_zero_start_seeds"], none["l1_zero_seeds"], none["collapsed_mean"]) == (1, 1, 1.0)
    assert fall_text(none) == "0 from the start in 1 of 3 seeds; the other 2: → 0 in 1 of 2 seeds (the " \
                              "others 10×)"
    assert collapsed_text(none) == "yes (1 of 3 seeds 0 from the start, not counted)"
    assert (fall_text(vdl), collapsed_text(vdl)) == ("0 from the start",
                                                     "not measured: code L1 norm 0 from the start")
    assert math.isnan(vdl["collapsed_mean"]) and vdl["l1_zero_seeds"] == 0
    assert fall_text(sdl) == "0 from the start (all 2 seeds)"
    assert fall_text(sdl_nl) == "0 from the start in 1 of 2 seeds; the other 1: 3×"
    assert collapsed_text(sdl_nl) == "no (1 of 2 seeds 0 from the start, not counted)"


def test_a_damaged_history_names_the_file_and_the_fix(tmp_path):
    """An empty or truncated history.csv gave "IndexError: list index out of range (unexpected ...)"."""
    columns = ["epoch", *QUANTITIES]
    good = [",".join(columns), ",".join(["1", *["0.5"] * (len(columns) - 1)]),
            ",".join(["2", *["0.25"] * (len(columns) - 1)])]
    (tmp_path / "history.csv").write_text("\n".join(good) + "\n")
    assert [r["epoch"] for r in read_history(tmp_path)] == [1, 2]
    fix = f"move the trial's folder {tmp_path} out of the experiment and rerun (the trial trains again)"
    for text, words in [("", "holds no epoch"), (good[0] + "\n", "holds no epoch"),
                        ("\n".join(good)[:-10], "has no val_psnr, val_sparsity in row 2"),
                        ("\n".join([good[0], "x" + good[1][1:]]), "is damaged (invalid literal"),
                        ("\n".join([good[0], good[2]]), "gives epoch 2 in row 1, not 1")]:
        (tmp_path / "history.csv").write_text(text)
        with pytest.raises(ValueError, match="history.csv " + re.escape(words)) as err:
            read_history(tmp_path)
        assert str(err.value).endswith(fix)


def test_bad_settings_are_refused(tmp_path):
    for key, value, message in [("variants", ["none", "ldl"], "expected a non-empty list of none, vdl"),
                                ("lam", -1, "lam=-1: expected a number >= 0"),
                                ("epochs", None, "epochs=None: expected an integer >= 1")]:
        with pytest.raises(ValueError, match=message):
            check_settings({**QUICK, key: value})
        with pytest.raises(ValueError, match=message):
            reproduce("evtimova-collapse", tmp_path / "out", quick=True, overrides={key: value},
                      executor="serial", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_without_a_guard_the_codes_collapse_and_with_the_variance_hinge_they_do_not(tmp_path):
    """All embedded MNIST training digits, 15 epochs, λ = 0.02 for both: without a guard the validation
    code L1 norm falls more than 10× below its peak and atoms die; the variance hinge keeps every atom."""
    result = reproduce("evtimova-collapse", tmp_path / "out", overrides={"variants": ["none", "vdl"],
                                                                        "epochs": 15, "seeds": [0]},
                       executor="serial", progress=False)
    finals = {r["variant"]: r for r in result["rows"] if r["stage"] == "final"}
    assert finals["none"]["collapsed_mean"] == 1.0 and finals["none"]["l1_fall_mean"] > 10
    assert finals["none"]["dead_atoms_mean"] > 10
    assert finals["vdl"]["collapsed_mean"] == 0.0 and finals["vdl"]["l1_fall_mean"] < 3
    assert finals["vdl"]["dead_atoms_mean"] == 0
