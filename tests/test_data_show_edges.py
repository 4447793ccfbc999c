"""`sparsecoder data show` on long plain vectors (found by the viz bug hunt)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from sparsecoder.cli import main


def test_data_show_draws_long_vectors_one_under_another(tmp_path, capsys):
    """64 vectors of 5,000 values were laid out 8 to a row, a grid 40,009 pixels wide: refused ("draw fewer
    images, or fewer columns"), with no option to choose the columns. Long vectors go one under another."""
    np.save(tmp_path / "v.npy", np.random.default_rng(0).normal(size=(100, 5000)).astype(np.float32))
    out = tmp_path / "v.png"
    assert main(["data", "show", "arrays", "--data-dir", str(tmp_path / "v.npy"), "--out", str(out)]) == 0, \
        capsys.readouterr().err
    with Image.open(out) as image:
        width, height = image.size
    assert 5000 <= width < 12000 and height > 64 * 12  # one column (2 pixels a value) of 64 strips
    # short vectors keep the square-ish layout: 64 vectors of 7 values in 8 columns
    np.save(tmp_path / "s.npy", np.random.default_rng(0).normal(size=(100, 7)))
    assert main(["data", "show", "arrays", "--data-dir", str(tmp_path / "s.npy"), "--out",
                 str(tmp_path / "s.png")]) == 0
