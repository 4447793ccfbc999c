"""Ctrl-C on `sparsecoder sweep` cancels the Ray tasks and leaves every trial resumable (slow: ~1-2 min)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparsecoder.sweep.executor import STATUS_FILE, trial_state

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.slow
def test_ctrl_c_cancels_trials_and_the_rerun_resumes_them(tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "sparsecoder", "sweep", "vdl-mnist", "--out", str(out), "--grid",
               "lam=0.001,0.02", "--set", "limit=300", "epochs=60", "n_components=16", "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    trials = [out / "vdl-mnist" / f"lam={lam}" / "seed=0" for lam in ("0.001", "0.02")]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not all((t / "checkpoint.pt").is_file() for t in trials):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Rerun the same command to resume" in err
    for trial in trials:
        assert trial_state(trial) == "interrupted" and not (trial / STATUS_FILE).exists()
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    for trial in trials:
        assert trial_state(trial) == "done"
        assert len((trial / "history.csv").read_text().strip().splitlines()) == 1 + 60
