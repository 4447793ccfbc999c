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
    for bad, message in ((np.r_[labels[:-1], np.nan], "1 of the labels is NaN or inf"),
                         (np.r_[labels[:-1], 2.5], r"1 of the labels is not an integer \(e.g. 2.5\)"),
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


def rgb(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


def red_fraction(image):
    return float(((image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60)).mean())


def test_nan_and_inf_pixels_are_painted_red_not_drawn_as_a_value(tmp_path):
    """A NaN/inf image was drawn as 0 (black, or white for a reconstruction: like an empty cell)."""
    images = np.random.default_rng(0).random((4, 16))
    assert red_fraction(rgb(image_grid(images, (4, 4), tmp_path / "ok.png"))) == 0.0
    images[1] = np.inf
    images[2, 3] = np.nan
    for normalize in ("each", "all", "none"):
        assert red_fraction(rgb(image_grid(images, (4, 4), tmp_path / "bad.png", normalize=normalize))) > 0.05
    recons = np.full((3, 16), np.nan)
    image = rgb(reconstruction_grid(images[[0, 3, 0]], recons, (4, 4), tmp_path / "rec.png"))
    assert red_fraction(image) > 0.05
    decoded = latent_grid(lambda z: torch.full((len(z), 16), float("nan")), (4, 4), tmp_path / "g.png", n=2)
    assert red_fraction(rgb(decoded)) > 0.05


def test_grids_too_large_to_draw_are_refused_before_any_work(tmp_path):
    """A 400 × 400 latent grid made a 24,000-pixel-wide figure and ran the machine out of memory."""
    calls = []

    def decode(z):
        calls.append(len(z))
        return torch.zeros(len(z), 16)

    with pytest.raises(ValueError, match=r"more than 36 million .*; lower n \(at most 1199\)"):
        latent_grid(decode, (4, 4), tmp_path / "g.png", n=2000)
    assert calls == []
    with pytest.raises(ValueError, match="32,768 a side.*draw fewer images"):
        image_grid(np.zeros((2, 16)), (4, 4), tmp_path / "wide.png", ncols=7000)
    with pytest.raises(ValueError, match="32,768 a side"):
        reconstruction_grid(np.zeros((140_000, 1)), np.zeros((140_000, 1)), (1, 1), tmp_path / "r.png")
    assert not list(tmp_path.iterdir())
    # a long strip of wide vectors is drawn, one screen pixel per value (`data show` of 5,000 features)
    assert Image.open(image_grid(np.zeros((2, 5000)), (1, 5000), tmp_path / "strip.png")).size[0] > 10_000


@pytest.mark.parametrize("call, message", [
    (lambda p: image_grid(np.zeros((2, 16)), (4.5, 4), p), "integers >= 1"),
    (lambda p: image_grid(np.zeros((2, 16)), (-4, -4), p), "integers >= 1"),
    (lambda p: image_grid(np.zeros((2, 80)), (4, 4, 5), p), "5 channels"),
    (lambda p: image_grid(np.zeros((2, 16)), (4, 4), p, ncols=2.5), "ncols must be an integer"),
    (lambda p: image_grid(np.zeros((2, 16)), (4, 4), p, ncols=0), "ncols must be an integer"),
    (lambda p: image_grid(np.zeros((2, 16), complex), (4, 4), p), "images is a complex array"),
    (lambda p: image_grid([["a"] * 16], (4, 4), p), "images must be an array of real numbers"),
    (lambda p: atom_grid(np.zeros((16, 3)), (4, 4), p, order=[True, False, True]), "boolean mask"),
    (lambda p: atom_grid(np.zeros((16, 3)), (4, 4), p, order=[0.7]), "integer atom indices"),
    (lambda p: latent_grid(lambda z: z, (4, 4), p, n=2.5), "integer >= 1"),
    (lambda p: latent_grid(lambda z: z, (4, 4), p, span=float("inf")), "finite number > 0"),
    (lambda p: latent_grid(lambda z: torch.zeros(1, 16), (4, 4), p, n=3), "returned 1 images for the 9"),
    (lambda p: latent_scatter(np.zeros((0, 2)), None, p), "empty"),
    (lambda p: latent_scatter(np.full((3, 2), np.nan), None, p), "all 3 codes are NaN/inf"),
])
def test_bad_picture_arguments_are_refused_by_name(tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_scatter_with_some_non_finite_codes_draws_the_others(tmp_path):
    codes = np.array([[0.0, 0.0], [np.nan, 1.0], [1.0, 1.0]])
    assert latent_scatter(codes, [0, 1, 2], tmp_path / "s.png").is_file()


def test_reconstruction_grid_bound_counts_its_padded_rows(tmp_path, monkeypatch):
    """17 pairs are 4 rows of 16 cells (the last two padded), not the 3 rows of 34 images: the caller's
    check passed and only _draw_grid's second check, under another name, refused the grid."""
    import sparsecoder.viz as viz

    monkeypatch.setattr(viz, "MAX_GRID_PIXELS", 1500)  # 81 × 16 pixels for 3 rows of 4×4 cells, 81 × 21 for 4
    inputs = np.random.default_rng(0).random((17, 16))
    with pytest.raises(ValueError, match=r"^inputs and recons: a grid of 64 images of 4×4 pixels in 16 "
                                         r"columns would be 81 × 21 pixels"):
        reconstruction_grid(inputs, inputs, (4, 4), tmp_path / "rec.png")
    assert not (tmp_path / "rec.png").exists()


def test_row_labels_of_a_narrow_reconstruction_grid_are_not_cut(tmp_path):
    image = pixels(reconstruction_grid(np.random.default_rng(0).random((3, 16)), np.zeros((3, 16)), (4, 4),
                                       tmp_path / "rec.png"))
    assert not (image[:, :3] < 128).any()  # 'recon.' used to start off the left edge


@pytest.mark.parametrize("content, message", [
    ("epoch,loss\n1,abc\n", r"line 2, column 'loss': 'abc' is not a number"),
    ("loss,val_loss\n0.5,0.6\n", "no 'epoch' column"),
    ("epoch,loss\n1,0.5,9\n", "line 2: 3 cells but the header names 2"),
    ("epoch,loss,loss\n1,0.5,0.7\n", "'loss' appears more than once"),
    ("epoch,loss\n,0.5\n", "line 2: the epoch is empty"),
    ("epoch,seconds\n1,0.1\n", "no column to plot"),
    ("epoch,loss\n", "no epochs"),
])
def test_malformed_history_is_refused_naming_the_place(tmp_path, content, message):
    (tmp_path / "history.csv").write_text(content)
    with pytest.raises(ValueError, match=message):
        history_plot(tmp_path / "history.csv", tmp_path / "h.png")
    assert not (tmp_path / "h.png").exists()


def test_history_of_one_epoch_has_whole_epoch_ticks(tmp_path, monkeypatch, kept_figures):
    """With one epoch the axis spanned 0.945–1.05 and its ticks read as fractional epochs."""
    figures = kept_figures
    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n1,0.5,0.6\n")
    history_plot(tmp_path / "history.csv", tmp_path / "h.png")
    ticks = figures[0].axes[0].get_xticks()
    lo, hi = figures[0].axes[0].get_xlim()
    shown = ticks[(ticks >= lo) & (ticks <= hi)]
    assert len(shown) >= 2 and np.all(shown == np.round(shown))


def test_model_pictures_draw_the_first_atoms_that_fit_not_fail():
    """sae_pictures / vae_pictures draw every atom: a model of very many atoms would now be refused by the
    grid bound after training; they keep the first atoms of their order that fit, and say so."""
    from sparsecoder.viz import _check_grid, _fitting

    order = torch.arange(10_000)
    kept, note = _fitting(order, (60, 60))
    side = (6000 - 1) // 61
    assert kept.tolist() == list(range(side * side)) and note == f" (the first {side * side:,} of 10,000)"
    _check_grid(len(kept), int(np.ceil(np.sqrt(len(kept)))), 60, 60, "atoms")  # fits the default layout
    with pytest.raises(ValueError, match=r"atoms: a grid of .* more than .* million"):
        _check_grid(len(kept) + side, int(np.ceil(np.sqrt(len(kept) + side))), 60, 60, "atoms")
    kept, note = _fitting(order[:50], (28, 28))
    assert len(kept) == 50 and note == ""


@pytest.mark.parametrize("n_classes", [10, 14, 25])
def test_latent_scatter_gives_every_class_its_own_colour(tmp_path, monkeypatch, n_classes, kept_figures):
    """tab10 stretched over 14 classes drew classes 1 and 2 (3 and 4, …) in the same colour."""
    figures = kept_figures
    labels = np.arange(n_classes)
    latent_scatter(np.c_[labels, labels].astype(float), labels, tmp_path / "s.png")
    colours = figures[0].axes[0].collections[0].get_facecolors()[:, :3]
    assert len({tuple(np.round(c, 3)) for c in colours}) == n_classes


def test_history_plot_of_very_many_columns_is_bounded(tmp_path, monkeypatch, kept_figures):
    """One panel per column: 5,000 columns made a figure 300,000 pixels tall. (The bound is lowered here
    to keep the test fast; the drawing is the same.)"""
    from sparsecoder import viz

    monkeypatch.setattr(viz, "MAX_HISTORY_PANELS", 3)
    figures = kept_figures
    names = [f"c{i}" for i in range(10)]
    (tmp_path / "history.csv").write_text("epoch," + ",".join(names) + "\n1," + ",".join(["0.5"] * 10) + "\n")
    history_plot(tmp_path / "history.csv", tmp_path / "h.png")
    drawn = [ax.get_title() for ax in figures[0].axes if ax.axison]
    assert drawn == ["c0", "c1", "c2"]
    assert "the first 3 of 10 panels" in figures[0]._suptitle.get_text()


def test_clipped_values_are_announced_in_the_title(tmp_path, monkeypatch, kept_figures):
    """normalize='none' clipped an image of 0…3 to look like one of 0…1, without a word."""
    figures = kept_figures
    images = np.random.default_rng(0).random((3, 4, 4, 3))
    images[1] *= 3
    image_grid(images, (4, 4, 3), tmp_path / "c.png", normalize="none", title="colour")
    image_grid(images[[0, 2]], (4, 4, 3), tmp_path / "ok.png", normalize="none", title="colour")
    assert figures[0].axes[0].get_title() == "colour — 1 of 3 images has values outside [0, 1], clipped"
    assert figures[1].axes[0].get_title() == "colour"
    images[2] *= 3
    image_grid(images, (4, 4, 3), tmp_path / "c.png", normalize="none")
    assert figures[2].axes[0].get_title() == "2 of 3 images have values outside [0, 1], clipped"


def test_points_left_out_of_a_scatter_are_counted_in_agreement(tmp_path, monkeypatch, kept_figures):
    figures = kept_figures
    codes = np.arange(8.0).reshape(4, 2)
    codes[0, 0] = np.nan
    latent_scatter(codes, None, tmp_path / "s.png")
    codes[1, 1] = np.inf
    latent_scatter(codes, None, tmp_path / "s.png")
    assert [fig.axes[0].get_title() for fig in figures] == ["1 of 4 points is NaN/inf, not drawn",
                                                           "2 of 4 points are NaN/inf, not drawn"]


@pytest.mark.parametrize("decoder", ["linear", "pyle"])
def test_vae_atoms_title_names_the_atoms_and_both_active_counts(tmp_path, monkeypatch, decoder, kept_figures):
    """atoms.png said "decoder columns" for Pyle's decoder (its atoms are D(e_i) − D(0)) and gave only the std
    count ("0 of 450 active" for SVAE-Norm, whose metrics.json says 371 by the max criterion)."""
    from sparsecoder.config import from_dict
    from sparsecoder.data import load
    from sparsecoder.models.vae import VAE, VAEConfig
    from sparsecoder.viz import vae_pictures

    data = load("synthetic_pyle", seed=0, n_train=20, n_val=10, n_test=10)
    config = from_dict(VAEConfig, {"data": "synthetic_pyle", "n_latents": 3, "decoder": decoder,
                                   "encoder_hidden": 4, "decoder_hidden": 4, "device": "cpu"})
    model = VAE.from_config(config, data)
    with torch.no_grad():  # every posterior mean is (0, 0.6, -0.6): no spread, two latents beyond 0.5
        model.encoder.loc_head.weight.zero_()
        model.encoder.loc_head.bias.copy_(torch.tensor([0.0, 0.6, -0.6]))
    figures = kept_figures
    vae_pictures(model, data, tmp_path)
    title = " ".join(figures[0].axes[0].get_title().split())  # the title is wrapped to the figure's width
    kind = "decoder columns" if decoder == "linear" else "atoms D(e_i) - D(0)"
    assert title.startswith(kind)
    assert "0 of 3 active (std > 0.5), 2 by max |mean| > 0.5" in title and "first" not in title
    # a test split of 2,400 rows, of which the picture summarises the first 2,000 (metrics.json: all)
    monkeypatch.setattr(data, "test", data.train)
    data.test.x = data.test.x.repeat(120, 1)
    vae_pictures(model, data, tmp_path)
    assert "on the first 2,000 of 2,400 test rows" in " ".join(figures[3].axes[0].get_title().split())


def test_vae_latent_grid_covers_each_latents_own_range(tmp_path, monkeypatch):
    """latent_grid.png of a 2-latent run spanned one range for both axes (the 95% quantile of |codes| over
    both): a latent with a narrow spread (Cauchy on MNIST: z2 within ±0.5, z1 within ±4) was drawn mostly
    outside its data. Now each axis covers its own central 95%, as pyle-priors' figure already did."""
    from sparsecoder.config import from_dict
    from sparsecoder.data import load
    from sparsecoder.models.vae import VAE, VAEConfig
    from sparsecoder.viz import vae_pictures

    data = load("synthetic_pyle", seed=0, n_train=20, n_val=10, n_test=200)
    config = from_dict(VAEConfig, {"data": "synthetic_pyle", "n_latents": 2, "encoder_hidden": 4,
                                   "device": "cpu"})
    model = VAE.from_config(config, data)
    with torch.no_grad():  # z1 spread widely, z2 100× narrower
        model.encoder.loc_head.weight[0].mul_(40)
        model.encoder.loc_head.weight[1].mul_(0.4)
    codes = model.encode(data.test.x)
    decoded, decode = [], model.decode
    monkeypatch.setattr(model, "decode", lambda z: decoded.append(z.clone()) or decode(z))
    vae_pictures(model, data, tmp_path)
    grid = next(z for z in decoded if len(z) == 15 * 15)
    for axis in (0, 1):
        low, high = codes[:, axis].quantile(0.025), codes[:, axis].quantile(0.975)
        assert float(grid[:, axis].min()) == pytest.approx(float(low), rel=1e-4, abs=1e-6)
        assert float(grid[:, axis].max()) == pytest.approx(float(high), rel=1e-4, abs=1e-6)




def test_atom_grid_draws_dead_atoms_flat_grey_and_says_so(tmp_path, kept_figures):
    """Each atom on its own range drew an atom of norm 1e-9 (decayed, dead) with the full contrast of a live
    one, and a zero atom black: neither could be told from the others."""
    figures = kept_figures
    atoms = np.random.default_rng(0).normal(size=(64, 4))
    atoms[:, 1] *= 1e-9
    atoms[:, 3] = 0.0
    atom_grid(atoms, (8, 8), tmp_path / "atoms.png")
    canvas = np.asarray(figures[0].axes[0].images[0].get_array())  # 2 × 2 cells of 8 × 8, 1 pixel apart
    cells = [canvas[1 + 9 * r:9 + 9 * r, 1 + 9 * c:9 + 9 * c] for r in (0, 1) for c in (0, 1)]
    assert cells[0].std() > 0.1 and cells[2].std() > 0.1              # live atoms: full contrast
    assert np.all(cells[1] == 0.5) and np.all(cells[3] == 0.5)        # dead: flat mid-grey (zero)
    assert "2 of 4 atoms of norm ≤ 0.001 × the largest, drawn flat grey" in figures[0].axes[0].get_title()


def test_atom_grid_flat_atoms_of_huge_or_zero_values(tmp_path, kept_figures):
    figures = kept_figures
    atom_grid(np.full((16, 2), 1e200), (4, 4), tmp_path / "b.png")  # no overflow of the squares to inf
    assert "flat" not in figures[0].axes[0].get_title()
    atom_grid(np.zeros((16, 2)), (4, 4), tmp_path / "c.png")  # all zero: all flat, nothing divided by 0
    assert "2 of 2 atoms" in figures[1].axes[0].get_title()


def test_a_grid_of_one_pixel_tall_vectors_gives_each_a_readable_height(tmp_path):
    """Plain vectors drawn as (1, 50) images were strips 2 screen pixels tall."""
    path = image_grid(np.random.default_rng(0).normal(size=(6, 50)), (1, 50), tmp_path / "v.png", ncols=1)
    image = pixels(path)
    grey_rows = (np.abs(image - 255) > 5).any(axis=1)
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, grey_rows.astype(int), 0])))[::2]
    assert len(runs) == 6 and runs.min() >= 10
    square = pixels(image_grid(np.zeros((1, 64)), (8, 8), tmp_path / "s.png", normalize="none"))
    dark = np.argwhere(square < 10)
    assert np.ptp(dark[:, 0]) == np.ptp(dark[:, 1])  # square cells stay square


