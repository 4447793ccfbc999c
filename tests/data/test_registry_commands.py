"""The registry (names, options, errors) and the `sparsecoder data` sub-commands."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from sparsecoder.cli import main
from sparsecoder.data import list_sources, load, source_options

NAMES = ["mnist", "patches", "whitened_patches", "cifar_patches", "synthetic", "synthetic_pyle", "arrays"]


def test_every_source_is_registered():
    assert [name for name, _, _ in list_sources()] == NAMES
    patch_sources = ("patches", "whitened_patches", "cifar_patches")
    sizes = {name: source_options(name)["patch_size"] for name in patch_sources}
    assert sizes == {"patches": 28, "whitened_patches": 16, "cifar_patches": 12}


def test_a_source_producing_nan_or_inf_is_refused_naming_its_options():
    # the net under every source (one registered by a user included): before, its inf rows reached training
    # ("the train split contains NaN or inf"), naming neither the source nor the option
    from sparsecoder.data import DataSplits, Split, register_source
    from sparsecoder.data.registry import SOURCES

    def load_scaled(*, seed=0, limit=None, data_dir=None, scale: float = 1.0):
        x = torch.full((4, 3), 1e30) * scale  # float32: 1e30 · 1e10 is inf
        return DataSplits("scaled", Split(x), Split(x), Split(x), None, "none")

    register_source("scaled_test", "test source", embedded=True)(load_scaled)
    try:
        assert load("scaled_test").train.x.isfinite().all()
        with pytest.raises(ValueError, match=r"data source 'scaled_test' produced NaN or inf in 4 of 4 train "
                                             r"rows .* with data_options scale: 1e\+10"):
            load("scaled_test", scale=1e10)
    finally:
        del SOURCES["scaled_test"]



def test_the_test_split_alone_is_checked_for_nan_when_only_it_is_loaded():
    # load_test_split (evaluate, reproduce) keeps the test split only: its NaN/inf scan covers those rows,
    # not train/val rows it drops (a NaN in them was refused there; scanning them cost a pass over the data)
    from sparsecoder.data import DataSplits, Split, load_test_split, register_source
    from sparsecoder.data.registry import SOURCES

    def load_mixed(*, seed=0, limit=None, data_dir=None, broken: str = "train"):
        good, bad = torch.ones(4, 3), torch.ones(4, 3).index_fill_(0, torch.tensor([1]), float("nan"))
        splits = {key: Split(bad if key == broken else good) for key in ("train", "val", "test")}
        return DataSplits("mixed", splits["train"], splits["val"], splits["test"], None, "none")

    register_source("mixed_test", "test source", embedded=True)(load_mixed)
    try:
        data = load_test_split("mixed_test", broken="train")
        assert data.test.x.shape == (4, 3) and len(data.train) == len(data.val) == 0
        with pytest.raises(ValueError, match="1 of 4 train rows"):
            load("mixed_test", broken="train")
        with pytest.raises(ValueError, match="1 of 4 test rows"):
            load_test_split("mixed_test", broken="test")
    finally:
        del SOURCES["mixed_test"]

def test_unknown_source_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown data source 'imagenet'; known sources: arrays, cifar"):
        load("imagenet")


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"no option\(s\) \['patchsize'\].*min_std, n_test, n_train, n_val"):
        load("patches", patchsize=12)


@pytest.mark.parametrize("name", ["synthetic_pyle", "mnist"])
def test_data_show_writes_a_grid(tmp_path, capsys, name):
    out = tmp_path / f"{name}.png"
    options = ["--set", "n_train=50"] if name != "mnist" else []
    assert main(["data", "show", name, "--out", str(out), "-n", "16", *options]) == 0
    assert name in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.size[0] > 50 and np.asarray(image).std() > 0


def test_data_show_arrays_as_vectors(tmp_path):
    np.save(tmp_path / "v.npy", np.random.default_rng(0).normal(size=(30, 7)))
    out = tmp_path / "v.png"
    assert main(["data", "show", "arrays", "--data-dir", str(tmp_path / "v.npy"), "--out", str(out)]) == 0
    assert out.is_file()


def test_data_show_never_replaces_a_file_without_overwrite(tmp_path, capsys):
    np.save(tmp_path / "v.npy", np.random.default_rng(0).normal(size=(30, 7)))
    out = tmp_path / "figure.png"
    out.write_bytes(b"mine")
    show = ["data", "show", "arrays", "--data-dir", str(tmp_path / "v.npy"), "--out", str(out)]
    assert main(show) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == b"mine"
    assert main([*show, "--overwrite"]) == 0
    with Image.open(out) as image:
        assert image.size[0] > 0


@pytest.mark.parametrize("where, message", [
    ("folder.png", r"--out .*folder.png is a folder, not a file"),
    ("notes.txt/grid.png", r"cannot write --out .*notes.txt is a file, not a folder"),
])
def test_data_show_refuses_an_out_it_cannot_write_before_loading_the_data(tmp_path, capsys, monkeypatch,
                                                                         where, message):
    """--out a folder, or below a regular file: named before the data loads (was an error from the PNG
    writer after the source was built), and nothing of the user's is touched."""
    import sparsecoder.data as data_module

    (tmp_path / "folder.png").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.setattr(data_module, "load", lambda *a, **k: pytest.fail("the data was loaded"))
    assert main(["data", "show", "synthetic", "--out", str(tmp_path / where), "--overwrite"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert (tmp_path / "notes.txt").read_text() == "mine" and not any((tmp_path / "folder.png").iterdir())


def test_data_list_and_errors(capsys):
    assert main(["data", "list"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in NAMES) and "patch_size=28" in printed
    assert main(["data", "show", "nope", "--out", "x.png"]) == 2
    assert "known sources" in capsys.readouterr().err
    assert main(["data", "show", "synthetic", "--out", "x.png", "--set", "bogus=1"]) == 2
    assert "its options are" in capsys.readouterr().err


@pytest.mark.parametrize("option, flag", [("seed=3", "--seed"), ("data_dir=/tmp", "--data-dir"),
                                          ("name=mnist", "the NAME argument")])
def test_data_show_set_of_its_own_keyword_names_the_flag(tmp_path, capsys, option, flag):
    """`--set seed=3` reached load() next to --seed: "load() got multiple values for keyword argument
    'seed'" (a TypeError reported as unexpected, exit 1). Every keyword of load() that `data show` passes
    itself is refused naming its flag; `limit`, the other one, is a --set option."""
    import inspect

    from sparsecoder.data.commands import SHOW_OWN_KEYWORDS

    keywords = [k for k, p in inspect.signature(load).parameters.items() if p.kind is not p.VAR_KEYWORD]
    assert set(keywords) - set(SHOW_OWN_KEYWORDS) == {"limit"}
    out = tmp_path / "g.png"
    code = main(["data", "show", "synthetic", "--out", str(out), "--set", "n_train=20", "n_val=5",
                 "n_test=5", option])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "unexpected" not in err and "TypeError" not in err
    assert f"use {flag}" in err and not out.exists()
    assert main(["data", "show", "synthetic", "--out", str(out), "--set", "n_train=20", "limit=10"]) == 0
    assert "train 10," in capsys.readouterr().out


def test_a_file_option_that_is_not_text_is_refused_naming_it(tmp_path, capsys):
    # audit 2026-11-29: `--set path=2024` (YAML reads a number) or `path=[a.npy]` ended in "TypeError:
    # expected str, bytes or os.PathLike object, not int (unexpected; ... report it)"
    out = tmp_path / "g.png"
    for value, shown in (("2024", "2024"), ("[a.npy]", r"\['a.npy'\]")):
        assert main(["data", "show", "arrays", "--out", str(out), "--set", f"path={value}"]) == 2
        err = capsys.readouterr().err
        assert re.search(f"'data_options.path': expected a string, got {shown}", err)
        assert "unexpected" not in err
    with pytest.raises(ValueError, match="data_dir must be a path \\(text\\), got 123"):
        load("patches", data_dir=123)
    np.save(tmp_path / "x.npy", np.ones((10, 3)))
    assert load("arrays", path=tmp_path / "x.npy").dim == 3  # a Path is a path

def test_data_show_refuses_a_repeated_set_key(tmp_path, capsys):
    out = tmp_path / "g.png"
    assert main(["data", "show", "synthetic", "--out", str(out), "--set", "n_train=20", "n_train=30"]) == 2
    assert "'n_train' is given twice" in capsys.readouterr().err and not out.exists()


def test_options_in_exponent_notation_or_integral_floats_reach_the_loader_as_numbers(tmp_path, capsys):
    """YAML 1.1 reads ``2e2`` as the string '2e2' (``2.0e+2`` is a float): `--set` and config values both
    go through it, so the loader gets the number its signature asks for, not the string."""
    data = load("synthetic", seed=0, n_train="2e2", n_val=20.0, n_test="2e1", dim="1.6e1", noise="1e-2")
    assert (len(data.train), len(data.val), len(data.test), data.dim) == (200, 20, 20, 16)
    assert len(load("synthetic", limit="1e1", n_train=50, n_val=10, n_test=10).train) == 10
    out = tmp_path / "g.png"
    assert main(["data", "show", "synthetic", "--out", str(out), "--set", "n_train=2e2", "noise=1e-2"]) == 0
    assert "train 200" in capsys.readouterr().out and out.is_file()
    with pytest.raises(ValueError, match="n_train must be a positive integer, got 2.5"):
        load("synthetic", n_train=2.5)
    with pytest.raises(ValueError, match="limit must be an integer >= 2"):
        load("synthetic", limit="ten")


@pytest.mark.parametrize("value, shape", [("16", (16, 16)), ("[8, 32]", (8, 32)), ("[8, 8, 4]", (8, 8, 4)),
                                          ("'1.6e1'", (16, 16))])
def test_arrays_image_shape_as_one_integer_for_a_square_or_a_list(tmp_path, capsys, value, shape):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((20, 256)))
    data = load("arrays", path=str(tmp_path / "x.npy"), image_shape=yaml.safe_load(value))
    assert data.image_shape == shape
    out = tmp_path / "g.png"
    assert main(["data", "show", "arrays", "--data-dir", str(tmp_path / "x.npy"), "--out", str(out),
                 "--set", f"image_shape={value}"]) == 0
    assert out.is_file()


@pytest.mark.parametrize("value, message", [
    ("[-16, -16]", "image_shape must be .*positive integers.*got \\[-16, -16\\]"),
    ("0", "image_shape must be .*got \\[0, 0\\]"),
    ("[256]", "image_shape must be .*got \\[256\\]"),
    ("[4, 8, 8]", "image_shape must be .*3 or 4.*got \\[4, 8, 8\\]"),
    ("[16, sixteen]", "image_shape must be .*got \\[16, 'sixteen'\\]"),
    ("[15, 15]", "x.npy: image_shape \\[15, 15\\] holds 225 values but the rows have 256"),
])
def test_arrays_image_shape_that_cannot_draw_the_rows_is_refused_before_any_work(tmp_path, capsys, value,
                                                                                 message):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((20, 256)))
    with pytest.raises(ValueError, match=message):
        load("arrays", path=str(tmp_path / "x.npy"), image_shape=yaml.safe_load(value))
    out = tmp_path / "g.png"
    assert main(["data", "show", "arrays", "--data-dir", str(tmp_path / "x.npy"), "--out", str(out),
                 "--set", f"image_shape={value}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "image_shape" in err and not out.exists()


def test_every_command_and_option_of_the_cli_has_help_text():
    """`--help` of every (sub)command explains each of its arguments: `data show --seed/--split`,
    `data download`'s positional and `data list` had no text."""
    import argparse

    from sparsecoder.cli import build_parser

    missing = []

    def walk(parser, path):
        if not parser.description:
            missing.append(f"{path}: no description")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{path} {name}")
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)) and not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "sparsecoder")
    assert not missing, missing


def test_a_data_dir_under_the_home_folder_written_with_a_tilde_is_found(tmp_path, monkeypatch):
    """README: `--set data_dir=~/imagenet/train`. Only bash expands that `~`; from sh/zsh or a YAML file the
    text `~/...` reached the loader, which said the folder does not exist."""
    from sparsecoder.sweep.run import check_data_dirs
    from tests.data.helpers import write_mnist_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    write_mnist_dir(tmp_path / "mnist")
    data = load("mnist", data_dir="~/mnist")
    assert len(data.test) == 20
    check_data_dirs(["~/mnist"], None)  # the sweep's / reproduce's check before any trial
