"""Paths given to ``reproduce``: a relative ``--data-dir`` is recorded (``reproduce.yaml``, the trials'
``config.yaml``) as the absolute path it named, so the trials are evaluated from any folder and a rerun from
another folder, where the same text names other data, is refused instead of mixing the two; a leading ``~``
in ``--out`` and ``--data-dir`` is the home folder."""

import yaml

from sparsecoder.cli import main
from sparsecoder.train import evaluate_run
from tests.data.helpers import write_mnist_dir

ARGS = ["evtimova-collapse", "--quick", "--serial", "--quiet", "--set", "variants=[sdl]", "epochs=1"]
TRIAL = "trials/sdl-mnist/sdl-mnist/default/seed=0"


def test_a_relative_data_dir_is_recorded_absolute(tmp_path, monkeypatch, capsys):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    write_mnist_dir(here / "mnist")
    write_mnist_dir(elsewhere / "mnist", seed=1)  # other digits under the same relative path
    monkeypatch.chdir(here)
    assert main(["reproduce", *ARGS, "--out", "r", "--data-dir", "mnist"]) == 0
    absolute = str(here / "mnist")
    assert yaml.safe_load((here / "r" / "reproduce.yaml").read_text())["data_dir"] == absolute
    trial = here / "r" / TRIAL
    assert yaml.safe_load((trial / "config.yaml").read_text())["config"]["data_dir"] == absolute
    metrics = (trial / "metrics.json").read_bytes()
    assert main(["reproduce", *ARGS, "--out", "r", "--data-dir", "mnist"]) == 0  # trains nothing
    assert (trial / "metrics.json").read_bytes() == metrics
    monkeypatch.chdir(elsewhere)
    assert evaluate_run(trial)["psnr"] > 0  # its own data, from another folder
    capsys.readouterr()
    assert main(["reproduce", *ARGS, "--out", str(here / "r"), "--data-dir", "mnist"]) == 2
    err = capsys.readouterr().err
    assert f"data_dir: '{absolute}' there, '{elsewhere / 'mnist'}' now" in err
    assert (trial / "metrics.json").read_bytes() == metrics


def test_a_leading_tilde_in_out_and_data_dir_is_the_home_folder(tmp_path, monkeypatch):
    home = tmp_path / "home"
    write_mnist_dir(home / "mnist")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", *ARGS, "--out", "~/r", "--data-dir", "~/mnist"]) == 0
    assert (home / "r" / "results.md").is_file()
    assert not (tmp_path / "~").exists()


def test_an_experiment_recorded_with_a_relative_data_dir_is_still_resumed_from_its_folder(
        tmp_path, monkeypatch):
    """An experiment written before --data-dir was recorded absolute: reproduce.yaml, its trials' sweep.yaml
    and config.yaml hold the relative text; the same command from the same folder trains nothing."""
    write_mnist_dir(tmp_path / "mnist")
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", *ARGS, "--out", "r", "--data-dir", "mnist"]) == 0
    absolute = str(tmp_path / "mnist")
    trial = tmp_path / "r" / TRIAL
    for path in (tmp_path / "r" / "reproduce.yaml", trial.parent.parent.parent / "sweep.yaml",
                 trial / "config.yaml"):  # as an older version wrote them
        path.write_text(path.read_text().replace(absolute, "mnist"))
    (trial / "sweep_trial.json").unlink()  # its digest is of the config.yaml before the edit
    metrics = (trial / "metrics.json").read_bytes()
    assert main(["reproduce", *ARGS, "--out", "r", "--data-dir", "mnist"]) == 0
    assert (trial / "metrics.json").read_bytes() == metrics