def test_history_axes_have_no_offset_over_the_title_and_every_column_an_epoch_label(tmp_path, kept_figures):
    """A column of 1.48730…1.48732 was labelled with an offset '1e-5+1.4873' drawn over the panel's title;
    with 5 panels in 4 columns only the lone panel of the last row said 'epoch'."""
    figures = kept_figures
    (tmp_path / "history.csv").write_text("epoch,a,b,c,d,norm\n1,1,2,3,4,1.487302\n2,1,2,3,4,1.487324\n")
    history_plot(tmp_path / "history.csv", tmp_path / "h.png")
    axes = figures[0].axes
    figures[0].canvas.draw()
    assert axes[4].yaxis.get_offset_text().get_text() == ""
    assert [ax.get_xlabel() for ax in axes[:5]] == ["", "epoch", "epoch", "epoch", "epoch"]


def test_run_pictures_name_the_run(tmp_path, kept_figures):
    """atoms.png, encoder.png and reconstructions.png did not say which model, λ or data they are of: the
    pictures of the runs of a sweep could not be told apart."""
    from sparsecoder.config import from_dict
    from sparsecoder.data import load
    from sparsecoder.models.sparse_autoencoder import SparseAutoencoder, SparseAutoencoderConfig
    from sparsecoder.viz import run_label, sae_pictures

    data = load("synthetic_pyle", seed=0, n_train=20, n_val=10, n_test=10)
    config = from_dict(SparseAutoencoderConfig, {"data": "synthetic_pyle", "n_components": 6, "lam": 0.03,
                                                 "device": "cpu"})
    model = SparseAutoencoder.from_config(config, data)
    label = run_label(config, data.name)
    assert label.startswith("SAE (lista encoder, linear decoder, variance guard), λ = 0.03, ")
    assert data.name in label
    figures = kept_figures
    sae_pictures(model, data, tmp_path)
    titles = [" ".join(fig.axes[0].get_title().split()) for fig in figures]
    assert len(titles) == 3 and all(label in t for t in titles)
    with torch.no_grad():  # every code zero: all atoms dead, last in the order and counted in the title
        for parameter in model.encoder.parameters():
            parameter.zero_()
    sae_pictures(model, data, tmp_path)
    assert "the last 6 never active on 10 test rows" in " ".join(figures[3].axes[0].get_title().split())


