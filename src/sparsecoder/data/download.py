"""``sparsecoder data download mnist``: the four MNIST IDX files from standard mirrors, MD5-verified.

Nothing in the library downloads by itself; this runs only when a user asks for it.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from sparsecoder.io import atomic_write_bytes

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# The published MD5 digests of the four gzip files (the same as torchvision's).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


def md5_of(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _fetch(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http/https mirrors only)
        return response.read()


def download_mnist(directory: str | Path, base_urls: list[str] | tuple[str, ...] | None = None, *,
                   md5s: dict[str, str] | None = None, timeout: float = 60.0,
                   quiet: bool = True) -> list[Path]:
    """Download the four MNIST ``.gz`` IDX files into ``directory`` and verify their MD5 digests.

    Each file is tried on every mirror of ``base_urls`` in turn (default: :data:`MNIST_MIRRORS`) until
    one serves bytes with the expected digest (``md5s``, default :data:`MNIST_MD5`). A verified file is
    written atomically (temp file + rename), so a failed or corrupt download never leaves a file behind;
    files already present with the right digest are kept. Returns the four paths.

    Raises
    ------
    ValueError
        When no mirror serves a file with the expected MD5 (every mirror's failure is listed).
    """
    base_urls = list(base_urls or MNIST_MIRRORS)
    md5s = dict(md5s or MNIST_MD5)
    for url in base_urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"mirror {url!r} is not an http(s) URL")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, expected in md5s.items():
        target = directory / name
        paths.append(target)
        if target.is_file() and md5_of(target.read_bytes()) == expected:
            if not quiet:
                print(f"{target}: present, MD5 verified")
            continue
        failures = []
        for base in base_urls:
            url = base.rstrip("/") + "/" + name
            try:
                data = _fetch(url, timeout)
            except (urllib.error.URLError, OSError, ValueError) as err:
                failures.append(f"{url}: {err}")
                continue
            digest = md5_of(data)
            if digest != expected:
                failures.append(f"{url}: MD5 {digest} != expected {expected} (corrupt or wrong file)")
                continue
            atomic_write_bytes(target, data)
            if not quiet:
                print(f"{target}: downloaded from {url}, MD5 verified")
            break
        else:
            stale = f" (the existing {target} has a wrong MD5; left as it was)" if target.exists() else ""
            raise ValueError(f"could not download a verified {name}; nothing written for it{stale}:\n  "
                             + "\n  ".join(failures))
    return paths
