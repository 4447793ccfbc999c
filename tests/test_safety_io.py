"""Issue 11, class 6: I/O failures end in one line naming the path; earlier files stay intact."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsecoder.cli import main
from sparsecoder.train.integrity import LOCK_FILE, run_folder_lock, verify_digest
from tests.safety_helpers import fresh_run

SRC = str(Path(__file__).resolve().parents[1] / "src")
RESUME = ["train", "sdl-mnist", "--quiet", "--resume", "--set", "epochs=2", "--out"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _snapshot(folder: Path, *, resumed: bool = False) -> dict[str, bytes]:
    """Every file's bytes; after a resume attempt, config.yaml (epochs) and digests.json may change."""
    skip = {LOCK_FILE, "config.yaml", "digests.json"} if resumed else {LOCK_FILE}
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name not in skip}


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MB tmpfs (needs root and mount permission; skipped cleanly otherwise)."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"mount not permitted here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` up to ``leave`` free bytes."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as err:
            assert err.errno == errno.ENOSPC
    with open(filler, "r+b") as fh:
        fh.truncate(max(0, filler.stat().st_size - leave))
    return filler


def test_disk_full_during_resume_leaves_the_run_intact(tmp_path_factory, tmpfs, capsys):
    run = fresh_run(tmp_path_factory, tmpfs / "run")
    before = _snapshot(run, resumed=True)
    filler = _fill(tmpfs, leave=64 * 1024)  # room for digests.json, not for a checkpoint
    assert main([*RESUME, str(run)]) == 2
    err = _one_line_error(capsys)
    assert "No space left on device" in err and str(run) in err
    assert "holds epoch 1: make room (or make the folder writable) and continue with --resume" in err
    assert _snapshot(run, resumed=True) == before and _no_temp_files(run)
    verify_digest(run / "checkpoint.pt")
    verify_digest(run / "model.safetensors")
    filler.unlink()  # with space again, the same run resumes from its intact checkpoint
    assert main([*RESUME, str(run)]) == 0
    capsys.readouterr()


def test_a_file_size_limit_fails_the_same_way_without_privileges(tmp_path_factory, tmp_path):
    """RLIMIT_FSIZE makes the kernel fail write() with EFBIG: the same code path as a full disk."""
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    before = _snapshot(run, resumed=True)
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
            "from sparsecoder.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", code, *RESUME, str(run)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SRC}, timeout=600)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "File too large" in done.stderr and str(run) in done.stderr
    assert "training stopped in epoch 2" in done.stderr and "continue with --resume" in done.stderr
    assert _snapshot(run, resumed=True) == before and _no_temp_files(run)
    verify_digest(run / "checkpoint.pt")


def _read_only(folder: Path) -> None:
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("root without mount permission: cannot make a read-only folder")
    subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)


def test_a_read_only_run_folder_is_named(tmp_path_factory, tmp_path, capsys):
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    before = _snapshot(run)
    _read_only(run)
    try:
        for argv in ([*RESUME, str(run)], ["evaluate", str(run)]):
            assert main(argv) == 2
            err = _one_line_error(capsys)
            assert str(run) in err and ("Read-only" in err or "Permission denied" in err), err
        assert _snapshot(run) == before
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(run)], check=False)
        else:
            run.chmod(0o755)


def test_an_out_below_a_regular_file(tmp_path_factory, tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    assert main(["train", "sdl-mnist", "--out", str(blocker / "run"), "--set", "epochs=1"]) == 2
    assert str(blocker) in _one_line_error(capsys)
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    import numpy as np

    np.save(tmp_path / "rows.npy", np.zeros((2, 784), np.float32))
    assert main(["encode", str(run), str(tmp_path / "rows.npy"), "--out", str(blocker / "c.npy")]) == 2
    err = _one_line_error(capsys)
    # audit 2026-11-29: was "[Errno 17] cannot write …: File exists", and only after the encoding ran
    assert str(blocker / "c.npy") in err and f"{blocker} is a file" in err and "File exists" not in err
    assert blocker.read_text() == "mine"


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_encode_and_decode_check_their_out_path_before_any_work(tmp_path_factory, tmp_path, capsys, command):
    """Checked up front by the one helper for output files (sparsecoder.io.check_output_file): the input
    named here does not exist, so an error about --out proves nothing else ran first."""
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    folder = tmp_path / "existing.npy"
    folder.mkdir()
    missing_input = str(tmp_path / "no-such-input.npy")
    cases = [
        ([str(blocker / "c.npy")], f"{blocker} is a file, not a folder"),
        ([str(blocker / "sub" / "deeper" / "c.npy")], f"{blocker} is a file, not a folder"),
        # was "Is a directory" after the encoding, with --overwrite
        ([str(folder), "--overwrite"], f"--out {folder} is a folder, not a file"),
        ([str(folder)], f"--out {folder} is a folder, not a file"),
    ]
    for out, message in cases:
        assert main([command, str(run), missing_input, "--out", *out]) == 2
        err = _one_line_error(capsys)
        assert message in err and "no input file" not in err, err
    assert blocker.read_text() == "mine" and folder.is_dir() and not any(folder.iterdir())
    # missing folders are created, as before
    width = 784 if command == "encode" else 16
    np.save(tmp_path / "rows.npy", np.zeros((2, width), np.float32))
    out = tmp_path / "new" / "sub" / "c.npy"
    assert main([command, str(run), str(tmp_path / "rows.npy"), "--out", str(out)]) == 0
    assert np.load(out).shape[0] == 2


def test_check_output_file_names_each_problem(tmp_path):
    from sparsecoder.io import check_output_file

    (tmp_path / "file").write_text("x")
    assert check_output_file(tmp_path / "a" / "b.png", option="--out") == tmp_path / "a" / "b.png"
    assert check_output_file(tmp_path / "file", overwrite=True) == tmp_path / "file"
    with pytest.raises(FileExistsError, match="file exists; choose another --out or pass --overwrite"):
        check_output_file(tmp_path / "file")
    with pytest.raises(IsADirectoryError, match="is a folder, not a file"):
        check_output_file(tmp_path, overwrite=True)
    with pytest.raises(NotADirectoryError, match="file is a file, not a folder"):
        check_output_file(tmp_path / "file" / "x" / "y.npy")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(NotADirectoryError, match="broken symbolic link"):
        check_output_file(tmp_path / "link" / "y.npy")


def test_an_output_file_made_while_the_command_ran_is_kept(tmp_path):
    # audit 2026-11-29: encode/decode check --out before any work, but the write minutes later replaced
    # whatever had been put at that path meanwhile (os.replace); without --overwrite it is now refused then
    from sparsecoder.io import OutputExists, atomic_write_npy

    out = tmp_path / "codes.npy"
    out.write_text("the user's notes")
    with pytest.raises(OutputExists, match=r"codes.npy exists \(it was created while this command ran\) "
                                           r"and is kept; choose another --out or pass --overwrite"):
        atomic_write_npy(out, np.zeros(3), overwrite=False)
    assert out.read_text() == "the user's notes" and _no_temp_files(tmp_path)
    atomic_write_npy(tmp_path / "new.npy", np.arange(3), overwrite=False)
    atomic_write_npy(out, np.arange(3), overwrite=True)
    for path in (out, tmp_path / "new.npy"):
        np.testing.assert_array_equal(np.load(path), np.arange(3))
    assert _no_temp_files(tmp_path)


@pytest.mark.parametrize("layout", ["absolute", "relative", "parent"])
def test_a_broken_symbolic_link_as_run_folder_is_named_with_its_target(tmp_path_factory, tmp_path, capsys,
                                                                       layout):
    """`--out` (or a folder on its path) that is a link to nothing: train says so instead of "no run
    folder" and creates nothing where it points (an unmounted disk's mount point); evaluate, encode and
    decode name the link and its target. A link to a real run folder works as before."""
    import numpy as np

    target = tmp_path / "disk" / "runs"
    if layout == "parent":
        link = tmp_path / "runs"
        link.symlink_to(target)
        out, shown = link / "vdl", str(target)
    else:
        link = out = tmp_path / "run"
        link.symlink_to(target if layout == "absolute" else Path("disk") / "runs")
        shown = str(target) if layout == "absolute" else f"disk/runs, i.e. {target}"
    on_path = " (on its path)" if layout == "parent" else ""
    broken = f"{link}{on_path} is a broken symbolic link: it points to {shown}, which does not exist"
    assert main(["train", "sdl-mnist", "--out", str(out), "--quiet", "--set", "epochs=1"]) == 2
    assert f"cannot create the run folder {out}: {broken}" in _one_line_error(capsys)
    assert not (tmp_path / "disk").exists() and link.is_symlink()
    np.save(tmp_path / "rows.npy", np.zeros((2, 784), np.float32))
    for argv in (["evaluate", str(out)],
                 ["encode", str(out), str(tmp_path / "rows.npy"), "--out", str(tmp_path / "c.npy")],
                 ["decode", str(out), str(tmp_path / "rows.npy"), "--out", str(tmp_path / "r.npy")]):
        assert main(argv) == 2
        assert f"no run folder at {out}: {broken}" in _one_line_error(capsys)
    if layout == "absolute":  # the same link, once its target exists, is followed as before
        fresh_run(tmp_path_factory, target)
        assert main(["encode", str(out), str(tmp_path / "rows.npy"), "--out", str(tmp_path / "c.npy")]) == 0
        capsys.readouterr()


@pytest.mark.parametrize("content", [b"model: sparse_autoencoder\nconfig: {lam: [1,\n", b"\xff\xfe\x00binary",
                                     b"model: [a, b]\nconfig: {}\n", b"- just\n- a list\n"])
def test_malformed_yaml_in_a_preset_file_or_config_yaml(tmp_path_factory, tmp_path, capsys, content):
    preset = tmp_path / "mine.yaml"
    preset.write_bytes(content)
    assert main(["train", str(preset), "--out", str(tmp_path / "new"), "--set", "epochs=1"]) == 2
    assert str(preset) in _one_line_error(capsys) and not (tmp_path / "new").exists()
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    (run / "config.yaml").write_bytes(content)
    before = _snapshot(run)
    for argv in (["evaluate", str(run)], [*RESUME, str(run)]):
        assert main(argv) == 2
        assert str(run / "config.yaml") in _one_line_error(capsys)
    assert _snapshot(run) == before


@pytest.mark.parametrize("content", [b'"just a string"\n', b"\x80\x81\x00\xff", b'{"psnr": 1.0', b"[1, 2]"])
def test_a_metrics_json_that_is_not_an_object(tmp_path_factory, tmp_path, capsys, content):
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    (run / "metrics.json").write_bytes(content)
    assert main(["evaluate", str(run)]) == 2
    assert str(run / "metrics.json") in _one_line_error(capsys)
    assert (run / "metrics.json").read_bytes() == content


@pytest.mark.parametrize("entry", ["rng", "history", "optimizers", "best_epoch"])
def test_a_checkpoint_missing_an_entry_is_named(tmp_path_factory, tmp_path, capsys, entry):
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state[entry]
    torch.save(state, run / "checkpoint.pt")  # written by another program: no digest for it
    digests = json.loads((run / "digests.json").read_text())
    del digests["checkpoint.pt"]
    (run / "digests.json").write_text(json.dumps(digests))
    before = _snapshot(run)
    assert main([*RESUME, str(run)]) == 2
    err = _one_line_error(capsys)
    assert str(run / "checkpoint.pt") in err and f"'{entry}'" in err
    assert _snapshot(run) == before


WRITER = (
    "import sys\n"
    "from pathlib import Path\n"
    "from sparsecoder.io import atomic_write_bytes\n"
    "folder = Path(sys.argv[1])\n"
    "print('go', flush=True)\n"
    "while True:\n"
    "    atomic_write_bytes(folder / 'checkpoint.pt', b'x' * (32 << 20))\n"
)


def test_stale_temp_files_of_run_names_are_removed_under_the_lock(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text("model: sparse_autoencoder\nconfig: {}\n")  # a run folder
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": SRC})
    assert process.stdout.readline().strip() == "go"
    time.sleep(0.3)
    os.kill(process.pid, signal.SIGKILL)  # most likely in the middle of writing a temp file
    process.wait()
    for name in (".model.safetensors.k2j4_x9a.tmp", ".atoms.png.abc12345.tmp", ".history.csv.zz.tmp"):
        (folder / name).write_bytes(b"half")
    keep = [".notes.txt.abc.tmp", "report.tmp", ".checkpoint.pt.abc.tmp.bak", "checkpoint.pt.abc.tmp"]
    for name in keep:
        (folder / name).write_bytes(b"user file")
    with run_folder_lock(folder, "train"):
        left = sorted(p.name for p in folder.iterdir()
                      if p.name not in (LOCK_FILE, "checkpoint.pt", "config.yaml"))
    assert left == sorted(keep)


def test_stale_temp_files_of_a_sweep_folders_own_files_are_removed_on_its_next_command(tmp_path):
    # audit 2026-11-29: a sweep killed while writing results.csv / results.md / sweep.yaml left a hidden
    # .NAME.XXXX.tmp that no later command removed (only run files' names were cleaned)
    from sparsecoder.sweep import sweep

    folder = tmp_path / "sweep"
    kwargs = dict(grid=["lam=0.01"], seeds="0", overrides={"epochs": 1, "limit": 200}, executor="serial",
                  progress=False)
    sweep(["sdl-mnist"], folder, **kwargs)
    (folder / LOCK_FILE).write_text("999999999 sweep\n")  # left by the killed sweep, as kill -9 leaves it
    stale = [".results.csv.ab12.tmp", ".results.md.cd34.tmp", ".sweep.yaml.ef56.tmp", ".reproduce.yaml.x.tmp"]
    for name in [*stale, ".notes.txt.abc.tmp"]:
        (folder / name).write_bytes(b"half")
    sweep(["sdl-mnist"], folder, **kwargs)
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) == [".notes.txt.abc.tmp"]


def test_a_folder_that_is_not_a_run_folder_is_left_exactly_as_it_was(tmp_path, capsys):
    folder = tmp_path / "documents"
    folder.mkdir()
    for name in (".checkpoint.pt.abc12345.tmp", "letter.txt"):
        (folder / name).write_text("the user's")
    before = sorted(p.name for p in folder.iterdir())
    assert main(["train", "sdl-mnist", "--out", str(folder), "--set", "epochs=1"]) == 2
    assert "not empty" in _one_line_error(capsys)
    assert main(["evaluate", str(folder)]) == 2
    assert "config" in _one_line_error(capsys)
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.parametrize("size", [0, 1, 4097, 3_000_000])
def test_a_preallocated_atomic_write_holds_exactly_the_bytes_over_a_longer_file(tmp_path, size):
    """The temp file is preallocated to the data's length before it is written and renamed: the result is
    exactly the data, also over a longer previous file, and no temp file stays behind."""
    from sparsecoder.io import atomic_write_bytes

    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"\xff" * 5_000_000)
    data = os.urandom(size)
    atomic_write_bytes(target, data)
    assert target.read_bytes() == data and _no_temp_files(tmp_path)


def test_encode_never_writes_its_output_over_its_input(tmp_path_factory, tmp_path, capsys):
    # audit 2026-11-29: `encode RUN x.npy --out x.npy --overwrite` replaced the user's rows by their codes
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    rows = tmp_path / "rows.npy"
    np.save(rows, np.zeros((2, 784), np.float32))
    before = rows.read_bytes()
    (tmp_path / "alias.npy").symlink_to(rows)
    for out in (rows, tmp_path / "alias.npy"):
        assert main(["encode", str(run), str(rows), "--out", str(out), "--overwrite"]) == 2
        err = _one_line_error(capsys)
        assert f"is the input file {rows}" in err and "choose another --out" in err
    assert rows.read_bytes() == before
    assert main(["encode", str(run), str(rows), "--out", str(tmp_path / "codes.NPY")]) == 0  # any case


def test_encode_and_decode_refuse_what_does_not_fit_in_memory_before_reading(tmp_path_factory, tmp_path,
                                                                             capsys, monkeypatch):
    # audit 2026-11-29: the input file was read whole, then copied (float32, the raw float64 rows, the bytes
    # of the output) with no memory check: a file larger than memory was a MemoryError or the OOM killer
    import sparsecoder.util as util
    from sparsecoder.train import decode_run, encode_run

    run = fresh_run(tmp_path_factory, tmp_path / "run")
    rows = tmp_path / "rows.npy"
    np.save(rows, np.zeros((300, 784), np.float32))  # 0.9 MB read, 19 kB of codes
    monkeypatch.setattr(util, "physical_memory", lambda: 500_000)
    monkeypatch.setattr(np, "load", None)  # nothing may be read
    for command in ("encode", "decode"):
        assert main([command, str(run), str(rows), "--out", str(tmp_path / "out.npy")]) == 2
        err = _one_line_error(capsys)
        assert str(rows) in err and "more than this machine's" in err and "split the file" in err
    monkeypatch.undo()
    codes = np.zeros((300, 16), np.float32)
    monkeypatch.setattr(util, "physical_memory", lambda: 500_000)  # 300 decoded rows: 0.9 MB
    with pytest.raises(ValueError, match="the results for 300 codes need .* more than this machine's"):
        decode_run(run, codes)
    assert encode_run(run, np.zeros((3, 784), np.float32)).shape == (3, 16)


def test_encode_and_decode_work_block_by_block_as_the_model_does_at_once(tmp_path_factory, tmp_path,
                                                                         monkeypatch):
    import sparsecoder.data.arrays as arrays
    from sparsecoder.train import decode_run, encode_run, load_run

    run = fresh_run(tmp_path_factory, tmp_path / "run")
    x = np.random.default_rng(0).normal(size=(610, 784)).astype(np.float32)
    _, model, _ = load_run(run)
    expected = model.encode(torch.from_numpy(x)).numpy()
    with torch.no_grad():
        rows = model.decoder(torch.from_numpy(expected)).numpy()
    monkeypatch.setattr(arrays, "CHUNK_VALUES", 784)  # blocks of one batch (250 rows): 3 blocks
    np.testing.assert_array_equal(encode_run(run, x), expected)
    np.testing.assert_allclose(decode_run(run, expected), rows, rtol=1e-6, atol=1e-6)
    raw = decode_run(run, expected, output_space="raw")
    np.testing.assert_allclose(raw, (rows.astype(np.float64) * 0.3081 + 0.1307) * 255, rtol=1e-6, atol=1e-4)


def test_encode_scans_the_values_of_its_input_file_once(tmp_path_factory, tmp_path, capsys, monkeypatch):
    # audit 2026-11-29: the file's values were checked when read (NaN/inf, float32 range) and again by
    # encode_run (np.isfinite, then the float32 range): three passes over what may be gigabytes
    # (2026-11-29: rows given in memory, raw ones too, go through the same one check_values scan)
    import sparsecoder.data.arrays as arrays
    from sparsecoder.train.run import encode_run

    run = fresh_run(tmp_path_factory, tmp_path / "run")
    np.save(tmp_path / "rows.npy", np.zeros((4, 784)))
    scans = []
    check_values = arrays.check_values
    monkeypatch.setattr(arrays, "check_values",
                        lambda *a, **k: scans.append("check_values") or check_values(*a, **k))
    assert main(["encode", str(run), str(tmp_path / "rows.npy"), "--out", str(tmp_path / "c.npy")]) == 0
    assert scans == ["check_values"]
    encode_run(run, np.zeros((4, 784)), input_space="raw")
    assert scans == ["check_values"] * 2