def test_value_axis_is_log_only_over_decades_with_plain_labels(monkeypatch):
    """The collapse figure drew decoder column norms of 1–1.5 on a log axis labelled "1.4 × 10⁰"."""
    import matplotlib.pyplot as plt

    from sparsecoder.viz import value_axis

    fig, axes = plt.subplots(1, 3)
    value_axis(axes[0], [1.0, 1.2, 1.5])
    value_axis(axes[1], [30.0, 0.01, np.nan])
    value_axis(axes[2], [0.0, 5.0, 500.0])  # a zero (collapsed norm) stays on the chart: linear
    assert [ax.get_yscale() for ax in axes] == ["linear", "log", "linear"]
    axes[1].plot([1, 2], [30, 0.01])
    fig.canvas.draw()
    labels = [t.get_text() for t in axes[1].get_yticklabels() if t.get_text()]
    assert labels and not any("times" in label or "^" in label for label in labels)
    plt.close(fig)


def test_log_value_axis_labels_only_2x_and_5x_between_decades_in_plain_numbers():
    """The demo's hinge panel (0.02-0.6) read "2e-02 3e-02 4e-02 6e-02 … 6e-01", labels running together."""
    import matplotlib.pyplot as plt

    from sparsecoder.viz import value_axis

    fig, axes = plt.subplots(1, 2)
    for ax, values in zip(axes, ([0.02, 0.6], [1e-4, 10.0]), strict=True):
        ax.plot([1, 2], values)
        value_axis(ax, values)
    fig.canvas.draw()
    minor = [[t.get_text() for t in ax.get_yminorticklabels() if t.get_text()] for ax in axes]
    assert set(minor[0]) == {"0.02", "0.05", "0.2", "0.5"}, minor[0]
    assert minor[1] == []  # five decades: the powers of ten alone
    major = [t.get_text() for t in axes[1].get_yticklabels() if t.get_text()]
    assert "0.001" in major and "1" in major
    plt.close(fig)


