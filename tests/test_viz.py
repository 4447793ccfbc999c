"""PNG pictures: each function writes a readable PNG whose pixels show what was asked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sparsecoder.train.logging import write_history
from sparsecoder.viz import (
    _mosaic,
    atom_grid,
    history_plot,
    image_grid,
    latent_grid,
    latent_scatter,
    read_history,
    reconstruction_grid,
)


def pixels(path):
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


def test_mosaic_places_images_row_major_with_white_padding():
    images = np.stack([np.full((2, 3), k / 10) for k in range(5)])
    canvas = _mosaic(images, ncols=3)
    assert canvas.shape == (2 * 3 + 1, 3 * 4 + 1)
    assert canvas[1:3, 1:4].tolist() == [[0.0] * 3] * 2          # image 0 top left
    assert np.all(canvas[1:3, 9:12] == 0.2)                       # image 2 top right
    assert np.all(canvas[4:6, 5:8] == 0.4)                        # image 4 second row, middle
    assert np.all(canvas[4:6, 9:12] == 1.0)                       # empty cell stays white
    assert np.all(canvas[0] == 1.0) and np.all(canvas[:, 4] == 1.0)


def test_image_grid_shows_black_and_white_images(tmp_path):
    black, white = np.zeros(64), np.ones(64)
    path = image_grid(np.stack([black, white]), (8, 8), tmp_path / "grid.png", normalize="none",
                      title="two")
    image = pixels(path)
    assert image.min() < 10 and image.max() > 245
    # the black image is left of the white one: the darkest column is left of the middle
    dark_columns = np.where((image < 10).sum(axis=0) > 5)[0]
    assert dark_columns.max() < image.shape[1] / 2 + 5


@pytest.mark.parametrize("title", ["whitened_patches (test, first 5 of 20, normalised each)",
                                   "a long title of words " * 12])
def test_a_title_wider_than_a_small_grid_is_not_clipped(tmp_path, title):
    """Five 4×4 images make a grid narrower than its title: the figure widens (and wraps a very long title)
    so that the title's ink stays off the picture's left and right edges."""
    path = image_grid(np.random.default_rng(0).random((5, 16)), (4, 4), tmp_path / "grid.png", title=title)
    image = pixels(path)
    ink = image < 128
    assert ink[: image.shape[0] // 3].any()                     # the title is drawn
    assert not ink[:, :3].any() and not ink[:, -3:].any()       # and nothing touches the sides
    assert image.shape[1] < 1000  # a long title wraps instead of widening forever


def test_atom_grid_order_and_signs(tmp_path):
    d = 16
    columns = torch.zeros(d, 3)
    columns[:, 0] = torch.linspace(0, 1, d)  # non-negative atom: its own [min, max], black to white
    columns[:8, 1] = -1.0    # half negative: symmetric range, so −1 is black and 0 is mid-grey
    columns[:, 2] = torch.linspace(-1, 1, d)
    path = atom_grid(columns, (4, 4), tmp_path / "atoms.png", order=[1])
    inside = pixels(path)
    inside = inside[inside < 250]  # drop the white padding
    assert np.mean(inside < 10) == pytest.approx(0.5, abs=0.1)
    assert np.mean(np.abs(inside - 128) < 10) == pytest.approx(0.5, abs=0.1)
    assert atom_grid(columns, (4, 4), tmp_path / "all.png").is_file()
    with pytest.raises(ValueError, match="outside"):
        atom_grid(columns, (4, 4), tmp_path / "bad.png", order=[3])
    with pytest.raises(ValueError, match=r"\(n, 16\) rows"):
        atom_grid(torch.zeros(15, 2), (4, 4), tmp_path / "bad.png")


def test_reconstruction_grid_inputs_over_reconstructions(tmp_path):
    inputs = np.ones((3, 64))
    recons = np.zeros((3, 64))
    recons[:, 0] = 1.0  # same range as the inputs
    image = pixels(reconstruction_grid(inputs, recons, (8, 8), tmp_path / "rec.png"))
    rows_white = (image > 245).mean(axis=1)
    rows_black = (image < 10).mean(axis=1)
    top_of_white = np.argmax(rows_white > 0.3)
    top_of_black = np.argmax(rows_black > 0.3)
    assert top_of_white < top_of_black  # inputs (white) above reconstructions (black)
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_grid(inputs, recons[:2], (8, 8), tmp_path / "bad.png")


def test_latent_scatter_and_grid(tmp_path):
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(50, 2))
    labels = np.arange(50) % 10
    assert Image.open(latent_scatter(codes, labels, tmp_path / "scatter.png")).size[0] > 100
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        latent_scatter(rng.normal(size=(5, 3)), None, tmp_path / "bad.png")
    # labels are class indices: NaN or 2.5 were drawn as colours, a short list failed after the figure
    for bad, message in ((np.r_[labels[:-1], np.nan], "1 labels are NaN or inf"),
                         (np.r_[labels[:-1], 2.5], r"1 labels are not integers \(e.g. 2.5\)"),
                         (labels[:-1], r"\(shape \(50,\)\), got shape \(49,\)")):
        with pytest.raises(ValueError, match=message):
            latent_scatter(codes, bad, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()

    seen = []

    def decode(z):
        seen.append(z.clone())
        return z[:, :1].repeat(1, 16)  # brightness = z_1

    latent_grid(decode, (4, 4), tmp_path / "grid.png", n=3, span=2.0)
    latents = seen[0]
    # row-major cells: z_1 increases left to right, z_2 decreases top to bottom
    assert latents.tolist() == [[-2, 2], [0, 2], [2, 2], [-2, 0], [0, 0], [2, 0], [-2, -2], [0, -2], [2, -2]]
    image = pixels(tmp_path / "grid.png")
    middle_row = image[image.shape[0] // 2]
    cells = middle_row[middle_row < 250]
    # black on the left (z_1 = -2), mid-grey in the centre (z_1 = 0); the right column is white
    assert cells[0] < 10 and abs(middle_row[len(middle_row) // 2] - 128) < 10


def test_history_plot_from_history_csv(tmp_path):
    rows = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.2 / e, "lr_model": 1e-3 / 2 ** (e // 2),
             "seconds": 0.1} for e in range(1, 6)]
    write_history(tmp_path / "history.csv", rows)
    columns = read_history(tmp_path / "history.csv")
    np.testing.assert_allclose(columns["loss"], [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    path = history_plot(tmp_path / "history.csv", tmp_path / "history.png")
    assert Image.open(path).format == "PNG"
    with pytest.raises(FileNotFoundError):
        history_plot(tmp_path / "missing.csv", tmp_path / "x.png")


def test_image_grid_draws_colour_images(tmp_path):
    red = np.zeros((6, 6, 3))
    red[..., 0] = 1.0
    image = np.asarray(Image.open(image_grid(red.reshape(1, -1), (6, 6, 3), tmp_path / "rgb.png",
                                             normalize="none")).convert("RGB"), dtype=np.float64)
    reddish = (image[..., 0] > 240) & (image[..., 1] < 15) & (image[..., 2] < 15)
    assert reddish.mean() > 0.1  # a red square (the figure has white margins)
