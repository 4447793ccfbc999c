"""Issue 11, class 2: one writer per run folder (an OS lock the kernel releases when its holder dies)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparsecoder.cli import main
from sparsecoder.train import train
from sparsecoder.train.integrity import LOCK_FILE, RunFolderBusy, run_folder_lock
from tests.safety_helpers import TINY, TINY_SET, fresh_run

SRC = str(Path(__file__).resolve().parents[1] / "src")
HOLDER = (
    "import sys\n"
    "from sparsecoder.train.integrity import run_folder_lock\n"
    "with run_folder_lock(sys.argv[1], 'train'):\n"
    "    print('locked', flush=True)\n"
    "    sys.stdin.read()\n"
)
# `sparsecoder train` that imports everything first and runs when a line arrives on its stdin: started beside
# the first train, its interpreter start and imports overlap that train's first epoch instead of following it.
READY_CLI = (
    "import sys\n"
    "from sparsecoder.cli import build_parser, main\n"
    "build_parser()\n"
    "sys.stdin.readline()\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _hold(folder: Path) -> subprocess.Popen:
    """A second real process holding the run folder's lock until its stdin closes (or it is killed)."""
    env = {**os.environ, "PYTHONPATH": SRC}
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout.readline().strip() == "locked"
    return process


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_second_writer_fails_at_once_naming_folder_and_pid(tmp_path_factory, tmp_path, capsys):
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.name != LOCK_FILE}
    holder = _hold(run)
    try:
        attempts = [
            ["train", "sdl-mnist", "--out", str(run), "--quiet", "--resume", "--set", "epochs=2"],
            ["train", "sdl-mnist", "--out", str(run), "--quiet", "--overwrite", "--set", *TINY_SET],
            ["evaluate", str(run)],
        ]
        for argv in attempts:
            assert main(argv) != 0
            err = _one_line_error(capsys)
            assert str(run) in err and f"PID {holder.pid}" in err, err
        with pytest.raises(RunFolderBusy, match=f"PID {holder.pid}"):
            train("sdl-mnist", run, overrides={**TINY, "epochs": 2}, resume=True, progress=False)
        # nothing of the holder's run was touched
        assert before == {p.name: p.read_bytes() for p in run.iterdir() if p.name != LOCK_FILE}
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path_factory, tmp_path, capsys):
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    holder = _hold(run)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (run / LOCK_FILE).read_text().split()[0] == str(holder.pid)  # the file stays, the lock does not
    assert main(["evaluate", str(run)]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 1
    assert (run / LOCK_FILE).read_text().split()[0] == str(os.getpid())


def test_the_lock_is_released_after_use_and_refused_while_held_in_process(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    with run_folder_lock(folder, "train"), pytest.raises(RunFolderBusy, match=str(os.getpid())), \
            run_folder_lock(folder, "evaluate"):
        pass  # flock locks belong to the open file: a second open in one process conflicts too
    with run_folder_lock(folder, "evaluate"):
        pass


def test_a_refused_train_leaves_no_folder_behind(tmp_path, capsys):
    out = tmp_path / "new" / "run"
    assert main(["train", "sdl-mnist", "--out", str(out), "--set", "epochs=-1"]) != 0
    assert "epochs" in _one_line_error(capsys)
    assert not out.exists() and not out.parent.exists()


def test_a_real_concurrent_train_blocks_a_second_train_into_the_same_folder(tmp_path):
    """Two `sparsecoder train` processes into one --out: the second fails at once naming the first's PID."""
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": SRC}
    first = subprocess.Popen([sys.executable, "-m", "sparsecoder", "train", "sdl-mnist", "--out", str(run),
                              "--quiet", "--set", *(s for s in TINY_SET if not s.startswith("epochs=")),
                              "epochs=1000"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen([sys.executable, "-c", READY_CLI, "train", "sdl-mnist", "--out", str(run),
                               "--quiet", "--resume"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (run / "checkpoint.pt").is_file():  # the first is training (an epoch completed)
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        _, stderr = second.communicate("run\n", timeout=300)
        assert second.returncode == 2 and first.poll() is None
        assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
        assert f"PID {first.pid}" in stderr and str(run) in stderr
    finally:
        for process in (first, second):
            process.kill()
            process.wait()


@pytest.mark.parametrize("made_by_first", [True, False])
def test_a_lock_file_removed_by_a_leaving_holder_is_not_the_lock(tmp_path, monkeypatch, made_by_first):
    """Two commands started together: the second opens the lock file, the first (refused before it wrote a
    run) removes that file, and its folder if it made it, and ends; the second's flock then succeeded on the
    removed file, so a third command locked a new lock file beside it (two writers), or the second failed
    with a traceback listing the removed folder."""
    folder = tmp_path / "new" / "run"
    if not made_by_first:
        folder.mkdir(parents=True)
    first = run_folder_lock(folder, "train", create=True)
    first.__enter__()
    real_flock = fcntl.flock

    def first_leaves_then_flock(fd, operation):  # the interleaving of the two processes, made certain
        monkeypatch.setattr(fcntl, "flock", real_flock)
        first.__exit__(None, None, None)
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", first_leaves_then_flock)
    with run_folder_lock(folder, "train", create=True):
        assert (folder / LOCK_FILE).read_text().split()[0] == str(os.getpid())
        with pytest.raises(RunFolderBusy), run_folder_lock(folder, "evaluate", create=True):
            pass


def test_a_file_system_without_locks_is_named_and_leaves_no_folder(tmp_path, monkeypatch, capsys):
    """flock failing with ENOLCK (NFS without its lock service): the error was a bare "[Errno 37] No locks
    available", and the new run folder was left behind holding an empty lock file."""
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    out = tmp_path / "new" / "run"
    assert main(["train", "sdl-mnist", "--out", str(out), "--quiet", "--set", *TINY_SET]) != 0
    err = _one_line_error(capsys)
    assert str(out) in err and "No locks available" in err and "local disk" in err
    assert not (tmp_path / "new").exists()


def test_a_busy_lock_file_naming_a_dead_process_is_not_called_the_holder(tmp_path):
    """Two commands started together: the loser read the lock file before the winner wrote its PID over
    the previous (killed) holder's, and named that dead process as the one to wait for or stop."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_FILE).write_text("999999999 train\n")  # a PID no process has
    fd = os.open(folder / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held, its PID not (yet) written
        with pytest.raises(RunFolderBusy, match="PID unknown: the lock file names PID 999999999, which is "
                                                "not running"), run_folder_lock(folder, "evaluate"):
            pass
    finally:
        os.close(fd)


@pytest.mark.parametrize(("purpose", "kind"), [("train", "run folder"), ("sweep", "sweep folder"),
                                               ("reproduce", "experiment folder")])
def test_a_folder_that_cannot_be_created_is_named_by_its_kind(tmp_path, purpose, kind):
    # audit 2026-11-29: a sweep under a file said "cannot create the run folder"
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    message = f"^cannot create the {kind} {blocker / 'out'}: {blocker} is a file"
    with pytest.raises(NotADirectoryError, match=message):
        with run_folder_lock(blocker / "out", purpose, create=True):
            pass
