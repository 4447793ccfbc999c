"""results.csv / results.md / plots from run folders (metrics files written here; no Ray, no training)."""

import csv
import json
import statistics

import pytest

from sparsecoder.sweep.executor import STATUS_FILE
from sparsecoder.sweep.results import PSNR_PLOT, VAE_PLOT, write_results
from sparsecoder.sweep.spec import build_spec


def _write(path, obj, name="metrics.json"):
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_text(json.dumps(obj))


def test_family_a_table_is_mean_and_sample_std_over_seeds(tmp_path):
    spec = build_spec(["vdl-mnist", "sdl-mnist"], ["lam=0.001,0.01"], "0-2", {"epochs": 1})
    psnr = {}
    for trial in spec.trials():
        if trial.preset == "sdl-mnist" and trial.seed == 2 and dict(trial.point)["lam"] == 0.01:
            _write(tmp_path / trial.folder, {"status": "failed", "message": "boom"}, STATUS_FILE)
            continue
        value = 10 + 3 * dict(trial.point)["lam"] * 100 + trial.seed * 0.37 + (trial.preset == "sdl-mnist")
        psnr.setdefault((trial.preset, dict(trial.point)["lam"]), []).append(value)
        _write(tmp_path / trial.folder, {"psnr": value, "sparsity": 0.5 + trial.seed / 100, "dead_atoms": 0,
                                         "kl_per_latent": [1.0, 2.0], "data": "text"})
    result = write_results(spec, tmp_path)
    assert (tmp_path / PSNR_PLOT).stat().st_size > 10_000 and not (tmp_path / VAE_PLOT).exists()
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12 and "kl_per_latent" not in rows[0] and "data" not in rows[0]
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["message"] == "boom" and failed[0]["psnr"] == ""
    table = (tmp_path / "results.md").read_text()
    for (preset, lam), values in psnr.items():
        mean, std = statistics.mean(values), statistics.stdev(values)
        section = table.split(f"## {preset}")[1].split("##")[0]
        line = next(row for row in section.splitlines() if row.startswith(f"| {lam!r} |"))
        assert f"{mean:.2f} ± {std:.2f}" in line
        assert f"| {len(values)}/3 |" in line
    assert "failed" in table and len(result["rows"]) == 12


def test_vae_sweep_gets_the_vae_plot(tmp_path):
    spec = build_spec(["vae-laplace-mnist"], ["beta=0.5,1"], "0-1", {"epochs": 1})
    for trial in spec.trials():
        _write(tmp_path / trial.folder, {"mse": 0.07 + trial.seed / 1000, "active_units": 3 + trial.seed,
                                         "active_units_max": 9, "elbo": -240.0, "kl": 5.0})
    files = write_results(spec, tmp_path)["files"]
    assert tmp_path / VAE_PLOT in files and not (tmp_path / PSNR_PLOT).exists()
    assert "| 0.5 | 2/2 | 0.0705 ± 0.0007 | 3.50 ± 0.71 | 9 |" in (tmp_path / "results.md").read_text()


def test_damaged_trial_files_become_failed_rows_not_a_crash(tmp_path):
    """metrics.json holding a list or binary bytes, sweep_trial.json holding a list: the results table
    is still written, those trials marked failed (with the reason) or pending."""
    spec = build_spec(["sdl-mnist"], ["lam=0.001"], "0-3", {"epochs": 1})
    folders = [tmp_path / t.folder for t in spec.trials()]
    _write(folders[0], {"psnr": 12.0, "sparsity": 0.5})
    _write(folders[1], [1, 2])
    folders[2].mkdir(parents=True)
    (folders[2] / "metrics.json").write_bytes(b"\xff\xfe\x00garbage")
    _write(folders[3], [1, 2], name=STATUS_FILE)  # no metrics: not an outcome
    rows = {int(r["seed"]): r for r in csv.DictReader(open(write_results(spec, tmp_path)["files"][0]))}
    assert rows[0]["status"] == "done" and float(rows[0]["psnr"]) == 12.0
    assert rows[1]["status"] == "failed" and "not an object of metrics" in rows[1]["message"]
    assert rows[2]["status"] == "failed" and "not a text JSON file" in rows[2]["message"]
    assert rows[3]["status"] == "pending"


def test_a_non_finite_metric_of_a_finished_seed_is_counted_out_in_the_table(tmp_path):
    """A NaN psnr of one of two finished seeds: the row said `2/2` and `12` (one seed's value, as if a
    mean over both); now the cell says over how many seeds it is."""
    spec = build_spec(["sdl-mnist"], ["lam=0.001"], "0-1", {"epochs": 1})
    for trial in spec.trials():
        _write(tmp_path / trial.folder, {"psnr": float("nan") if trial.seed == 0 else 12.5, "sparsity": 0.5})
    write_results(spec, tmp_path)
    assert "| 0.001 | 2/2 | 12.50 (n=1) | 0.5000 ± 0.0000 |" in (tmp_path / "results.md").read_text()


def test_a_pipe_in_a_grid_value_stays_inside_its_cell(tmp_path):
    """A string grid value holding `|` (a folder name) split its cell and shifted every column after it."""
    spec = build_spec(["sdl-mnist"], ["data_dir=runs|old"], "0", {"epochs": 1})
    for trial in spec.trials():
        _write(tmp_path / trial.folder, {"psnr": 12.5, "sparsity": 0.5})
    write_results(spec, tmp_path)
    table = (tmp_path / "results.md").read_text().splitlines()
    header = next(line for line in table if line.startswith("| data_dir"))
    row = next(line for line in table if "runs" in line)
    assert "runs\\|old" in row
    assert row.replace("\\|", "").count("|") == header.count("|")


