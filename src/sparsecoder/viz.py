"""Pictures of runs as PNG files: image grids, dictionary atoms, reconstructions, latent spaces, histories.

Every function takes tensors or arrays (batch first), writes one PNG atomically with matplotlib's
non-interactive Agg backend and returns its path. Nothing is shown on screen.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import textwrap
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from sparsecoder.io import atomic_write_bytes
from sparsecoder.nn.sizes import check_size
from sparsecoder.util import as_array, native_array

__all__ = ["image_grid", "atom_grid", "reconstruction_grid", "latent_scatter", "latent_grid",
           "data_latent_grid", "history_plot", "run_label", "epoch_axis", "value_axis"]


def subplots(*args, figsize=None, dpi=None, **kwargs):
    """``pyplot.subplots`` without pyplot: a :class:`~matplotlib.figure.Figure` of its own, saved as PNG by
    matplotlib's Agg renderer. Drawing a picture neither switches the caller's matplotlib backend (selecting
    Agg for the whole process, as this module did, turned off a notebook's inline plots once
    ``sparsecoder.train`` had drawn its pictures) nor adds figures to pyplot's list."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)  # its renderer measures text (_draw_grid), without selecting a backend
    return fig, fig.subplots(*args, **kwargs)


def _numpy(value, name: str) -> np.ndarray:
    """``value`` (array, tensor, nested lists) as a float64 array; complex values, strings or ragged lists
    are a ``ValueError`` naming ``name`` (the metrics' check, :func:`sparsecoder.util.as_array`;
    NaN/inf pass: the pictures mark them)."""
    return as_array(value, name, ndim=None, finite=False)


def save_figure(fig, path: Path, tight: bool = False, dpi=100) -> Path:
    """Write ``fig`` as a PNG at ``dpi`` (``"figure"``: the figure's own) atomically; ``tight``: the
    picture's bounds are those of what is drawn (row labels of a narrow grid were cut at the left edge:
    'recon.' read 'econ.')."""
    path = Path(path)
    buffer = io.BytesIO()
    bounds = {"bbox_inches": "tight", "pad_inches": 0.1} if tight else {}
    fig.savefig(buffer, format="png", dpi=dpi, **bounds)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _as_images(images, image_shape, name: str) -> np.ndarray:
    """``images`` (n, d) or (n, *image_shape) as an (n, h, w[, c]) array (a channel axis of 1 dropped)."""
    array = _numpy(images, name)
    image_shape = _image_shape(image_shape)
    size = math.prod(image_shape)
    if not (array.ndim == 1 + len(image_shape) and array.shape[1:] == image_shape):
        if array.ndim != 2 or array.shape[1] != size:
            raise ValueError(
                f"{name} must be (n, {size}) rows or (n, {', '.join(map(str, image_shape))}) images "
                f"for image_shape {image_shape}, got shape {array.shape}"
            )
        array = array.reshape(len(array), *image_shape)
    return array[..., 0] if len(image_shape) == 3 and image_shape[2] == 1 else array


def _image_shape(image_shape) -> tuple[int, ...]:
    """``image_shape`` as ``(h, w)`` or ``(h, w, c)`` of integers >= 1, ``c`` in 1, 3 (RGB), 4 (RGBA); a
    fractional side (28.5 was cut to 28) or a channel count matplotlib cannot draw is a ``ValueError``."""
    try:
        shape = tuple(image_shape)
    except TypeError:
        shape = None
    if (shape is None or len(shape) not in (2, 3)
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                       for s in shape)):
        raise ValueError(f"image_shape must be (height, width) or (height, width, channels), integers >= 1, "
                         f"got {image_shape!r}")
    if len(shape) == 3 and shape[2] not in (1, 3, 4):
        raise ValueError(f"image_shape {shape} has {shape[2]} channels; a picture has 1 (grey), 3 (RGB) or 4 "
                         f"(RGBA): pass one channel, or three of them, per image")
    return tuple(int(s) for s in shape)


def _normalise(images: np.ndarray, normalize: str) -> tuple[np.ndarray, str, np.ndarray]:
    """Map images to [0, 1] for display; returns the images, the colour map to use and the mask (n, h, w)
    of the pixels that are NaN or ±inf (in any channel), which the grid paints red.

    ``"each"``: every image on its own symmetric range ``[-max|x|, max|x|]`` when it has negative
    values (atoms, filters: grey is zero), otherwise its own ``[min, max]``; ``"all"``: one ``[min, max]``
    for the whole grid; ``"none"``: values are already in ``[0, 1]`` (clipped). Ranges are those of the
    finite values; an empty range is widened to hold 0 (:func:`_display_range`): a constant positive image
    is white, zero black.
    """
    if normalize not in ("each", "all", "none"):
        raise ValueError(f"normalize must be 'each', 'all' or 'none', got {normalize!r}")
    finite = np.isfinite(images)
    bad = ~finite.all(axis=3) if images.ndim == 4 else ~finite
    images = np.where(finite, images, 0.0)
    if normalize == "none":
        return np.clip(images, 0.0, 1.0), "gray", bad
    if normalize == "all":
        values = images[finite]
        low, scale = _display_range(*((values.min(), values.max()) if values.size else (0.0, 1.0)))
        return np.clip((images - low) / scale, 0.0, 1.0), "gray", bad
    out = np.empty_like(images)
    for i, (image, ok) in enumerate(zip(images, finite, strict=True)):
        values = image[ok]
        low, high = (values.min(), values.max()) if values.size else (0.0, 0.0)
        if low < 0:
            bound = max(abs(low), abs(high))
            out[i] = 0.5 + 0.5 * image / bound
        else:
            low, scale = _display_range(low, high)
            out[i] = (image - low) / scale
    return np.clip(out, 0.0, 1.0), "gray", bad


