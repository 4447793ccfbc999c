"""A sweep of a preset given as a YAML file: its trials are recognised as its own (config.yaml records the
preset's name, the file's stem), and a changed file is not taken for the finished trials' config."""

import shutil

import sparsecoder
from sparsecoder import sweep

TINY = ["epochs=1", "limit=300", "n_components=8"]


def _preset_file(path, lam):
    source = sparsecoder.__file__.replace("__init__.py", "presets/vdl-mnist.yaml")
    shutil.copy(source, path)
    text = path.read_text()
    assert "  lam: 0.02\n" in text
    path.write_text(text.replace("  lam: 0.02\n", f"  lam: {lam}\n"))


def test_a_preset_files_own_finished_trial_without_its_digest_is_its_own(tmp_path, monkeypatch):
    """A trial whose status file lacks the digest (the sweep stopped between metrics.json and it, or an
    older version wrote it) is checked against its config.yaml, which names the preset 'my', not 'my.yaml':
    it was refused as 'a run of another config (preset: folder has 'my', trial 'my.yaml')'."""
    monkeypatch.chdir(tmp_path)
    _preset_file(tmp_path / "my.yaml", 0.02)
    first = sweep("my.yaml", "sw", overrides=TINY, executor="serial", progress=False)
    trial = tmp_path / "sw" / first["rows"][0]["run_folder"]
    (trial / "sweep_trial.json").unlink()
    again = sweep("my.yaml", "sw", overrides=TINY, executor="serial", progress=False)
    assert again["rows"][0]["status"] == "done", again["rows"][0]["message"]
    # a trial stopped in its first epoch (config.yaml, no checkpoint) is started over, not refused
    (trial / "metrics.json").unlink()
    (trial / "checkpoint.pt").unlink()
    (trial / "sweep_trial.json").unlink()
    third = sweep("my.yaml", "sw", overrides=TINY, executor="serial", progress=False)
    assert third["counts"]["done"] == 1 and third["rows"][0]["status"] == "done"



def test_a_changed_preset_file_does_not_pass_for_the_finished_trials_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _preset_file(tmp_path / "my.yaml", 0.02)
    first = sweep("my.yaml", "sw", overrides=TINY, executor="serial", progress=False)
    metrics = (tmp_path / "sw" / first["rows"][0]["run_folder"] / "metrics.json").read_bytes()
    _preset_file(tmp_path / "my.yaml", 0.5)  # edited, or another folder's my.yaml
    again = sweep("my.yaml", "sw", overrides=TINY, executor="serial", progress=False)
    [row] = again["rows"]
    assert row["status"] == "failed" and "lam: folder has 0.02, trial 0.5" in row["message"]
    assert (tmp_path / "sw" / row["run_folder"] / "metrics.json").read_bytes() == metrics
