"""MNIST download against an HTTP server the test starts on 127.0.0.1 (nothing leaves the machine)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading

import pytest

from sparsecoder.cli import main
from sparsecoder.data import download_mnist, load
from sparsecoder.data.download import MNIST_MD5
from tests.data.helpers import write_mnist_dir


@pytest.fixture
def served(tmp_path):
    """Serve tmp_path/www over HTTP on 127.0.0.1 (port 0) in a thread; yields (root folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _md5s(folder):
    return {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in MNIST_MD5}


def test_download_verifies_and_loads(served, tmp_path):
    root, url = served
    write_mnist_dir(root / "mnist", n_train=60, n_test=12)
    target = tmp_path / "data"
    paths = download_mnist(target, [f"{url}/mnist/"], md5s=_md5s(root / "mnist"))
    assert sorted(p.name for p in paths) == sorted(MNIST_MD5)
    for name in MNIST_MD5:
        assert (target / name).read_bytes() == (root / "mnist" / name).read_bytes()
    data = load("mnist", data_dir=str(target))
    assert (len(data.train), len(data.val), len(data.test)) == (55, 5, 12)
    assert sorted(p.name for p in target.iterdir()) == sorted(MNIST_MD5)  # no temp files left


def test_falls_back_to_the_next_mirror(served, tmp_path):
    root, url = served
    write_mnist_dir(root / "good", n_train=12, n_test=12)
    md5s = _md5s(root / "good")
    download_mnist(tmp_path / "data", [f"{url}/missing/", f"{url}/good"], md5s=md5s)
    assert _md5s(tmp_path / "data") == md5s
    # verified files already present are kept: no mirror is needed a second time
    download_mnist(tmp_path / "data", [f"{url}/missing/"], md5s=md5s)
    assert _md5s(tmp_path / "data") == md5s


def test_corrupt_download_is_rejected_and_not_left_behind(served, tmp_path):
    root, url = served
    write_mnist_dir(root / "mnist", n_train=12, n_test=12)
    md5s = _md5s(root / "mnist")
    # the server's copy of one file is corrupted after its digest was published
    bad = root / "mnist" / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(bad.read_bytes()))
    raw[-1] ^= 0xFF
    bad.write_bytes(gzip.compress(bytes(raw)))
    target = tmp_path / "data"
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz.*\n.*MD5"):
        download_mnist(target, [f"{url}/mnist/"], md5s=md5s)
    assert not (target / "t10k-images-idx3-ubyte.gz").exists()
    assert not [p for p in target.iterdir() if p.name.startswith(".")]  # no temp file either


def test_cli_download_with_the_published_digests_rejects_test_files(served, tmp_path, capsys):
    root, url = served
    write_mnist_dir(root / "mnist", n_train=12, n_test=12)
    target = tmp_path / "data"
    code = main(["data", "download", "mnist", "--dir", str(target), "--mirror", f"{url}/mnist/"])
    assert code == 2
    assert "MD5" in capsys.readouterr().err
    assert list(target.iterdir()) == []


def test_bad_mirror_url(tmp_path):
    with pytest.raises(ValueError, match="not an http"):
        download_mnist(tmp_path, ["ftp://example.org/"])