def _display_range(low: float, high: float) -> tuple[float, float]:
    """``(low, scale)`` drawing values ``low``…``high`` as ``(x − low) / scale`` in [0, 1]; an empty range
    (a constant image: a 1 × 1 atom, a DC atom, a white digit) is widened to hold 0, so a positive constant
    is white, a negative one black and zero black (every constant image was black)."""
    if high > low:
        return low, high - low
    low, high = min(low, 0.0), max(high, 0.0)
    return low, (high - low) or 1.0


def _mosaic(images: np.ndarray, ncols: int, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """Tile (n, h, w[, c]) images in [0, 1] into one array, ``pad`` pixels of ``fill`` (white) between them;
    NaN images (placeholders) are ``fill`` too."""
    n, h, w = images.shape[:3]
    nrows = max(1, math.ceil(n / ncols))
    canvas = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, *images.shape[3:]), float(fill))
    for k in range(n):
        r, c = divmod(k, ncols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        canvas[top:top + h, left:left + w] = np.nan_to_num(images[k], nan=fill)
    return canvas


# Bounds of a grid picture: thousands of images made PNGs of tens of thousands of pixels a side (a 400 × 400
# latent grid ran the machine out of memory). A grid is drawn with fewer screen pixels per image pixel (down
# to one) to stay within MAX_GRID_PIXELS (6,000², about 150 MB while drawn) and MAX_GRID_SIDE (a long strip
# of wide vectors may be long); one that would not fit even at one screen pixel per image pixel is refused,
# before anything is decoded or drawn.
MAX_GRID_PIXELS = 6000 * 6000
MAX_GRID_SIDE = 32768


def _canvas_size(n: int, ncols: int, h: int, w: int) -> tuple[int, int]:
    return ncols * (w + 1) + 1, max(1, math.ceil(n / ncols)) * (h + 1) + 1


def _cells_per_side(image_shape) -> int:
    """The most (h × w) images per side of a square grid within :data:`MAX_GRID_PIXELS`."""
    h, w = _image_shape(image_shape)[:2]
    return (math.isqrt(MAX_GRID_PIXELS) - 1) // (max(h, w) + 1)


def _check_grid(n: int, ncols: int, h: int, w: int, name: str,
                fix: str = "draw fewer images (e.g. the first 1,000), or fewer columns") -> None:
    """Refuse a grid of ``n`` (h × w) images in ``ncols`` columns beyond :data:`MAX_GRID_PIXELS` or
    :data:`MAX_GRID_SIDE` at one screen pixel per image pixel."""
    width, height = _canvas_size(n, ncols, h, w)
    if width * height > MAX_GRID_PIXELS or max(width, height) > MAX_GRID_SIDE:
        raise ValueError(
            f"{name}: a grid of {n:,} images of {h}×{w} pixels in {ncols:,} columns would be {width:,} × "
            f"{height:,} pixels, more than {MAX_GRID_PIXELS / 1e6:g} million (or {MAX_GRID_SIDE:,} a side); "
            f"{fix}")


def _draw_grid(images: np.ndarray, cmap: str, ncols: int, title: str | None, path: Path,
               row_labels: list[str] | None = None, bad: np.ndarray | None = None) -> Path:
    """One image of the tiled grid (a single ``imshow``: aligned cells, fast for hundreds of atoms).

    ``bad`` (n, h, w) marks NaN/inf pixels: they are painted red and the title says how many images hold
    them (drawn as a value, they looked like a black or white image). Each caller checks the grid's size
    (:func:`_check_grid`) before its work."""
    h, w = images.shape[1:3]
    canvas = _mosaic(images, ncols)
    if bad is not None and bad.any():
        marks = _mosaic(bad.astype(np.float64), ncols, fill=0.0) > 0.5
        if canvas.ndim == 2:
            canvas = matplotlib.colormaps.get_cmap(cmap)(canvas)[..., :3]
        canvas[marks] = (1.0, 0.0, 0.0, 1.0)[: canvas.shape[2]]
        n_bad = int(bad.reshape(len(bad), -1).any(axis=1).sum())
        n_real = int((~np.isnan(images).reshape(len(images), -1).all(axis=1)).sum())  # not placeholders
        note = f"{n_bad} of {n_real} images hold NaN/inf pixels (red)"
        title = f"{title} — {note}" if title else note
    # ~48 screen pixels per cell at 100 dpi, fewer (down to 1 per image pixel) for a large grid
    height_px, width_px = canvas.shape[:2]
    pixels_per_cell = max(1, min(max(2, int(48 / max(h, w))),
                                 math.isqrt(MAX_GRID_PIXELS // (width_px * height_px)),
                                 MAX_GRID_SIDE // max(width_px, height_px)))
    # a cell at least MIN_CELL_SIDE screen pixels on its short side: vectors of shape (1, 50) were strips 2
    # pixels tall, unreadable; the short side is stretched, within the same bounds on the picture's size
    across, down = (_stretch(w, pixels_per_cell, width_px, height_px),
                    _stretch(h, pixels_per_cell, height_px, width_px))
    width = canvas.shape[1] * pixels_per_cell * across / 100 + (0.7 if row_labels else 0.2)
    height = canvas.shape[0] * pixels_per_cell * down / 100 + (0.4 if title else 0.2)
    fig, ax = subplots(figsize=(max(width, 2.0), max(height, 1.0)))
    ax.imshow(canvas, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest", aspect=down / across)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if row_labels:
        nrows = math.ceil(len(images) / ncols)
        ax.set_yticks([1 + r * (h + 1) + h / 2 for r in range(nrows)], labels=row_labels[:nrows], fontsize=9)
        ax.tick_params(axis="y", length=0)
    if title:
        _fit_title(fig, ax, title)
    fig.tight_layout(pad=0.4)
    # tight: a two-line title was cut at the top of a grid without row labels
    return save_figure(fig, path, tight=True)


MIN_CELL_SIDE = 12  # screen pixels of a grid cell's short side (a 1 × d vector's height)


def _stretch(side: int, pixels_per_cell: int, along_px: int, other_px: int) -> int:
    """How many times to stretch a grid along an axis whose cells are ``side`` image pixels (drawn at
    ``pixels_per_cell`` screen pixels each) so that a cell is :data:`MIN_CELL_SIDE` screen pixels, within
    :data:`MAX_GRID_PIXELS` and :data:`MAX_GRID_SIDE` for a canvas of ``along_px`` × ``other_px``."""
    along, other = along_px * pixels_per_cell, other_px * pixels_per_cell
    return max(1, min(math.ceil(MIN_CELL_SIDE / (side * pixels_per_cell)),
                      MAX_GRID_PIXELS // (along * other), MAX_GRID_SIDE // along))


def _fit_title(fig, ax, title: str) -> None:
    """The title over ``ax``, wrapped at 80 characters a line, with the figure widened (and heightened by
    the extra lines) so that no line is clipped: a grid of a few small images is narrower than its title."""
    lines = textwrap.wrap(title, 80) or [title]
    text = ax.set_title("\n".join(lines), fontsize=10)
    fig.set_figheight(fig.get_figheight() + 0.17 * (len(lines) - 1))
    needed = text.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi + 0.3
    if needed > fig.get_figwidth():
        fig.set_figwidth(needed)


def image_grid(images, image_shape, path, *, ncols: int | None = None, normalize: str = "each",
               title: str | None = None) -> Path:
    """A grid of images, one per row of ``images`` (n, d), reshaped to ``image_shape``.

    Parameters
    ----------
    images : (n, d) or (n, h, w) tensor or array
    image_shape : tuple
        ``(h, w)`` (grey) or ``(h, w, c)`` (colour, values in [0, 1] expected).
    path : path of the PNG to write.
    ncols : int, optional
        Columns of the grid (default: about ``sqrt(n)``).
    normalize : {"each", "all", "none"}
        Display range per image, shared over the grid, or none (values in [0, 1]; values outside are
        clipped and the title says how many images have some).
    title : str, optional
    """
    return _image_grid(images, image_shape, path, ncols=ncols, normalize=normalize, title=title)


def _image_grid(images, image_shape, path, *, ncols: int | None = None, normalize: str = "each",
                title: str | None = None, flat_below: float | None = None) -> Path:
    """:func:`image_grid`; ``flat_below``: images whose norm is at most this fraction of the largest one's
    are drawn flat grey (the title says how many): each image on its own range drew a dead atom of norm
    1e-9 with the full contrast of a live one."""
    array = _as_images(images, image_shape, "images")
    if len(array) == 0:
        raise ValueError("images is empty; nothing to draw")
    ncols = (math.ceil(math.sqrt(len(array))) if ncols is None
             else check_size("image_grid", "ncols", ncols, note=" (or None: about sqrt(n))"))
    _check_grid(len(array), ncols, array.shape[1], array.shape[2], "images")
    shown, cmap, bad = _normalise(array, normalize)
    if flat_below is not None:  # atoms of (near-)zero norm: per-atom contrast drew them as live atoms
        rows = np.where(np.isfinite(array), array, 0.0).reshape(len(array), -1)
        top = np.abs(rows).max()  # scaled first: the squares of values of 1e200 overflowed to inf
        norms = np.linalg.norm(rows / top, axis=1) if top > 0 else np.zeros(len(rows))
        flat = norms <= flat_below * norms.max()
        if flat.any():
            shown[flat] = 0.5
            note = (f"{int(flat.sum())} of {len(array)} atoms of norm ≤ {flat_below:g} × the largest, drawn "
                    f"flat grey")
            title = f"{title} — {note}" if title else note
    if normalize == "none":  # say so when values are clipped: an image of 0…3 looked like one of 0…1
        with np.errstate(invalid="ignore"):  # NaN/inf are counted apart (red)
            beyond = np.isfinite(array) & ((array < 0) | (array > 1))
        outside = int(beyond.reshape(len(array), -1).any(axis=1).sum())
        if outside:
            note = f"{outside} of {len(array)} images {'has' if outside == 1 else 'have'} values outside " \
                   f"[0, 1], clipped"
            title = f"{title} — {note}" if title else note
    return _draw_grid(shown, cmap, ncols, title, path, bad=bad)


# an atom of norm at most this fraction of the largest atom's is drawn flat grey by atom_grid (dead)
FLAT_ATOM = 1e-3


def atom_grid(columns, image_shape, path, order=None, *, title: str | None = None) -> Path:
    """Dictionary atoms (the columns of ``columns`` (d, l)) as a grid of images, each on its own range.

    ``order`` (a permutation or a subset of column indices) picks and orders the atoms, e.g. most used
    first. Atoms with negative values are drawn with grey = 0. Atoms of norm at most :data:`FLAT_ATOM` times
    the largest drawn atom's are drawn flat grey, and the title says how many (on its own range a dead
    atom looked like a live one).
    """
    array = _numpy(columns, "columns")
    if array.ndim != 2:
        raise ValueError(f"columns must be a (d, l) matrix of atoms as columns, got shape {array.shape}")
    atoms = array.T
    if order is not None:
        raw = native_array(order)
        if raw.dtype == bool:  # a mask [True, False, True] was taken as the indices 1, 0, 1
            raise ValueError("order is a boolean mask; pass the indices of the atoms to draw "
                             "(np.flatnonzero(mask))")
        order = _numpy(raw, "order").ravel()
        if not np.all(np.isfinite(order)) or not np.all(order == np.round(order)):
            raise ValueError(f"order must be integer atom indices, got non-integers such as "
                             f"{order[~(np.isfinite(order) & (order == np.round(order)))][0]!r}")
        order = order.astype(np.int64)
        if order.size and (order.min() < 0 or order.max() >= len(atoms)):
            raise ValueError(f"order has indices outside [0, {len(atoms)})")
        atoms = atoms[order]
    return _image_grid(atoms, image_shape, path, normalize="each", title=title, flat_below=FLAT_ATOM)


def reconstruction_grid(inputs, recons, image_shape, path, *, title: str | None = None) -> Path:
    """Inputs (top row) over their reconstructions (bottom row), on the inputs' common range.

    Both are pixel-space rows (n, d); each pair of rows of the grid holds the same samples. Up to 16
    samples make one pair of rows; more are wrapped into further pairs.
    """
    inputs = _as_images(inputs, image_shape, "inputs")
    recons = _as_images(recons, image_shape, "recons")
    if inputs.shape != recons.shape:
        raise ValueError(f"inputs and recons must have the same shape, got {inputs.shape} and {recons.shape}")
    if len(inputs) == 0:
        raise ValueError("inputs is empty; nothing to draw")
    ncols = min(16, len(inputs))
    # each input row and recon row is padded to ncols cells: 17 samples are 4 rows of 16, not 3
    _check_grid(2 * ncols * math.ceil(len(inputs) / ncols), ncols, inputs.shape[1], inputs.shape[2],
                "inputs and recons")
    finite = inputs[np.isfinite(inputs)]
    low, scale = _display_range(*((finite.min(), finite.max()) if finite.size else (0.0, 1.0)))
    rows, marks, labels = [], [], []
    for start in range(0, len(inputs), ncols):
        for block, label in ((inputs, "input"), (recons, "recon.")):
            chunk = block[start:start + ncols]
            pad = np.full((ncols - len(chunk), *chunk.shape[1:]), np.nan)  # white placeholders
            bad = ~np.isfinite(chunk)
            rows.append(np.concatenate([np.where(bad, 0.0, (chunk - low) / scale), pad]))
            marks.append(np.concatenate([bad.any(axis=3) if bad.ndim == 4 else bad,
                                         np.zeros((len(pad), *chunk.shape[1:3]), bool)]))
            labels.append(label)
    grid = np.clip(np.concatenate(rows), 0.0, 1.0)
    return _draw_grid(grid, "gray", ncols, title, path, row_labels=labels, bad=np.concatenate(marks))


def latent_scatter(codes2d, labels, path, *, title: str | None = None) -> Path:
    """Two-dimensional codes (n, 2) as points coloured by integer ``labels`` (n,) (or one colour if None).

    Points with a NaN/inf coordinate cannot be placed: they are left out and the title says how many (they
    used to vanish silently); no codes, or none finite, is a ``ValueError``.
    """
    codes = _numpy(codes2d, "codes2d")
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"codes2d must be (n, 2), got shape {codes.shape}")
    if len(codes) == 0:
        raise ValueError("codes2d is empty; nothing to draw")
    finite = np.isfinite(codes).all(axis=1)
    if not finite.any():
        raise ValueError(f"all {len(codes)} codes are NaN/inf; check the model that produced them")
    if labels is not None:  # class indices, as everywhere (NaN or 2.5 used to be drawn as a colour)
        from sparsecoder.data.base import check_labels

        labels = check_labels(_numpy(labels, "labels").ravel(), "labels",
                              "give one integer class index per code", length=codes.shape[0])
    if not finite.all():
        hidden = int((~finite).sum())
        note = f"{hidden} of {len(codes)} points {'is' if hidden == 1 else 'are'} NaN/inf, not drawn"
        title = f"{title} — {note}" if title else note
        codes = codes[finite]
        labels = None if labels is None else labels[finite]
    fig, ax = subplots(figsize=(6, 5))
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=4, alpha=0.6)
    else:
        # one colour per class: tab10 stretched over 14 classes gave classes 1 and 2 the same orange
        n_colours = 10 if labels.max() <= 9 else int(labels.max()) + 1
        cmap = matplotlib.colormaps["tab10" if n_colours <= 10 else "tab20" if n_colours <= 20 else "turbo"]
        points = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap=cmap.resampled(n_colours), s=4,
                            alpha=0.7, vmin=-0.5, vmax=n_colours - 0.5)
        present = np.unique(labels)
        fig.colorbar(points, ax=ax, label="label", ticks=present if len(present) <= 20 else None)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title("\n".join(textwrap.wrap(title, 70)))
    fig.tight_layout()
    return save_figure(fig, path)


def latent_grid(decode_fn: Callable, image_shape, path, n: int = 15, span: float = 3.0, *,
                title: str | None = None) -> Path:
    """Decoded images over an ``n × n`` grid of the latent plane ``[-span, span]²``.

    ``decode_fn`` maps an (m, 2) float32 CPU tensor of latents to (m, d) images (pixel space, shown on the
    grid's common range); row ``r`` of the picture has ``z_2`` decreasing from top to bottom, column ``c``
    has ``z_1`` increasing left to right.
    """
    import torch

    n = check_size("latent_grid", "n (cells per side)", n)
    if (isinstance(span, bool) or not isinstance(span, numbers.Real) or not math.isfinite(span)
            or not span > 0):  # an infinite span decoded NaN latents: a grid of black cells
        raise ValueError(f"span must be a finite number > 0, got {span!r}")
    h, w = _image_shape(image_shape)[:2]
    _check_grid(n ** 2, n, h, w, "latent grid",
                f"lower n (at most {_cells_per_side(image_shape)})")  # before decoding
    values = torch.linspace(-float(span), float(span), n)
    z1, z2 = torch.meshgrid(values, values.flip(0), indexing="xy")
    latents = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)
    with torch.no_grad():
        images = decode_fn(latents)
    array = _as_images(images, image_shape, "decoded images")
    if len(array) != n * n:
        raise ValueError(f"decode_fn returned {len(array)} images for the {n * n} latents of the grid")
    shown, cmap, bad = _normalise(array, "all")
    return _draw_grid(shown, cmap, n, title, path, bad=bad)


def data_latent_grid(decode_fn: Callable, codes, image_shape, path, n: int = 15, *,
                     title: str | None = None) -> Path:
    """:func:`latent_grid` over the central 95% of the 2-latent ``codes`` (n, 2) on *each* axis (2.5th to
    97.5th percentile; ``[-3, 3]`` without codes): a heavy-tailed or nearly unused latent gets its own
    range, where one span for both axes showed an unused latent's axis mostly outside the data. ``title``
    gets the two ranges appended."""
    import torch

    codes = torch.as_tensor(codes, dtype=torch.float32).cpu()
    if codes.dim() != 2 or codes.shape[1] != 2:
        raise ValueError(f"codes must be (n, 2), got shape {tuple(codes.shape)}")
    if codes.shape[0] == 0:  # no codes to take the ranges from: [-3, 3]², a standard prior's bulk
        low, high = torch.full((2,), -3.0), torch.full((2,), 3.0)
    else:
        low, high = codes.quantile(0.025, dim=0), codes.quantile(0.975, dim=0)
    centre, half = (low + high) / 2, ((high - low) / 2).clamp_min(1e-6)
    ranges = f"z1 ∈ [{low[0]:.2g}, {high[0]:.2g}], z2 ∈ [{low[1]:.2g}, {high[1]:.2g}]"
    return latent_grid(lambda z: decode_fn(centre + z * half), image_shape, path, n=n, span=1.0,
                       title=f"{title}, {ranges}" if title else ranges)


def read_history(history_csv) -> dict[str, np.ndarray]:
    """Columns of a run's ``history.csv`` as float arrays (empty cells, and cells missing at the end of a
    short row, become NaN; :func:`read_history_cells` tells them from logged NaN values).

    A file this cannot read as a history is a ``ValueError`` naming the file and the fix: no epochs, no
    ``epoch`` column, a column name given twice (one column was silently lost), a row with more cells than
    the header, a cell that is not a number (naming its line and column) or an epoch that is empty/NaN.
    """
    return read_history_cells(history_csv)[0]


def read_history_cells(history_csv) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """:func:`read_history`'s columns, and per column a bool array: whether each epoch's cell holds a value
    (False where it is empty: not logged, e.g. the validation metrics of an epoch not validated)."""
    path = Path(history_csv)
    if not path.is_file():
        raise FileNotFoundError(f"no history file at {path}")
    fix = "a run's history.csv has a header line (epoch, …) and one line of numbers per epoch"
    try:
        with path.open(newline="") as fh:
            lines = [(number, row) for number, row in enumerate(csv.reader(fh), start=1) if row]
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path} is not a CSV text file ({error}); {fix}") from None
    if len(lines) < 2:
        raise ValueError(f"{path} has no epochs")
    header = [name.strip() for name in lines[0][1]]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ValueError(f"{path}: the column {repeated[0]!r} appears more than once in the header; {fix}")
    if "epoch" not in header:
        raise ValueError(f"{path} has no 'epoch' column (columns: {', '.join(header)}); {fix}")
    values = np.full((len(lines) - 1, len(header)), np.nan)
    logged = np.zeros(values.shape, dtype=bool)
    for i, (number, row) in enumerate(lines[1:]):
        if len(row) > len(header):
            raise ValueError(f"{path}, line {number}: {len(row)} cells but the header names {len(header)} "
                             f"columns; {fix}")
        for j, cell in enumerate(row):
            if cell.strip():
                logged[i, j] = True
                try:
                    values[i, j] = float(cell)
                except ValueError:
                    raise ValueError(f"{path}, line {number}, column {header[j]!r}: {cell!r} is not a "
                                     f"number; {fix}") from None
    epochs = values[:, header.index("epoch")]
    if not np.all(np.isfinite(epochs)):
        number = lines[1 + int(np.flatnonzero(~np.isfinite(epochs))[0])][0]
        raise ValueError(f"{path}, line {number}: the epoch is empty or not finite; {fix}")
    return ({name: values[:, j] for j, name in enumerate(header)},
            {name: logged[:, j] for j, name in enumerate(header)})


def epoch_axis(ax, epochs) -> None:
    """Whole epochs as the x ticks of ``ax`` (1.25 epochs read as a fraction of a pass), and a range of
    ±1 around a single epoch (the axis spanned 0.945–1.05, with fractional ticks)."""
    epochs = np.asarray(epochs, dtype=float)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if epochs.size and np.ptp(epochs) == 0:
        ax.set_xlim(epochs[0] - 1, epochs[0] + 1)


def value_axis(ax, values, log: bool = True) -> None:
    """The y scale of ``ax`` for ``values``: logarithmic when ``log`` and the finite values are positive and
    span at least a decade, with plain numbers as labels (a log axis over 1–1.5 read "1.4 × 10⁰"); linear
    otherwise, without an offset ("1e-5+1.4873" over the axis, drawn over the title)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if log and values.size and values.min() > 0 and values.max() >= 10 * values.min():
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        # between the powers of ten, plain labels at 2× and 5× over at most two decades, none beyond
        # (LogFormatter's "2e-02 3e-02 4e-02 6e-02" per decade ran into each other)
        few_decades = values.max() <= 100 * values.min()
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: _minor_label(value, few_decades)))
    else:
        ax.set_yscale("linear")
        ax.ticklabel_format(axis="y", useOffset=False)


def _minor_label(value: float, shown: bool) -> str:
    """A log axis's minor tick label: ``value`` as a plain number at 2× and 5× a power of ten when
    ``shown``, else nothing."""
    if not shown or not value > 0:
        return ""
    mantissa = value / 10.0 ** np.floor(np.log10(value))
    return f"{value:g}" if min(abs(mantissa - 2), abs(mantissa - 5)) < 1e-6 else ""


MAX_HISTORY_PANELS = 64  # 16 rows of 4 panels, ~3,900 pixels tall


def history_plot(history_csv, path, *, title: str | None = None) -> Path:
    """One small panel per column of ``history.csv`` against the epoch (learning rates on a log axis).

    Training logs and their validation counterpart (``x`` and ``val_x``) share a panel; a column is drawn
    over the epochs that logged it (the validated epochs of ``validate_every``), a NaN/inf value marked.
    At most :data:`MAX_HISTORY_PANELS` panels are drawn (the first ones; the title says so): 5,000 columns
    made a figure 300,000 pixels tall.
    """
    columns, logged = read_history_cells(history_csv)
    epochs = columns.pop("epoch")
    columns.pop("seconds", None)
    if not columns:
        raise ValueError(f"{history_csv} has no column to plot besides epoch (and seconds)")
    panels: dict[str, list[str]] = {}
    for key in columns:
        base = key[4:] if key.startswith("val_") and key[4:] in columns else key
        panels.setdefault(base, []).append(key)
    if len(panels) > MAX_HISTORY_PANELS:
        note = f"the first {MAX_HISTORY_PANELS} of {len(panels)} panels"
        title = f"{title} — {note}" if title else note
        panels = dict(list(panels.items())[:MAX_HISTORY_PANELS])
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    for ax, (base, keys) in zip(axes.flat, panels.items(), strict=False):
        for key in keys:  # over the epochs that logged it: a line through the validated epochs
            ax.plot(epochs[logged[key]], columns[key][logged[key]],
                    marker="." if logged[key].sum() < 30 else None, label=key)
        if base.startswith("lr_") and np.all(columns[base][np.isfinite(columns[base])] > 0):
            ax.set_yscale("log")
        else:  # a loss falling from 1e4 to 1 was a flat line after the first epoch: log over decades
            value_axis(ax, np.concatenate([columns[key] for key in keys]))
        missing = [key for key in keys if not np.isfinite(columns[key]).any()]
        if missing:  # an empty panel read as "not logged yet"; say the values are NaN/inf or empty
            ax.text(0.5, 0.5, "no finite values:\n" + "\n".join(missing), transform=ax.transAxes,
                    ha="center", va="center", fontsize=8, color="tab:red")
        # some epochs NaN/inf: the line just had a gap; red crosses on the axis mark those epochs
        gaps = [(key, epochs[logged[key] & ~np.isfinite(columns[key])]) for key in keys if key not in missing]
        gaps = [(key, at) for key, at in gaps if at.size]
        for _, at in gaps:
            ax.plot(at, np.full(at.size, 0.03), "x", color="tab:red", transform=ax.get_xaxis_transform(),
                    clip_on=False)
        n_gaps = len(np.unique(np.concatenate([at for _, at in gaps]))) if gaps else 0
        ax.set_title(f"{base} (x: NaN/inf at {n_gaps} epoch{'s' if n_gaps > 1 else ''})" if n_gaps else base,
                     fontsize=9)
        ax.tick_params(which="both", labelsize=7)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    for column in range(ncols):  # the lowest panel of each column (the last row may be short)
        axes[(len(panels) - 1 - column) // ncols, column].set_xlabel("epoch", fontsize=8)
    for ax in axes.flat:
        epoch_axis(ax, epochs)
    if title:
        fig.suptitle(title, fontsize=10)
    # fixed margins in inches (panels of 3.2 x 2.4 in, 7-9 pt labels) instead of tight_layout, whose extra
    # drawing pass cost a quarter of the time of every run's history.png
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.45 / height,
                        top=1 - (0.65 if title else 0.35) / height, wspace=0.35, hspace=0.55)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
# pictures of a trained model, keyed by family (registered in sparsecoder.models)
# ----------------------------------------------------------------------------------------------
def _fitting(order, image_shape) -> tuple[object, str]:
    """The first atoms of ``order`` that a square grid holds within :data:`MAX_GRID_PIXELS`, and a note for
    the title when some are left out (a model of 50,000 atoms would otherwise fail its pictures)."""
    side = _cells_per_side(image_shape)
    if len(order) <= side * side:
        return order, ""
    return order[: side * side], f" (the first {side * side:,} of {len(order):,})"


def run_label(config, data_name: str | None = None) -> str:
    """Which run a picture is of, for its title: the model and the settings that tell its runs apart (λ of a
    sparse autoencoder, prior and β of a VAE) and the data, e.g. ``SAE (lista encoder, linear decoder,
    variance guard), λ = 0.02, mnist``; the pictures of two runs of a sweep looked the same."""
    name = getattr(config, "model_name", type(config).__name__)
    if name == "sparse_autoencoder":
        encoder = "no encoder (FISTA)" if config.encoder == "none" else f"{config.encoder} encoder"
        guard = "no collapse guard" if config.collapse_guard == "none" else f"{config.collapse_guard} guard"
        what = f"SAE ({encoder}, {config.decoder} decoder, {guard}), λ = {config.lam:g}"
    elif name == "vae":
        what = (f"VAE ({config.prior} prior, {config.posterior} posterior, {config.n_latents} latents), "
                f"β = {config.beta:g}")
    else:
        what = name
    data_name = data_name or getattr(config, "data", None)
    return f"{what}, {data_name}" if data_name else what


def _picture_split(data):
    return data.test if len(data.test) else data.val


def _reconstructions(split, x, recon, image_shape, out_dir: Path, title: str) -> Path:
    """``reconstructions.png``: the first rows of ``x`` over their reconstructions ``recon`` (model space,
    as many rows as ``recon``), both in pixel space."""
    shown = slice(0, len(recon))
    return reconstruction_grid(split.to_pixels(x[shown], shown).cpu(), split.to_pixels(recon, shown).cpu(),
                               image_shape, out_dir / "reconstructions.png", title=title)


def sae_pictures(model, data, out_dir) -> list[Path]:
    """``atoms.png``, ``encoder.png`` (rows of U; not for DO) and ``reconstructions.png`` of a sparse
    autoencoder (family ``sparse_autoencoder``).

    Atoms and filters are ordered by how often their code component is active on the test set (most used
    first). Nothing is drawn for data without an ``image_shape``. The model is left in eval mode.
    """
    import torch

    if data.image_shape is None:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    split = _picture_split(data)
    x = split.x[: min(len(split), 2000)].to(model.device, torch.float32)
    with torch.no_grad():
        codes = model.encode(x)
        order = torch.argsort((codes != 0).float().mean(dim=0), descending=True, stable=True).cpu()
        kind = "decoder columns" if model.config.decoder == "linear" else "D(e_i) - D(0)"
        # dead atoms are last in this order and look like any other: say how many there are
        n_dead = int((codes != 0).sum(dim=0).eq(0).sum())
        dead = (f", the last {n_dead} never active on {len(x):,} test rows" if n_dead else "")
        order, some = _fitting(order, data.image_shape)
        run = f" — {run_label(model.config, data.name)}"
        paths = [atom_grid(model.atoms().cpu(), data.image_shape, out_dir / "atoms.png", order=order,
                           title=f"atoms ({kind}), most used first{dead}{some}{run}")]
        if model.encoder is not None:
            paths.append(atom_grid(model.encoder.filters.detach().T.cpu(), data.image_shape,
                                   out_dir / "encoder.png", order=order,
                                   title=f"encoder filters (rows of U), same order as the atoms{some}{run}"))
        paths.append(_reconstructions(split, x, model.decoder(codes[:16]), data.image_shape, out_dir,
                                      f"test inputs (top) over reconstructions D(codes){run}"))
    return paths


def vae_pictures(model, data, out_dir) -> list[Path]:
    """``atoms.png`` (active first), ``samples.png`` (decoded prior samples), ``reconstructions.png`` of a
    VAE (family ``vae``); 2-latent runs also get ``latent_scatter.png`` and ``latent_grid.png``.

    Nothing is drawn for data without an ``image_shape``. The model is left in eval mode.
    """
    import torch

    from sparsecoder.models.distributions import sample_prior

    if data.image_shape is None:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    c = model.config
    split = _picture_split(data)
    with torch.no_grad():
        x = model._check_rows(split.x[:2000])
        codes = model.encode(x)
        # population std, as eval.metrics.active_units counts the active latents
        spread = codes.std(dim=0, unbiased=False) if codes.shape[0] > 1 else torch.zeros(c.n_latents)
        order = torch.argsort(spread.cpu(), descending=True, stable=True)
        n_active = int((spread > c.active_threshold).sum())
        # metrics.json's active_units_max: with a small prior scale no latent passes the std criterion, while
        # this one gives the papers' counts (README, jiang-fig5); the title names both, as metrics.json does
        n_active_max = int((codes.abs().amax(dim=0) > c.active_threshold).sum()) if len(codes) else 0
        order, some = _fitting(order, data.image_shape)
        kind = "decoder columns" if c.decoder == "linear" else "atoms D(e_i) - D(0)"
        run = f" — {run_label(c, data.name)}"
        # metrics.json counts over the whole test split; a larger one is summarised by its first rows here
        rows = f" on the first {len(x):,} of {len(split):,} test rows" if len(x) < len(split) else ""
        paths = [
            atom_grid(model.atoms().cpu(), data.image_shape, out_dir / "atoms.png", order=order,
                      title=f"{kind}, by std of the posterior mean: {n_active} of {c.n_latents} active "
                            f"(std > {c.active_threshold:g}), {n_active_max} by max |mean| > "
                            f"{c.active_threshold:g}{rows}{some}{run}"),
        ]
        prior = sample_prior(c.prior, c.prior_scale, (64, c.n_latents), device=model.device)
        paths.append(image_grid(model.decode(prior).cpu(), data.image_shape, out_dir / "samples.png",
                                normalize="each", title=f"decoded samples of the prior{run}"))
        paths.append(_reconstructions(split, x, model.decode(codes[:16]), data.image_shape, out_dir,
                                      f"test inputs (top) over decoded posterior means{run}"))
        if c.n_latents == 2:
            labels = split.labels[: codes.shape[0]] if split.labels is not None else None
            paths.append(latent_scatter(codes.cpu(), labels, out_dir / "latent_scatter.png",
                                        title=f"test posterior locations{run}"))
            paths.append(data_latent_grid(lambda z: model.decode(z.to(model.device)).cpu(), codes.cpu(),
                                          data.image_shape, out_dir / "latent_grid.png",
                                          title=f"decoded latent grid{run}"))
    return paths
