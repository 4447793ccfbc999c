"""Issue 11, class 3: edited run folders (SHA-256 of weights/checkpoint files, config digest on resume)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from sparsecoder.cli import main
from sparsecoder.train import load_run, load_test_split
from sparsecoder.train.integrity import DigestMismatch, config_digest, verify_digest, write_digested
from tests.safety_helpers import fresh_run

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _flip_tensor_byte(path: Path) -> None:
    """Flip one byte inside the tensor data of a .safetensors file (8-byte header length, JSON, data)."""
    raw = bytearray(path.read_bytes())
    (header_length,) = struct.unpack("<Q", raw[:8])
    raw[8 + header_length + 100] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_digests_are_the_sha256_of_the_files_and_the_config(tmp_path_factory, tmp_path):
    import torch

    run = fresh_run(tmp_path_factory, tmp_path / "run")
    digests = json.loads((run / "digests.json").read_text())
    for name in ("model.safetensors", "checkpoint.pt"):
        assert digests[name] == [hashlib.sha256((run / name).read_bytes()).hexdigest()]
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    canonical = json.dumps(state["config"], sort_keys=True).encode()
    assert state["config_digest"] == config_digest(state["config"]) == hashlib.sha256(canonical).hexdigest()


def test_flipped_bytes_in_the_weights_are_refused_by_load_evaluate_and_encode(tmp_path_factory, tmp_path,
                                                                              capsys):
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    config, model, data = load_run(run)
    np.save(tmp_path / "rows.npy", load_test_split(config).test.x[:3].numpy())
    metrics_before = (run / "metrics.json").read_bytes()
    _flip_tensor_byte(run / "model.safetensors")
    from safetensors.torch import load_file

    assert load_file(str(run / "model.safetensors"))  # still parses: only the digest can tell
    with pytest.raises(DigestMismatch, match="model.safetensors"):
        load_run(run)
    assert main(["evaluate", str(run)]) != 0
    assert str(run / "model.safetensors") in _one_line_error(capsys)
    assert (run / "metrics.json").read_bytes() == metrics_before
    codes = tmp_path / "codes.npy"
    assert main(["encode", str(run), str(tmp_path / "rows.npy"), "--out", str(codes)]) != 0
    assert str(run / "model.safetensors") in _one_line_error(capsys) and not codes.exists()


def test_a_damaged_checkpoint_is_refused_on_resume(tmp_path_factory, tmp_path, capsys):
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    raw = bytearray((run / "checkpoint.pt").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (run / "checkpoint.pt").write_bytes(bytes(raw))
    history = (run / "history.csv").read_bytes()
    assert main(["train", "sdl-mnist", "--out", str(run), "--quiet", "--resume", "--set", "epochs=2"]) != 0
    assert str(run / "checkpoint.pt") in _one_line_error(capsys)
    assert (run / "history.csv").read_bytes() == history


def test_an_edited_config_yaml_is_refused_on_resume_naming_each_key(tmp_path_factory, tmp_path, capsys):
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    document = yaml.safe_load((run / "config.yaml").read_text())
    trained_lam, trained_gamma = document["config"]["lam"], document["config"]["gamma"]
    document["config"].update(lam=0.5, gamma=2.5)
    (run / "config.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    assert main(["train", "sdl-mnist", "--out", str(run), "--quiet", "--resume", "--set", "epochs=2"]) != 0
    err = _one_line_error(capsys)
    assert f"lam: trained with {trained_lam!r}, config.yaml now says 0.5" in err
    assert f"gamma: trained with {trained_gamma!r}, config.yaml now says 2.5" in err
    assert "fista_step" not in err  # unchanged keys are not named
    # restored, the run resumes (epochs may change through --set)
    document["config"].update(lam=trained_lam, gamma=trained_gamma)
    (run / "config.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    assert main(["train", "sdl-mnist", "--out", str(run), "--quiet", "--resume", "--set", "epochs=2"]) == 0
    capsys.readouterr()
    verify_digest(run / "checkpoint.pt")
    verify_digest(run / "model.safetensors")


WRITER = (
    "import sys\n"
    "from pathlib import Path\n"
    "from sparsecoder.train.integrity import write_digested\n"
    "path = Path(sys.argv[1])\n"
    "print('go', flush=True)\n"
    "k = 0\n"
    "while True:\n"
    "    write_digested(path, bytes([k % 251]) * (1 << 16))\n"
    "    k += 1\n"
)


def test_a_reader_meeting_a_writer_does_not_call_the_file_damaged(tmp_path):
    """encode/decode take no lock: their check used to read digests.json before a writer accepted the new
    digest and hash the file after it was replaced, calling a sound file "damaged" (21 of 15,404 checks)."""
    path = tmp_path / "model.safetensors"
    write_digested(path, bytes(1 << 16))
    stop = threading.Event()

    def writer() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            write_digested(path, bytes([k % 251]) * (1 << 16))

    thread = threading.Thread(target=writer)
    thread.start()
    checks, damaged, end = 0, [], time.monotonic() + 1.0
    try:
        while time.monotonic() < end:
            checks += 1
            try:
                verify_digest(path)
            except DigestMismatch as err:
                damaged.append(str(err))
    finally:
        stop.set()
        thread.join()
    assert checks > 100 and damaged == [], (checks, damaged[:1])


@pytest.mark.parametrize("delay", [0.15, 0.4])
def test_a_kill_during_a_digested_write_leaves_a_file_that_verifies(tmp_path, delay):
    path = tmp_path / "checkpoint.pt"
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": SRC})
    assert process.stdout.readline().strip() == "go"
    time.sleep(delay)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    if path.exists():  # killed after the first complete write
        verify_digest(path)
        path.write_bytes(b"\x00" + path.read_bytes()[1:] + b"!")
        with pytest.raises(DigestMismatch, match=str(path)):
            verify_digest(path)


def test_an_edited_preprocessing_json_is_refused_by_every_reader(tmp_path_factory, tmp_path, capsys):
    """preprocessing.json maps raw rows to model rows: an edited std would silently change every code."""
    from sparsecoder.data.mnist import read_embedded_mnist
    from sparsecoder.train import decode_run, encode_run

    run = fresh_run(tmp_path_factory, tmp_path / "run")
    path = run / "preprocessing.json"
    original = path.read_bytes()
    assert json.loads((run / "digests.json").read_text())["preprocessing.json"] == [
        hashlib.sha256(original).hexdigest()]
    pixels = read_embedded_mnist()[0][:5]
    np.save(tmp_path / "pixels.npy", pixels)
    codes = encode_run(run, pixels, input_space="raw")
    np.save(tmp_path / "codes.npy", codes)
    metrics = (run / "metrics.json").read_bytes()

    spec = json.loads(original)
    spec["preprocessing"]["std"] = 0.6  # still a valid preprocessing: only the digest can tell
    path.write_text(json.dumps(spec, indent=2) + "\n")
    for call in (lambda: load_run(run), lambda: encode_run(run, pixels, input_space="raw"),
                 lambda: decode_run(run, codes, output_space="raw")):
        with pytest.raises(DigestMismatch, match=r"preprocessing.json is damaged or was replaced"):
            call()
    for argv in (["evaluate", str(run)],
                 ["encode", str(run), str(tmp_path / "pixels.npy"), "--input", "raw", "--out",
                  str(tmp_path / "c.npy")],
                 ["decode", str(run), str(tmp_path / "codes.npy"), "--output", "raw", "--out",
                  str(tmp_path / "r.npy")],
                 ["train", "sdl-mnist", "--out", str(run), "--quiet", "--resume", "--set", "epochs=2"]):
        assert main(argv) == 2
        assert f"{path} is damaged or was replaced" in _one_line_error(capsys)
    assert (run / "metrics.json").read_bytes() == metrics and not (tmp_path / "c.npy").exists()
    assert load_checkpoint_epoch(run) == 1  # the refused resume trained nothing

    path.write_bytes(original)  # restored, everything works again with the same codes
    np.testing.assert_array_equal(encode_run(run, pixels, input_space="raw"), codes)


def load_checkpoint_epoch(run: Path) -> int:
    from sparsecoder.train.checkpoint import load_checkpoint

    return int(load_checkpoint(run / "checkpoint.pt")["epoch"])


@pytest.mark.parametrize("edit, message", [
    ({"n_features": -5}, r"n_features must be a positive integer .*got -5"),
    ({"n_features": "784"}, r"n_features must be a positive integer .*got '784'"),
    ({"image_shape": [28, 27]}, r"image_shape \[28, 27\] holds 756 values but n_features is 784"),
    ({"image_shape": [28, -28]}, r"image_shape must be null or a list of positive integers"),
    ({"preprocessing": {"name": "standardize", "mean": 0.1, "std": 0.0}}, r"std must be positive"),
    ({"preprocessing": {"name": "standardize", "mean": float("nan"), "std": 1.0}}, r"mean finite"),
    ({"preprocessing": {"name": "standardize", "mean": [0.0, 1.0], "std": 1.0}},
     r"784 features but the per-feature mean has 2"),
    ({"preprocessing": {"name": "whiten"}}, r"unknown preprocessing 'whiten'"),
])
def test_preprocessing_json_values_are_checked_even_without_a_digest(tmp_path_factory, tmp_path, edit,
                                                                     message):
    """A run folder from before preprocessing.json was digested loads unverified, but its values are
    still validated: a clear error naming the file, never a RuntimeError from inside torch."""
    run = fresh_run(tmp_path_factory, tmp_path / "run")
    digests = json.loads((run / "digests.json").read_text())
    digests.pop("preprocessing.json", None)  # as an older sparsecoder wrote it
    (run / "digests.json").write_text(json.dumps(digests))
    assert load_run(run)[2].dim == 784  # the unedited file loads
    path = run / "preprocessing.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    with pytest.raises(ValueError, match=message) as err:
        load_run(run)
    assert str(err.value).startswith(f"{path}: ") and "sparsecoder evaluate" in str(err.value)
