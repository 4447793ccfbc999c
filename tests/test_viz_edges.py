"""Edge cases of the pictures found by the viz bug hunt: each test writes real PNGs and reads back what
was drawn."""

from __future__ import annotations

import numpy as np

from sparsecoder.viz import atom_grid, image_grid, reconstruction_grid


def _canvas(figure) -> np.ndarray:
    return np.asarray(figure.axes[0].images[0].get_array())


def test_constant_images_are_drawn_by_their_value_not_all_black(tmp_path, kept_figures):
    """A constant image (a 1 × 1 atom, a DC atom, a white digit) was drawn black whatever its value: its own
    [min, max] range is empty. A positive constant is white, zero black."""
    # three 1 x 1 atoms: +2 and +0.5 (white), 0 (dead: flat grey, said in the title)
    atom_grid(np.array([[2.0, 0.5, 0.0]]), (1, 1), tmp_path / "a.png")
    canvas = _canvas(kept_figures[0])
    assert canvas[1, 1] == 1.0 and canvas[1, 3] == 1.0  # cells at columns 1, 3, 5 (1 pixel apart)
    # constant positive atoms of 4 x 5 (the DC atom of a patch dictionary): white, not black
    atom_grid(np.full((20, 2), 0.2236), (4, 5), tmp_path / "dc.png")
    assert np.all(_canvas(kept_figures[1])[1:5, 1:6] == 1.0)
    # white images (all 255) on their own range, and on the grid's common range
    for k, normalize in enumerate(("each", "all"), start=2):
        image_grid(np.full((2, 20), 255.0), (4, 5), tmp_path / f"w_{normalize}.png", normalize=normalize)
        assert np.all(_canvas(kept_figures[k])[1:5, 1:6] == 1.0), normalize
    image_grid(np.zeros((2, 20)), (4, 5), tmp_path / "z.png")  # zero images stay black
    assert np.all(_canvas(kept_figures[4])[1:5, 1:6] == 0.0)


def test_reconstructions_of_constant_inputs_are_drawn_on_a_range_holding_them(tmp_path, kept_figures):
    """Inputs all 1 (white) were drawn black, their reconstructions (0.5) white: the inputs' range was
    empty and replaced by [1, 2]."""
    reconstruction_grid(np.ones((2, 20)), np.full((2, 20), 0.5), (4, 5), tmp_path / "r.png")
    canvas = _canvas(kept_figures[0])
    assert np.all(canvas[1:5, 1:6] == 1.0)       # input: white
    assert np.allclose(canvas[6:10, 1:6], 0.5)   # reconstruction: half of it, mid-grey