def test_collapse_figure_has_whole_epochs_and_no_log_axis_under_a_decade(tmp_path, kept_figures):
    from sparsecoder.reproduce.base import Context
    from sparsecoder.reproduce.evtimova_collapse import _plot

    figures = kept_figures
    rows = [{"variant": v, "epoch": e, "code_l1_mean": 20.0 - e - k, "column_norm_mean_mean": 1.4,
             "column_norm_min_mean": 1.3, "column_norm_max_mean": 1.5, "dead_atoms_mean": float(e == 3),
             "psnr_mean": 10 + e} for k, v in enumerate(("none", "vdl")) for e in (1, 2, 3)]
    _plot(Context("evtimova-collapse", tmp_path, True, {}), rows, ["none", "vdl"])
    axes = figures[0].axes
    assert [ax.get_yscale() for ax in axes] == ["linear"] * 4
    figures[0].canvas.draw()
    for ax in axes:
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks == [1, 2, 3]
    assert all(t == round(t) for t in axes[2].get_yticks())  # dead atoms: whole counts


def test_history_panels_go_log_over_decades_and_mark_nan_epochs(tmp_path, kept_figures):
    """A loss falling from 1e3 to 0.1 was drawn linear (a flat line after the first epoch); a NaN or inf
    epoch was only a gap in the line, read as a missing log entry."""
    figures = kept_figures
    (tmp_path / "history.csv").write_text("epoch,loss,energy,grad\n" + "".join(
        f"{e},{1e4 / 10 ** e},{-e},{'inf' if e == 3 else 'nan' if e == 4 else e}\n" for e in range(1, 6)))
    history_plot(tmp_path / "history.csv", tmp_path / "h.png")
    loss, energy, grad = figures[0].axes[:3]
    assert (loss.get_yscale(), energy.get_yscale(), grad.get_yscale()) == ("log", "linear", "linear")
    assert grad.get_title() == "grad (x: NaN/inf at 2 epochs)" and energy.get_title() == "energy"
    crosses = [line for line in grad.lines if line.get_marker() == "x"]
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [3, 4]


def test_history_of_a_run_validating_every_k_epochs_draws_its_validated_epochs_not_nan_marks(
        tmp_path, kept_figures):
    """validate_every=2 leaves the validation cells of epochs 1, 3 empty: they were drawn as isolated points
    (invisible without markers) and marked as NaN/inf epochs."""
    figures = kept_figures
    (tmp_path / "history.csv").write_text("epoch,loss,val_loss,seconds\n1,4,,1\n2,3,2.5,1\n3,2,,1\n"
                                          "4,1,nan,1\n5,1,1.5,1\n")
    history_plot(tmp_path / "history.csv", tmp_path / "h.png")
    ax = figures[0].axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    assert list(lines["val_loss"].get_xdata()) == [2, 4, 5]
    assert list(lines["loss"].get_xdata()) == [1, 2, 3, 4, 5]
    assert ax.get_title() == "loss (x: NaN/inf at 1 epoch)"  # epoch 4's logged NaN, not the empty cells
    crosses = [line for line in ax.lines if line.get_marker() == "x"]
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [4]
