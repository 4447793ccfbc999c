"""The pieces of ``benchmarks/bench_training.py --reference`` that run without the authors' code: the
IDX/split files both tools train on, and the flags taken from the authors' scripts."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from sparsecoder.data.idx import read_mnist_idx_split
from sparsecoder.data.mnist import load_mnist

ROOT = Path(__file__).resolve().parents[2]


def load_script(name):
    """A benchmark script as a module (``benchmarks/`` on the path for its ``_common`` import)."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def refused(main, argv, capsys, *words):
    """``main(argv)`` stops with argparse's one-line usage error (exit 2) naming ``words``, no traceback."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in error and all(word in error for word in words), error
    return error


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_training")


@pytest.mark.parametrize("train_samples", [None, 3750])
def test_reference_data_are_our_splits(bench, tmp_path, train_samples):
    """Their IDX files + split lists hold exactly our loader's rows, also with the training split cut to
    whole batches (our ``limit``)."""
    sizes = bench.write_reference_data(tmp_path, seed=0, train_samples=train_samples)
    ours = load_mnist(seed=0, normalize="unit", limit=train_samples)
    if train_samples is not None:
        assert sizes["train"] == train_samples
    assert sizes == {"train": len(ours.train.x), "val": len(ours.val.x), "test": len(ours.test.x)}
    train_px, train_y = read_mnist_idx_split(tmp_path / "idx", "train")
    test_px, test_y = read_mnist_idx_split(tmp_path / "idx", "test")
    train_rows = np.load(tmp_path / "splits" / "MNIST_train.npy")
    val_rows = np.load(tmp_path / "splits" / "MNIST_val.npy")
    assert len(set(train_rows) | set(val_rows)) == len(train_px) == sizes["train"] + sizes["val"]

    def pixels(split):  # our loader's rows back to the 0–255 integers
        return np.rint(split.x.numpy() * 255).astype(np.uint8)

    np.testing.assert_array_equal(train_px[train_rows].reshape(-1, 784), pixels(ours.train))
    np.testing.assert_array_equal(train_px[val_rows].reshape(-1, 784), pixels(ours.val))
    np.testing.assert_array_equal(test_px.reshape(-1, 784), pixels(ours.test))
    np.testing.assert_array_equal(train_y[train_rows], ours.train.labels.numpy())
    np.testing.assert_array_equal(test_y, ours.test.labels.numpy())


def test_reference_flags_from_a_script(bench, tmp_path):
    script = tmp_path / "MNIST_X.sh"
    script.write_text('#!/bin/bash\nOUT="/x"\npython -u main.py \\\n--batch_size "250" \\\n--cuda \\\n'
                      '--datadir $DATASET_PATH \\\n--FISTA \\\n--train_encoder \\\n--sparsity_reg "0.02" \\\n'
                      '--norm_decoder "1"\n')
    flags = bench.reference_flags(script, {"datadir": "/d", "norm_decoder": "0", "epochs": "10"},
                                  removed=("train_encoder",))
    assert flags == ["--batch_size", "250", "--datadir", "/d", "--FISTA", "--sparsity_reg", "0.02",
                     "--norm_decoder", "0", "--epochs", "10"]
    assert bench.script_seed(script) == 11  # none in the script: their main.py's default
    script.write_text(script.read_text().replace('--FISTA \\\n', '--FISTA \\\n--seed "31" \\\n'))
    assert bench.script_seed(script) == 31


def test_seeds_combine_to_median_speed_and_mean_and_std_quality(bench):
    runs = [{"seed": s, "s_per_epoch": t, "psnr": p, "sparsity": z, "fista_iterations": k, "lam": 0.005}
            for s, t, p, z, k in [(0, 0.30, 14.5, 0.84, 20.0), (1, 0.50, 14.7, 0.83, 22.0),
                                  (2, 0.40, 14.9, 0.85, 24.0)]]
    assert bench.combine_seeds(runs[:1]) is runs[0]
    combined = bench.combine_seeds(runs)
    assert combined["s_per_epoch"] == 0.40 and combined["fista_iterations"] == pytest.approx(22.0)
    assert combined["psnr"] == pytest.approx(14.7) and combined["psnr_sd"] == pytest.approx(0.2)
    assert combined["sparsity"] == pytest.approx(0.84) and combined["sparsity_sd"] == pytest.approx(0.01)
    assert [r["seed"] for r in combined["runs"]] == [0, 1, 2] and combined["lam"] == 0.005


def test_pair_speedups_are_seed_by_seed_and_listed_with_median_and_range(bench):
    theirs = [{"s_per_epoch": t} for t in (3.2, 3.0, 3.6)]
    ours = [{"s_per_epoch": o} for o in (1.0, 1.2, 1.2)]
    ratios = bench.pair_speedups(theirs, ours)
    assert ratios == pytest.approx([3.2, 2.5, 3.0])  # not 3.2 / 1.2, the ratio of the medians
    with pytest.raises(ValueError, match="shorter"):  # pairs: strictly one of ours per one of theirs
        bench.pair_speedups(theirs, ours[:2])
    lines = bench.pair_lines([{"variant": "vdl-nl", "pair_speedups": ratios},
                              {"variant": "sdl", "pair_speedups": [9.0]}])
    assert lines[-1] == "- VDL-NL: 3.20, 2.50, 3.00 (median 3.00, range 2.50–3.20)"
    assert not any("SDL" in line for line in lines)
    assert bench.pair_lines([{"variant": "sdl"}]) == []


def test_seeds_train_on_one_split_and_reach_the_table(bench, tmp_path):
    """``--seeds 2`` (ours alone): the second run has the preset's seed + 1 on the preset seed's split, and
    the table gives mean ± std."""
    from sparsecoder.train import load_run
    from sparsecoder.train.trainer import load_data

    assert bench.main(["--variants", "sdl", "--epochs", "2", "--seeds", "2", "--train-samples", "500",
                       "--out", str(tmp_path)]) == 0
    first, second = (load_run(tmp_path / name)[0] for name in ("sdl", "sdl-s1"))
    assert second.seed == first.seed + 1 and second.data_options["split_seed"] == first.seed
    for part in ("train", "val", "test"):
        assert (getattr(load_data(first), part).x == getattr(load_data(second), part).x).all()
    table = (tmp_path / "table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| sdl |"))
    assert row.count("±") == 2


def test_the_peak_is_the_highest_of_a_sample_before_each_of_our_runs(bench, tmp_path, monkeypatch):
    """The matmul peak is sampled before the benchmark and before each of our runs (the rate drifts);
    the fraction of peak is against the highest sample, and the header gives the highest and lowest."""
    import json

    samples = iter([40.0, 90.0, 60.0])
    monkeypatch.setattr(bench, "matmul_peak_gflops", lambda device: next(samples))
    assert bench.main(["--variants", "sdl", "--epochs", "2", "--seeds", "2", "--train-samples", "500",
                       "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["peaks"] == [40.0, 90.0, 60.0]
    ours = saved["ours"][0]
    assert ours["fraction_of_peak"] == pytest.approx(ours["useful_gflops"] / 90.0)
    header = (tmp_path / "table.md").read_text().splitlines()[0]
    assert "peak 90 GFLOP/s" in header and "the lowest 40" in header


def test_encoder_quality_on_all_test_digits_is_the_run_metrics(bench, tmp_path):
    """On the whole test split the side-by-side quality equals ``metrics.json`` (our evaluate); on a
    prefix it differs (it is measured on those digits only)."""
    import json

    from sparsecoder.train import load_run, train

    metrics = train("sdl-mnist", tmp_path / "run", progress=False,
                    overrides={"epochs": 1, "limit": 500, "num_threads": 1})
    config, model = load_run(tmp_path / "run")[:2]
    psnr, sparsity = bench.encoder_quality(config, model, metrics["n_test"])
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert abs(psnr - saved["psnr"]) < 1e-6 and abs(sparsity - saved["sparsity"]) < 1e-9
    assert bench.encoder_quality(config, model, 100)[0] != psnr


def test_our_epoch_time_includes_the_epochs_writes(bench, tmp_path, monkeypatch):
    """Like the authors' epochs, ours end after the checkpoint is written: with each checkpoint write made
    0.3 s slower, s/epoch grows by that much while ``history.csv``'s seconds (which stop before the
    writes) do not."""
    import csv
    import importlib
    import statistics
    import time

    trainer = importlib.import_module("sparsecoder.train.trainer")  # `sparsecoder.train` is also a function

    write = trainer.save_checkpoint

    def slow_write(*args, **kwargs):
        time.sleep(0.3)
        return write(*args, **kwargs)

    monkeypatch.setattr(trainer, "save_checkpoint", slow_write)
    result = bench.run_variant("sdl", 3, "cpu", tmp_path, train_samples=500)
    with (tmp_path / "sdl" / "history.csv").open() as fh:
        history = statistics.median(float(row["seconds"]) for row in list(csv.DictReader(fh))[1:])
    assert result["s_per_epoch"] >= history + 0.3
    assert len(result["epoch_seconds"]) == 2 and min(result["epoch_seconds"]) >= 0.3  # epochs 2 and 3
    assert result["s_per_epoch"] == statistics.median(result["epoch_seconds"])
    assert trainer.save_checkpoint is slow_write  # the benchmark's clock is removed after the run


def test_part_timer_counts_each_part_without_its_nested_parts(bench):
    """Exclusive times on a scripted clock: the outer part's 10 s minus the inner part's 4 s; an opaque
    part keeps what runs inside it; the epoch's untimed rest is "other"."""
    now = [0.0]

    def clock():
        return now[0]

    def advance(seconds, then=None):
        now[0] += seconds
        if then is not None:
            then()
        return seconds

    timer = bench.PartTimer(clock=clock)
    inner = timer.wrap(lambda: advance(4.0), "inner")
    outer = timer.wrap(lambda: (advance(3.0), inner(), advance(3.0)), "outer")
    opaque = timer.wrap(lambda: (advance(1.0), inner()), "validation", opaque=True)
    outer()
    opaque()
    advance(2.0)
    timer.end_epoch()
    assert timer.epochs == [{"outer": 6.0, "inner": 4.0, "validation": 5.0, "total": 17.0,
                             bench.OTHER: 2.0}]


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_benchmark_runs_unchanged_on_cuda(bench, tmp_path):
    assert bench.main(["--variants", "sdl", "--epochs", "2", "--device", "cuda", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "device cuda" in table and "| sdl |" in table


def test_profile_of_a_real_run_times_every_part_it_names(bench, tmp_path):
    """``--profile`` on a short real run: each named part of the training epoch (FISTA, encoder, decoder
    step, optimiser step, validation, writes) got time, so none of the patched methods has been renamed
    or bypassed by the trainer (FISTA once went to 0.000 s when the model called ``_fista`` directly)."""
    result = bench.run_variant("vdl", 3, "cpu", tmp_path, train_samples=500, profile=True)
    profile = result["profile"]
    assert set(bench.PARTS) <= set(profile)
    for part in bench.PARTS:
        assert profile[part] > 0.0, part
    assert sum(profile[p] for p in (*bench.PARTS, bench.OTHER)) == pytest.approx(profile["total"])


def test_products_of_a_real_run_are_the_models_products_with_their_flops(bench, tmp_path):
    """``--products`` on a short real run: the profiled products are read from the operands' shapes (not
    a bias or an ``out=`` buffer): each shape's FLOPs are 2·m·k·n per call, the inner dimensions agree,
    and the decoder's product at the batch size (250 × 128 codes · 128 × 784 atoms) is among them."""
    products = bench.product_profile("sdl", "cpu", tmp_path, train_samples=250, epochs=2)
    shapes = products["shapes"]
    assert shapes and all(p["calls"] > 0 and p["s"] > 0 for p in shapes)
    for p in shapes:
        (m, k), (k2, n) = p["a"], p["b"]
        assert k == k2, p
        assert p["flops"] == pytest.approx(2 * m * k * n * p["calls"]), p
    assert any(p["a"] == [250, 128] and p["b"] == [128, 784] for p in shapes)
    assert [p["s"] for p in shapes] == sorted((p["s"] for p in shapes), reverse=True)
    assert 0 < sum(p["s"] for p in shapes) < products["profiled_epoch_s"]
    assert products["other_s"] > 0
    result = {"variant": "sdl", "s_per_epoch": products["profiled_epoch_s"]}
    lines = bench.product_lines(result, products, peak=100.0, top=2)
    assert lines[0].startswith("SDL: of the profiled steady epoch")
    assert f"{len(shapes) - 2} other shapes" in lines[-2]


def test_out_holding_a_users_files_is_refused_before_any_work(bench, tmp_path, capsys):
    """The script replaces the run folders it names inside ``--out``: a folder with someone's files (or a
    file) is refused and left as it was; a folder the script wrote before is reused."""
    mine = tmp_path / "mine"
    (mine / "sdl").mkdir(parents=True)
    (mine / "sdl" / "notes.txt").write_text("precious")
    argv = ["--variants", "sdl", "--epochs", "2", "--out"]
    refused(bench.main, [*argv, str(mine)], capsys, str(mine), "not empty", "new or empty folder")
    assert (mine / "sdl" / "notes.txt").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    refused(bench.main, [*argv, str(tmp_path / "file")], capsys, "is a file")
    parser = bench.argparse.ArgumentParser()
    again = tmp_path / "again"
    assert bench.output_folder(parser, again, bench.__file__) == again  # new: made and marked
    (again / "sdl").mkdir()
    assert bench.output_folder(parser, again, bench.__file__) == again  # this script's own: reused


def test_table_and_counts_are_checked_before_any_work(bench, tmp_path, capsys):
    table = tmp_path / "table.md"
    table.write_text("kept")
    out = ["--out", str(tmp_path / "out")]
    refused(bench.main, [*out, "--table", str(table)], capsys, "exists", "--overwrite")
    assert table.read_text() == "kept"
    refused(bench.main, [*out, "--table", str(tmp_path)], capsys, "is a folder")
    refused(bench.main, [*out, "--variants", ","], capsys, "names no variant")
    refused(bench.main, [*out, "--variants", "sdl,vdl,sdl"], capsys, "sdl more than once", "--seeds")
    refused(bench.main, [*out, "--seeds", "0"], capsys, "--seeds", ">= 1")
    refused(bench.main, [*out, "--epochs", "x"], capsys, "--epochs", "integer")
    refused(bench.main, [*out, "--products", "--device", "cuda"], capsys, "--products", "--device cpu")


def test_reference_side_by_side_is_refused_when_not_like_for_like(bench, tmp_path, capsys):
    """Their code runs on one CPU thread: ours on a GPU or on 2 threads would give a meaningless ratio; a
    folder with a main.py and scripts/ but without the variant's script is not their checkout."""
    reference = tmp_path / "ref"
    (reference / "scripts").mkdir(parents=True)
    (reference / "main.py").write_text("")
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "run_timed.py").write_text("")
    argv = ["--reference", str(reference), "--ds-bench", str(kit), "--variants", "vdl",
            "--out", str(tmp_path / "out")]
    refused(bench.main, argv, capsys, "scripts/MNIST_VDL.sh")
    (reference / "scripts" / "MNIST_VDL.sh").write_text("")
    refused(bench.main, [*argv, "--threads", "2"], capsys, "one CPU thread", "--threads 1")
    assert not (tmp_path / "out").exists()