def test_psnr_sparsity_curves_run_along_lam_one_per_value_of_the_other_grid_keys(tmp_path):
    """`--grid gamma=1,5 lam=...`: one curve per preset used to join every grid point sorted by sparsity,
    zig-zagging from gamma=1's points to gamma=5's; now one curve per preset and gamma, along lam."""
    from sparsecoder.sweep.results import plot_curves

    spec = build_spec(["vdl-mnist"], {"gamma": [1, 5], "lam": [0.005, 0.02]}, [0], {"epochs": 1})
    for trial in spec.trials():
        point = dict(trial.point)
        _write(tmp_path / trial.folder, {"psnr": 20 - point["gamma"],
                                         "sparsity": point["lam"] + point["gamma"] / 100})
    result = write_results(spec, tmp_path)
    curves = plot_curves(result["summary"], "sparsity", "psnr")
    assert list(curves) == [("vdl-mnist", (("gamma", 1.0),)), ("vdl-mnist", (("gamma", 5.0),))]
    assert [[dict(g["point"])["lam"] for g in groups] for groups in curves.values()] == [[0.005, 0.02]] * 2
    assert (tmp_path / PSNR_PLOT).stat().st_size > 10_000




def test_labels_of_grid_points_at_the_same_place_are_stacked_not_overprinted(tmp_path, kept_figures):
    spec = build_spec(["sdl-mnist"], ["lam=0.01,0.02,0.05"], "0", {"epochs": 1})
    for trial in spec.trials():  # 0.01 and 0.02 at one place (e.g. every code zero at both)
        lam = dict(trial.point)["lam"]
        _write(tmp_path / trial.folder, {"psnr": 15.0 if lam < 0.05 else 12.0, "sparsity": 0.9})
    write_results(spec, tmp_path)
    texts = {t.get_text(): t for t in kept_figures[0].axes[0].texts}
    assert set(texts) == {"lam=0.01, 0.02", "lam=0.05"}  # one label for the two λ at one place
    # another curve with a point at the same place: its label goes one line higher
    spec = build_spec(["sdl-mnist", "vdl-mnist"], ["lam=0.01,0.05"], "0", {"epochs": 1})
    for trial in spec.trials():
        lam = dict(trial.point)["lam"]
        _write(tmp_path / "two" / trial.folder, {"psnr": 15.0 if lam < 0.05 else 12.0, "sparsity": 0.9})
    write_results(spec, tmp_path / "two")
    first, second = (t for t in kept_figures[1].axes[0].texts if t.get_text() == "lam=0.01")
    assert first.xy == second.xy and first.xyann != second.xyann


def test_plots_name_the_grid_points_they_cannot_draw(tmp_path, kept_figures):
    """A grid point whose seeds all gave a NaN PSNR vanished from its curve without a word; a VAE point
    with a NaN ELBO lost every panel, its finite MSE and active units too."""
    figures = kept_figures
    spec = build_spec(["sdl-mnist"], ["lam=0.001,0.01,0.1"], "0-1", {"epochs": 1})
    for trial in spec.trials():
        lam = dict(trial.point)["lam"]
        _write(tmp_path / trial.folder, {"psnr": float("nan") if lam == 0.1 else 15 - lam, "sparsity": 0.5})
    write_results(spec, tmp_path / "")
    assert figures[0].axes[0].get_title().endswith("not drawn (no finite value): sdl-mnist lam=0.1")
    assert len(figures[0].axes[0].lines[0].get_xdata()) == 2

    spec = build_spec(["vae-laplace-mnist"], ["beta=0.5,1"], "0-1", {"epochs": 1})
    for trial in spec.trials():
        beta = dict(trial.point)["beta"]
        _write(tmp_path / "vae" / trial.folder, {"mse": 0.07, "active_units": 3, "active_units_max": 9,
                                                 "elbo": float("nan") if beta == 1 else -240.0})
    files = write_results(spec, tmp_path / "vae")["files"]
    assert tmp_path / "vae" / VAE_PLOT in files
    mse, elbo = figures[1].axes[0], figures[1].axes[3]
    assert len(mse.lines[0].get_xdata()) == 2 and len(elbo.lines[0].get_xdata()) == 1
    assert elbo.get_title().endswith("not drawn (no finite value): vae-laplace-mnist beta=1.0")


@pytest.mark.parametrize(("seeds", "says"), [("0", "one seed: no error bars"),
                                             ("0-1", "mean ± std over 2 seeds")])
def test_the_plot_title_says_whether_its_error_bars_are_a_spread(tmp_path, kept_figures, seeds, says):
    # audit 2026-11-29: one seed drew zero-length error bars under a title saying "mean ± std"
    spec = build_spec(["sdl-mnist"], ["lam=0.001,0.01"], seeds, {"epochs": 1})
    for trial in spec.trials():
        _write(tmp_path / trial.folder, {"psnr": 15.0 + trial.seed, "sparsity": 0.5})
    write_results(spec, tmp_path / "")
    assert kept_figures[0].axes[0].get_title().endswith(f"({says})")
