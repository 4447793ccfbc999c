"""The registry (names, options, errors) and the `sparsecoder data` sub-commands."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sparsecoder.cli import main
from sparsecoder.data import list_sources, load, source_options

NAMES = ["mnist", "patches", "whitened_patches", "cifar_patches", "synthetic", "synthetic_pyle", "arrays"]


def test_every_source_is_registered():
    assert [name for name, _, _ in list_sources()] == NAMES
    patch_sources = ("patches", "whitened_patches", "cifar_patches")
    sizes = {name: source_options(name)["patch_size"] for name in patch_sources}
    assert sizes == {"patches": 28, "whitened_patches": 16, "cifar_patches": 12}


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


def test_data_list_and_errors(capsys):
    assert main(["data", "list"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in NAMES) and "patch_size=28" in printed
    assert main(["data", "show", "nope", "--out", "x.png"]) == 2
    assert "known sources" in capsys.readouterr().err
    assert main(["data", "show", "synthetic", "--out", "x.png", "--set", "bogus=1"]) == 2
    assert "its options are" in capsys.readouterr().err
