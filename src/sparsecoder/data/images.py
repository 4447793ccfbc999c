"""Natural images: grayscale photographs, Olshausen–Field whitening, local contrast normalisation, patches.

Sources (SPEC §2.8, §4, §6):

* the photographs shipped inside scikit-image (``skimage.data``) and scikit-learn's two sample images
  (default, offline);
* a folder of JPEG/PNG files, searched recursively (ImageNet-style);
* Olshausen's ``IMAGES.mat`` (key ``IMAGES``, ``H×W×k``, already whitened; ``mat_layout`` says the layout
  where the shape cannot, see :func:`read_olshausen_mat`).

Train/val/test patches come from **disjoint regions** of every image: each image is cut into square
blocks (side ``2 × crop``, the last row/column of blocks absorbs the remainder) and each block is
assigned to one split by a seeded shuffle, in proportion to the requested split sizes; a patch (crop)
lies entirely inside one block, so no pixel is shared between splits.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from sparsecoder.data.base import DataSplits, Split, check_rows_fit
from sparsecoder.data.preprocessing import Identity, NotRowWise
from sparsecoder.nn.sizes import check_size

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # compared in lower case

# skimage.data photographs that are part of the wheel (no download); motorcycle_left is the left view
# of skimage.data.stereo_motorcycle().
SKIMAGE_PHOTOS = (
    "astronaut", "brick", "camera", "chelsea", "coffee", "grass", "gravel", "hubble_deep_field", "moon",
    "motorcycle_left", "rocket", "coins", "clock",
)
LCN_WINDOW = 13
LCN_SIGMA = 5.0
LCN_BORDER = 2 * (LCN_WINDOW - 1)  # two valid convolutions remove 12 pixels each: crop = patch + 24
LCN_MIN_STD = 0.5
FLAT_WHITENED_STD = 1e-8  # a constant image whitens to rounding noise (~1e-17); a photograph to ~1e-2
FLAT_STD = 1e-8  # relative pixel std of images that are all one value (rounding: ~1e-16)
MAX_VARIANCE = 1e30  # whitened pixels scaled beyond this overflow float32 once squared in a model
MIN_VARIANCE = 1e-30  # below, squared pixels underflow float32 (1e-300: every patch is exactly 0 in float32)
SPLITS = ("train", "val", "test")
FEWER_PATCHES = "ask for fewer (n_train, n_val, n_test, or limit for the training split)"


# ----------------------------------------------------------------------------------------------- images


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """Grayscale float64 in [0, 1] from uint8/bool/float (H×W, H×W×3 or H×W×4; alpha dropped).

    Colour uses the ITU-R 601 luminance ``0.299 R + 0.587 G + 0.114 B``.
    """
    array = np.asarray(image)
    if array.dtype == bool:
        array = array.astype(np.float64)
    elif np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float64) / float(np.iinfo(array.dtype).max)
    else:
        array = array.astype(np.float64)
    if array.ndim == 3:
        if array.shape[2] == 4:
            array = array[..., :3]
        if array.shape[2] != 3:
            raise ValueError(f"image of shape {array.shape} is neither grayscale nor RGB(A)")
        array = array @ np.array([0.299, 0.587, 0.114])
    if array.ndim != 2:
        raise ValueError(f"image of shape {array.shape} is neither grayscale nor RGB(A)")
    return array


def embedded_photographs() -> tuple[list[np.ndarray], list[str]]:
    """The scikit-image and scikit-learn photographs as grayscale float64 images in [0, 1], with names."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    images, names = [], []
    for name in SKIMAGE_PHOTOS:
        if name == "motorcycle_left":
            image = skimage.data.stereo_motorcycle()[0]
        else:
            image = getattr(skimage.data, name)()
        images.append(to_grayscale(image))
        names.append(f"skimage.data.{name}")
    sample = load_sample_images()
    for image, filename in zip(sample.images, sample.filenames, strict=True):
        images.append(to_grayscale(image))
        names.append(f"sklearn sample {Path(filename).name}")
    return images, names


def read_image_folder(directory: Path, max_images: int | None = None,
                      seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Every JPEG/PNG under ``directory`` (recursive, sorted paths) as grayscale float64 in [0, 1].

    ``max_images`` reads only a seeded random subset of that many files (for ImageNet-sized folders).
    16-bit PNGs are scaled by 65535; other modes go through Pillow's ``convert("L")`` (ITU-R 601 luma).
    An EXIF orientation tag (a camera's portrait photograph stored sideways) is applied, so every image is
    read upright, as a viewer shows it: the orientation of the learned filters is that of the scene.
    """
    from PIL import Image, UnidentifiedImageError

    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder {directory} does not exist")
    paths = image_paths(directory)
    if not paths:
        raise ValueError(f"image folder {directory} holds no JPEG/PNG images (searched recursively for "
                         f"{', '.join(IMAGE_SUFFIXES)})")
    if max_images is not None and len(paths) > max_images:
        chosen = np.random.default_rng(seed).choice(len(paths), size=max_images, replace=False)
        paths = [paths[i] for i in sorted(chosen)]

    def read(path: Path, decode: bool):
        """The grayscale pixels of ``path`` (``decode``), else its header's ``(width, height)``."""
        try:
            with warnings.catch_warnings():  # Pillow only warns between 1x and 2x its pixel limit
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                handle = Image.open(path)
            with handle:
                _check_image_size(path, handle.size)
                if not decode:
                    return handle.size
                handle.load()
                return grayscale_pixels(_upright(handle, path), path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ValueError(f"{path}: {err}; refusing to decode it (a corrupt or hostile header)") from None
        except PermissionError:
            raise ValueError(f"{path}: cannot read image (permission denied); make it readable or move it "
                             f"out of the folder") from None
        except (OSError, UnidentifiedImageError, SyntaxError) as err:
            raise ValueError(f"{path}: cannot read image ({err}); the file is corrupt or truncated") from None

    # headers first (no pixel decoded): a folder that cannot fit is refused before hours of decoding
    pixels = sum(width * height for width, height in (read(path, decode=False) for path in paths))
    check_rows_fit(pixels, 8, f"{directory}: its {len(paths):,} images ({pixels:,} pixels as float64)",
                   "read a seeded subset of them with the data option max_images (e.g. max_images: 2000)")
    images = [read(path, decode=True) for path in paths]
    return images, [str(p.relative_to(directory)) for p in paths]


def _upright(image, path):
    """``image`` turned by its EXIF orientation tag, as a viewer shows it; an image whose EXIF block cannot be
    parsed (its pixels decoded fine) is read as stored, with a warning naming it."""
    import struct

    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except (SyntaxError, ValueError, OSError, struct.error) as err:
        warnings.warn(f"{path}: unreadable EXIF metadata ({err}); the image is read as stored, without its "
                      f"orientation tag", UserWarning, stacklevel=3)
        return image


def image_paths(directory: Path) -> list[Path]:
    """The JPEG/PNG files below ``directory``, sorted: searched recursively, following symbolic links to
    folders (each real folder is read once, so a link loop ends and a folder linked twice is not read
    twice) and reading each real file once (a linked alias of an image would put the same pixels in two
    splits). Hidden files and folders (names starting with ``.``: macOS ``._x.jpg`` resource forks,
    ``.ipynb_checkpoints`` copies) are skipped. A folder that cannot be listed or a link to a missing file
    is an error naming it (its images would be lost without a word)."""

    def unreadable(err: OSError):
        raise ValueError(f"{err.filename}: cannot list this folder ({err.strerror}); make it readable or "
                         f"move it out of the image folder")

    folders, files = set(), {}
    for root, subfolders, names in os.walk(directory, onerror=unreadable, followlinks=True):
        folder = os.stat(root)
        if (folder.st_dev, folder.st_ino) in folders:
            subfolders[:] = []
            continue
        folders.add((folder.st_dev, folder.st_ino))
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))  # first link wins
        for name in names:
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                status = path.stat()
            except FileNotFoundError:
                raise ValueError(f"{path}: a symbolic link to a missing file ({os.readlink(path)}); fix or "
                                 f"remove the link") from None
            except OSError as err:  # a loop of links (ELOOP), a name too long, an I/O error
                raise ValueError(f"{path}: cannot read this file's status ({err.strerror}); fix the file (or "
                                 f"link) or move it out of the image folder") from None
            if stat.S_ISREG(status.st_mode):
                files.setdefault((status.st_dev, status.st_ino), []).append(path)
    return sorted(min(aliases) for aliases in files.values())


def grayscale_pixels(image, path) -> np.ndarray:
    """The pixels of the decoded Pillow ``image`` (of file ``path``) as grayscale float64 in [0, 1].

    16-bit grayscale is scaled by 65535: Pillow opens such a PNG as ``I;16`` (Pillow >= 10) or as 32-bit
    ``I`` (Pillow 9), and ``convert("L")`` would clip every value above 255 to white; other modes go through
    ``convert("L")`` (ITU-R 601 luma; palette, alpha and bilevel included)."""
    if image.mode == "I" or image.mode.startswith("I;16"):
        pixels = np.asarray(image, dtype=np.float64)
        if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
            raise ValueError(f"{path}: integer pixels from {pixels.min():g} to {pixels.max():g}, outside the "
                             "16-bit range 0–65535; save the image as 8- or 16-bit grayscale")
        return pixels / 65535.0
    if image.mode == "F":  # convert("L") would clip floats in [0, 1] to the grey levels 0 and 1: black
        raise ValueError(f"{path}: 32-bit floating-point pixels (a TIFF); save the image as 8- or 16-bit "
                         "grayscale or RGB (JPEG/PNG)")
    try:
        grey = image.convert("L")
    except ValueError as err:  # modes Pillow cannot convert (LAB, …)
        raise ValueError(f"{path}: cannot convert its {image.mode} pixels to grayscale ({err}); save the "
                         "image as 8- or 16-bit grayscale or RGB (JPEG/PNG)") from None
    return to_grayscale(np.asarray(grey))


def _check_image_size(path: Path, size: tuple[int, int]) -> None:
    """Refuse an image whose header claims more pixels than Pillow's decompression-bomb limit
    (``PIL.Image.MAX_IMAGE_PIXELS``, 89.5 megapixels), before any pixel is decoded."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS or 89_478_485
    width, height = size
    if width * height > limit:
        raise ValueError(f"{path}: the header claims {width}×{height} pixels ({width * height / 1e6:.0f} "
                         f"megapixels), more than the {limit / 1e6:.1f}-megapixel limit; refusing to decode "
                         f"it (corrupt or hostile header, or downscale the image)")


MatLayout = Literal["auto", "HWk", "kHW"]
MAT_LAYOUTS = ("auto", "HWk", "kHW")


def _check_mat_layout(layout) -> None:
    if layout not in MAT_LAYOUTS:
        raise ValueError(f"mat_layout must be one of {', '.join(MAT_LAYOUTS)}, got {layout!r}")


def _read_mat(path: Path, read, **options):
    """``read(path, **options)`` (``scipy.io.whosmat`` or ``loadmat``), its failures as ValueErrors naming
    the file and the fix."""
    try:
        return read(path, **options)
    except NotImplementedError as err:  # scipy reads MATLAB v4–v7.2 files only
        raise ValueError(f"{path}: cannot read this .mat file ({err}); save it from MATLAB as version 7 "
                         "(save('IMAGES.mat', 'IMAGES', '-v7'))") from None
    except Exception as err:  # scipy raises ValueError, TypeError, MatReadError… for broken files
        raise ValueError(f"{path}: cannot read .mat file ({err}); the file is corrupt or truncated") from None


# bytes per element of a MATLAB class as scipy.io.whosmat names it (anything else counted as 8)
_MAT_CLASS_BYTES = {"double": 8, "single": 4, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4,
                    "uint32": 4, "int64": 8, "uint64": 8, "logical": 1}


def read_olshausen_mat(path: Path, layout: MatLayout = "auto") -> tuple[list[np.ndarray], list[str]]:
    """Olshausen's ``IMAGES.mat``: key ``IMAGES`` of shape ``H×W×k`` (10 whitened 512×512 images).

    ``IMAGES`` must be a full real numeric array (double, single, integer or logical) with at least one
    pixel; a cell array, struct, sparse matrix, text or complex values are refused naming what it holds
    (``np.asarray(..., float64)`` would drop an imaginary part silently). A 2-D array is one image.

    ``layout`` says how a 3-D array holds its images: ``"HWk"`` (Olshausen's, MATLAB's ``cat(3, ...)``) or
    ``"kHW"`` (``np.stack`` of images saved by ``scipy.io.savemat``). ``"auto"`` reads ``H×W×k`` when ``k``,
    the last dimension, is smaller than both others (512×512×10) and otherwise refuses the array: its layout
    cannot be told from its shape (a 20×64×64 stack of 20 images would read as 64 images of 20×64).
    """
    import scipy.io
    import scipy.sparse

    _check_mat_layout(layout)
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the IMAGES.mat file itself")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    # the variables' headers first (scipy inflates only their first bytes): a compressed IMAGES whose
    # declared size cannot fit in memory is refused before it is inflated (a few kB of zlib can declare
    # terabytes), and only IMAGES is read
    listed = {name: (shape, kind) for name, shape, kind in _read_mat(path, scipy.io.whosmat)}
    if "IMAGES" not in listed:
        raise ValueError(f"{path}: no variable 'IMAGES' (found {list(listed)}); expected Olshausen's "
                         "IMAGES.mat")
    shape, kind = listed["IMAGES"]
    if kind != "sparse":  # (a sparse matrix's shape is not its size; it is refused below)
        check_rows_fit(math.prod(shape), _MAT_CLASS_BYTES.get(kind, 8) + 8,
                       f"{path}: IMAGES ({kind} of shape {'×'.join(map(str, shape))}, read and converted to "
                       "float64)", "give a smaller IMAGES.mat")
    content = _read_mat(path, scipy.io.loadmat, variable_names=["IMAGES"])
    if "IMAGES" not in content:  # listed by its header, but not read (a damaged file)
        raise ValueError(f"{path}: cannot read the variable IMAGES; the file is corrupt or truncated")
    value = content["IMAGES"]
    expected = "expected a full real numeric H×W×k array of images"
    if scipy.sparse.issparse(value):
        raise ValueError(f"{path}: IMAGES is a sparse matrix; {expected} (save full(IMAGES))")
    value = np.asarray(value)
    if value.dtype.kind not in "biuf":
        what = {"c": f"complex ({value.dtype})", "O": "a cell array", "U": "text (a char array)",
                "S": "text (a char array)", "V": "a struct"}.get(value.dtype.kind, f"of dtype {value.dtype}")
        if value.dtype.names is not None:
            what = "a struct"
        fix = " (save real(IMAGES) or abs(IMAGES))" if value.dtype.kind == "c" else ""
        raise ValueError(f"{path}: IMAGES is {what}; {expected}{fix}")
    stack = value.astype(np.float64)
    if stack.ndim == 2:
        stack = stack[:, :, None]
    if stack.ndim != 3:
        raise ValueError(f"{path}: IMAGES has shape {stack.shape}; expected H×W×k")
    if layout == "auto" and stack.size and not stack.shape[2] < min(stack.shape[:2]):
        h, w, k = stack.shape
        raise ValueError(f"{path}: IMAGES has shape {stack.shape}, whose layout cannot be told: {k} images "
                         f"of {h}×{w} (H×W×k, Olshausen's) or {h} images of {w}×{k} (k×H×W, as np.stack "
                         f"makes them); say which with data_options mat_layout: HWk or kHW")
    if layout == "kHW" and value.ndim == 3:
        stack = np.moveaxis(stack, 0, -1)
    if stack.size == 0:
        raise ValueError(f"{path}: IMAGES has shape {stack.shape}: no images; {expected} with H, W, k >= 1")
    if not np.isfinite(stack).all():
        raise ValueError(f"{path}: IMAGES contains NaN or inf")
    std = mean_std(stack)[1]
    if std and not MIN_VARIANCE <= std * std <= MAX_VARIANCE:  # std 0: constant, refused by the sources
        raise ValueError(f"{path}: IMAGES has pixel variance {std * std:.3g}, outside {MIN_VARIANCE:g} to "
                         f"{MAX_VARIANCE:g}: its float32 patches (and their squares in a model's loss) would "
                         "overflow or underflow; Olshausen's whitened images have variance 0.1 — rescale "
                         "IMAGES (e.g. IMAGES / std(IMAGES(:)) * sqrt(0.1))")
    name = "IMAGES[{}]" if layout == "kHW" and value.ndim == 3 else "IMAGES[:, :, {}]"
    return [stack[:, :, k].copy() for k in range(stack.shape[2])], [name.format(k) for k in
                                                                    range(stack.shape[2])]


def read_images(data_dir: str | Path | None, max_images: int | None = None, seed: int = 0,
                mat_layout: MatLayout = "auto") -> tuple[list[np.ndarray], list[str], str]:
    """(images, names, origin): embedded photographs, an ``IMAGES.mat`` file or an image folder;
    ``mat_layout`` (see :func:`read_olshausen_mat`) is for an ``IMAGES.mat`` only."""
    _check_mat_layout(mat_layout)
    path = None if data_dir is None else Path(data_dir)
    # a folder named x.mat holds images
    is_mat = path is not None and path.suffix.lower() == ".mat" and not path.is_dir()
    if mat_layout != "auto" and not is_mat:
        raise ValueError(f"mat_layout={mat_layout!r} is for an IMAGES.mat data_dir only, and data_dir is "
                         f"{'not set (the embedded photographs)' if path is None else path}; leave it out")
    if path is None:
        images, names = embedded_photographs()
        return images, names, "embedded"
    if is_mat:
        images, names = read_olshausen_mat(path, mat_layout)
        return images, names, "mat"
    if not path.exists():
        raise FileNotFoundError(f"data_dir {path} does not exist (give an image folder or IMAGES.mat file)")
    if path.is_file():
        raise ValueError(f"data_dir {path} is a file; give a folder of JPEG/PNG images or an IMAGES.mat file")
    images, names = read_image_folder(path, max_images, seed)
    return images, names, "folder"


# ------------------------------------------------------------------------------------------- whitening


def whiten(image: np.ndarray, f0_fraction: float = 0.4) -> np.ndarray:
    """Olshausen–Field whitening of one grayscale image (SPEC §4).

    Multiplies the 2-D spectrum by ``R(f) = f · exp(−(f/f0)^4)`` with ``f`` the radial frequency and
    ``f0 = 0.4·N`` cycles/image for an ``N×N`` image (200 for 512×512). Frequencies are measured in
    cycles/pixel here (``f0 = f0_fraction`` cycles/pixel), which is the same filter for square images and
    scales it naturally to rectangular ones. The image mean is removed first (``R(0) = 0``).

    The image is filtered mirrored to twice its size (``np.pad(..., mode="symmetric")``) and cropped back: the
    FFT treats it as periodic, and an image's left and right (top and bottom) edges do not meet, so the plain
    transform whitened that jump into a bright line along the borders (2.5× the RMS of the interior in their
    outer 2 pixels, on average over the embedded photographs), which the ~3 % of 16×16 patches touching a
    border carried at their own edge. The mirrored image has no jump; the interior is unchanged (correlation
    0.9997).
    """
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape
    mirrored = np.pad(image - image.mean(), ((0, h), (0, w)), mode="symmetric")
    fy = np.fft.fftfreq(2 * h)[:, None]
    fx = np.fft.fftfreq(2 * w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    response = f * np.exp(-((f / f0_fraction) ** 4))
    return np.real(np.fft.ifft2(np.fft.fft2(mirrored) * response))[:h, :w]


# ------------------------------------------------------------------------------ local contrast normalisation


def gaussian_window(size: int = LCN_WINDOW, sigma: float = LCN_SIGMA) -> torch.Tensor:
    """Normalised ``size×size`` Gaussian window (sums to 1)."""
    import torch

    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    window = g[:, None] * g[None, :]
    return window / window.sum()


@dataclass
class LCNResult:
    """LCN output and the per-pixel affine inverse ``x_center = out · divisor + local_mean``."""

    out: torch.Tensor  # (n, h − 24, w − 24)
    divisor: torch.Tensor  # (n, h − 24, w − 24): max(σ_map, mean σ_map of the image, 1e−4)
    local_mean: torch.Tensor  # (n, h − 24, w − 24): G ⋆ x, cropped to the output


def local_contrast_normalize(images: torch.Tensor, window: int = LCN_WINDOW, sigma: float = LCN_SIGMA,
                             eps: float = 1e-4) -> LCNResult:
    """Local contrast normalisation of SPEC §2.8 on a batch of images ``(n, h, w)``.

    With ``G`` the normalised ``13×13`` Gaussian (σ = 5) and ``⋆`` a *valid* convolution::

        m = G ⋆ x                       (h, w) → (h − 12, w − 12)
        v = crop(x) − m
        σ_map = sqrt(G ⋆ v²)            → (h − 24, w − 24)
        out = crop(v) / max(σ_map, mean(σ_map), eps)

    where ``mean(σ_map)`` is taken per image (the released code takes it over the batch, which makes a
    patch depend on its batch-mates). 52×52 crops become 28×28 patches. The map is affine per pixel:
    ``crop(x) = out · divisor + crop(m)``, which :class:`LCNResult` keeps for the inverse.
    """
    import torch

    if images.dim() != 3:
        raise ValueError(f"images must be (n, h, w), got shape {tuple(images.shape)}")
    border = window - 1
    if images.shape[1] <= 2 * border or images.shape[2] <= 2 * border:
        raise ValueError(f"images {tuple(images.shape[1:])} are too small for LCN: need sides > {2 * border}")
    g = gaussian_window(window, sigma)[window // 2]
    g = g / g.sum()  # the 2-D window is separable: G = g gᵀ

    def band(size: int) -> torch.Tensor:
        # valid 1-D correlation with g as a (size, size − window + 1) banded matrix: fast BLAS on CPU/GPU
        matrix = torch.zeros(size, size - window + 1, dtype=torch.float64)
        for j in range(size - window + 1):
            matrix[j:j + window, j] = g
        return matrix.to(images.device, images.dtype)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return band(t.shape[1]).T @ t @ band(t.shape[2])

    half = border // 2
    local_mean = blur(images)
    centred = images[:, half:-half, half:-half] - local_mean
    local_std = torch.sqrt(blur(centred**2).clamp_min(0))
    centred = centred[:, half:-half, half:-half]
    mean_std = local_std.mean(dim=(1, 2), keepdim=True)
    divisor = torch.maximum(torch.maximum(local_std, mean_std), torch.full_like(local_std, eps))
    return LCNResult(out=centred / divisor, divisor=divisor, local_mean=local_mean[:, half:-half, half:-half])


# ------------------------------------------------------------------------------------------ patch sampling


def split_counts(n_train: int, n_val: int, n_test: int, limit: int | None,
                 row_bytes: int | None = None, what: str = "samples") -> tuple[dict, dict]:
    """(requested split sizes, sizes to draw = requested with ``limit`` capping the training split).

    ``row_bytes``: the bytes each drawn sample holds in memory (all of the source's arrays); sizes that do
    not fit in this machine's memory are refused (:func:`~sparsecoder.data.base.check_rows_fit`), naming
    ``what`` one sample is."""
    requested = {"train": n_train, "val": n_val, "test": n_test}
    for key, value in requested.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"n_{key} must be a positive integer, got {value!r}")
    sizes = dict(requested)
    if limit is not None:
        sizes["train"] = min(sizes["train"], limit)
    if row_bytes is not None:
        total = sum(sizes.values())
        check_rows_fit(total, row_bytes, f"{total:,} {what}",
                       FEWER_PATCHES)
    return requested, sizes


class RegionSampler:
    """Seeded crops from disjoint image regions, one region set per split (see the module docstring)."""

    def __init__(self, images: list[np.ndarray], crop: int, counts: dict[str, int], seed: int,
                 names: list[str] | None = None):
        self.images = images
        self.crop = crop
        usable = [i for i, image in enumerate(images) if min(image.shape) >= crop]
        if not usable:
            largest = max(images, key=lambda a: a.size).shape
            raise ValueError(
                f"patch crop {crop}×{crop} is larger than every image (largest {largest[0]}×{largest[1]}); "
                "choose a smaller patch_size"
            )
        if len(usable) < len(images):  # they hold no crop: say so rather than drop them without a word
            small = [f"{names[i] if names else f'image {i}'} ({images[i].shape[0]}×{images[i].shape[1]})"
                     for i in range(len(images)) if min(images[i].shape) < crop]
            warnings.warn(f"{len(small)} of {len(images)} images are smaller than the {crop}×{crop} crop in "
                          f"height or width and give no patches: {', '.join(small[:5])}"
                          f"{' …' if len(small) > 5 else ''}; choose a smaller patch_size to use them",
                          UserWarning, stacklevel=3)
        block = 2 * crop
        blocks = []  # (image, top, left, height, width)
        for i in usable:
            h, w = images[i].shape
            rows = [(r * block, block) for r in range(max(h // block, 1))]
            cols = [(c * block, block) for c in range(max(w // block, 1))]
            rows[-1] = (rows[-1][0], h - rows[-1][0])
            cols[-1] = (cols[-1][0], w - cols[-1][0])
            blocks += [(i, top, left, bh, bw) for top, bh in rows for left, bw in cols]
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(blocks))
        if len(blocks) < 3:
            raise ValueError(
                f"the images give only {len(blocks)} region(s) of {block}×{block} pixels; train/val/test "
                "need 3 disjoint regions: add images or choose a smaller patch_size"
            )
        total = sum(counts.values())
        n_val = max(1, round(len(blocks) * counts["val"] / total))
        n_test = max(1, round(len(blocks) * counts["test"] / total))
        n_train = len(blocks) - n_val - n_test
        if n_train < 1:
            n_train, n_val, n_test = len(blocks) - 2, 1, 1
        picked = {
            "train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:],
        }
        self.regions = {key: [blocks[j] for j in sorted(idx)] for key, idx in picked.items()}
        # one stream per split: val/test patches do not change with n_train or limit
        self.rngs = {key: np.random.default_rng([seed, k + 1]) for k, key in enumerate(SPLITS)}

    def warn_if_repeated(self, split: str, n: int) -> None:
        """Warn when ``n`` patches of ``split`` exceed the distinct crops its regions hold (they would repeat:
        the split's samples are drawn with replacement)."""
        distinct = sum((bh - self.crop + 1) * (bw - self.crop + 1) for *_, bh, bw in self.regions[split])
        if n > distinct:
            warnings.warn(f"{split}: {n} patches asked for, but the {split} regions hold only {distinct} "
                          f"distinct {self.crop}×{self.crop} crops, so patches repeat; add images, or ask "
                          f"for fewer or smaller patches", UserWarning, stacklevel=3)

    def sample(self, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` crops ``(n, crop, crop)`` uniformly over the positions inside the split's regions, and
        their positions ``(n, 3)``: image index, top row, left column."""
        regions, rng = self.regions[split], self.rngs[split]
        positions = np.array([(bh - self.crop + 1) * (bw - self.crop + 1) for *_, bh, bw in regions], float)
        which = rng.choice(len(regions), size=n, p=positions / positions.sum())
        out = np.empty((n, self.crop, self.crop), dtype=np.float32)
        where = np.empty((n, 3), dtype=np.int64)
        for k, r in enumerate(which):
            i, top, left, bh, bw = regions[r]
            y = top + rng.integers(0, bh - self.crop + 1)
            x = left + rng.integers(0, bw - self.crop + 1)
            out[k] = self.images[i][y:y + self.crop, x:x + self.crop]
            where[k] = (i, y, x)
        return out, where


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """``(mean, std)`` of the float64 ``values``, computed on the values scaled by the power of two nearest
    their peak, then scaled back: ``np.std`` squares the values themselves, so pixels of 1e200 gave an
    infinite std and pixels of 1e-200 a std of 0. A power of two scales exactly: for values of ordinary
    magnitude the result is bit for bit ``values.mean(), values.std()``."""
    peak = float(np.abs(values).max()) if values.size else 0.0
    if not 0 < peak < np.inf:
        return float(values.mean()) if values.size else 0.0, 0.0
    exponent = math.frexp(peak)[1]
    scaled = np.ldexp(values, -exponent)
    return math.ldexp(float(scaled.mean()), exponent), math.ldexp(float(scaled.std()), exponent)


def _check_max_images(max_images) -> int | None:
    if max_images is not None and (not isinstance(max_images, int) or isinstance(max_images, bool)
                                   or max_images < 1):
        raise ValueError(f"max_images must be a positive integer or null, got {max_images!r}")
    return max_images


def check_patch_size(patch_size, source: str) -> int:
    return check_size(f"the {source} source", "patch_size", patch_size, low=2)


# ---------------------------------------------------------------------------------------------- sources


def load_patches(*, seed: int = 0, limit: int | None = None, data_dir: str | None = None,
                 n_train: int = 20000, n_val: int = 2000, n_test: int = 2000, patch_size: int = 28,
                 min_std: float = LCN_MIN_STD, max_images: int | None = None,
                 mat_layout: MatLayout = "auto") -> DataSplits:
    """Family A natural-image patches: global normalisation → LCN (SPEC §2.8).

    Pixels in [0, 1] are normalised by the global mean and std of all images' pixels, ``(patch_size + 24)``
    crops are drawn (seeded, disjoint regions per split), LCN maps them to ``patch_size²`` patches and only
    patches with std ≥ ``min_std`` are kept. ``max_images`` reads a seeded subset of an image folder,
    ``mat_layout`` says how a 3-D ``IMAGES.mat`` holds its images (:func:`read_olshausen_mat`). Each split
    keeps the per-patch inverse ``pixels = x · (divisor·s) + (local_mean·s + μ)`` in
    ``Split.scale``/``Split.offset`` (n, d), so ``split.to_pixels`` returns pixel space [0, 1]. ``limit``
    caps ``n_train``. The paper used 200k/20k/20k ImageNet patches; the defaults build in a few seconds on
    a CPU.
    """
    import torch

    patch_size = check_patch_size(patch_size, "patches")
    # x, scale and offset: three float32 values per pixel
    requested, counts = split_counts(n_train, n_val, n_test, limit, 3 * 4 * patch_size**2,
                                     f"patches of {patch_size}×{patch_size} (with their inverse)")
    if isinstance(min_std, bool) or not isinstance(min_std, (int, float)) or not 0 <= min_std < 10:
        raise ValueError(f"min_std must be a number in [0, 10) (LCN output std is near 1), got {min_std!r}")
    images, names, origin = read_images(data_dir, _check_max_images(max_images), seed, mat_layout)
    pixels = np.concatenate([image.ravel() for image in images])
    mu, s = mean_std(pixels)
    # rounding leaves ~1e-16 of the pixels' magnitude where every pixel is equal (IMAGES.mat: any scale)
    if not s > FLAT_STD * float(np.abs(pixels).max()):
        raise ValueError(f"{data_dir or 'the images'}: every pixel has the same value (std {s:.1g}); nothing "
                         "to normalise — use images with contrast")
    # IMAGES.mat holds whitened images: "pixel space" is then whitened units, not [0, 1].
    normalised = [((image - mu) / s).astype(np.float32) for image in images]
    crop = patch_size + LCN_BORDER
    sampler = RegionSampler(normalised, crop, requested, seed, names)
    splits = {}
    kept_fraction, crop_positions = {}, {}
    for key in SPLITS:
        outs, scales, offsets, positions, drawn, passed = [], [], [], [], 0, 0
        need = counts[key]
        sampler.warn_if_repeated(key, need)
        while need > 0:
            rate = max(passed / drawn, 0.05) if drawn else 0.5
            batch = max(int(1.2 * need / rate), 256)
            if drawn + batch > 50 * counts[key] + 10000:
                raise ValueError(
                    f"too few {key} patches pass the LCN std >= {min_std} filter ({passed} of {drawn} "
                    "drawn); the images are too flat — lower min_std or use other images"
                )
            drawn += batch
            crops, where = sampler.sample(key, batch)
            result = local_contrast_normalize(torch.from_numpy(crops))
            out = result.out.reshape(batch, -1)
            keep = out.std(dim=1) >= min_std
            passed += int(keep.sum())
            outs.append(out[keep][:need])
            scales.append((result.divisor.reshape(batch, -1) * s)[keep][:need])
            offsets.append((result.local_mean.reshape(batch, -1) * s + mu)[keep][:need])
            positions.append(where[keep.numpy()][:need])
            need -= len(outs[-1])
        kept_fraction[key] = passed / drawn
        crop_positions[key] = np.concatenate(positions)
        splits[key] = Split(x=torch.cat(outs), scale=torch.cat(scales), offset=torch.cat(offsets))
    where = {"embedded": "skimage/sklearn photographs", "mat": f"{data_dir}", "folder": f"{data_dir}"}[origin]
    return DataSplits(
        name=f"patches ({where})", **splits, image_shape=(patch_size, patch_size),
        normalization=(
            f"grayscale [0,1] → (x − {mu:.4f}) / {s:.4f} (global) → LCN 13×13 Gaussian σ=5 "
            f"({crop}→{patch_size}), patches with std ≥ {min_std}; to_pixels inverts both"
        ),
        info={"images": names, "origin": origin, "global_mean": mu, "global_std": s, "crop": crop,
              "kept_fraction": kept_fraction, "crop_positions": crop_positions,
              "split_rule": f"disjoint {2 * crop}×{2 * crop} image regions per split (seeded)"},
        preprocessing=NotRowWise(
            "patches", f"local contrast normalisation divides each pixel by the contrast of its 13×13 "
            f"neighbourhood, so a {patch_size}×{patch_size} patch needs the {crop}×{crop} crop around it"),
    )


def load_whitened_patches(*, seed: int = 0, limit: int | None = None, data_dir: str | None = None,
                          n_train: int = 20000, n_val: int = 2000, n_test: int = 2000, patch_size: int = 16,
                          variance: float = 0.1, max_images: int | None = None,
                          mat_layout: MatLayout = "auto") -> DataSplits:
    """Family B: patches of Olshausen–Field whitened images (SPEC §4).

    Each grayscale image is whitened with ``R(f) = f·exp(−(f/f0)^4)``, ``f0 = 0.4·N`` cycles/image
    (:func:`whiten`), then scaled to pixel variance ``variance`` (0.1, Olshausen's convention for
    ``IMAGES.mat``). ``IMAGES.mat`` is already whitened and scaled and is used as stored. Seeded
    ``patch_size²`` patches come from disjoint regions per split; ``to_pixels`` is the identity
    (whitening is not inverted: samples live in whitened-image units). ``max_images`` reads a seeded
    subset of an image folder, ``mat_layout`` says how a 3-D ``IMAGES.mat`` holds its images
    (:func:`read_olshausen_mat`).

    A constant image (a blank frame: whitened std ≤ ``FLAT_WHITENED_STD`` = 1e−8, rounding noise, where a
    photograph's is about 1e−2) has no contrast to scale to ``variance`` — the division would fill its
    patches with NaN. It is skipped with a ``UserWarning`` naming it and listed in
    ``info["skipped_images"]`` (``info["images"]`` and the crop positions index the images kept); when
    every image is constant the source refuses to load.
    """
    patch_size = check_patch_size(patch_size, "whitened_patches")
    requested, counts = split_counts(n_train, n_val, n_test, limit, 4 * patch_size**2,
                                      f"patches of {patch_size}×{patch_size}")
    if (isinstance(variance, bool) or not isinstance(variance, (int, float))
            or not MIN_VARIANCE <= variance <= MAX_VARIANCE):
        raise ValueError(f"variance must be a positive number at most {MAX_VARIANCE:g} and at least "
                         f"{MIN_VARIANCE:g} (the pixel variance of the whitened images, in float32; "
                         f"Olshausen's is 0.1), got {variance!r}")
    images, names, origin = read_images(data_dir, _check_max_images(max_images), seed, mat_layout)
    stored = origin == "mat"  # IMAGES.mat is whitened and scaled already: used as stored
    whitened, kept, skipped = [], [], []
    for image, name in zip(images, names, strict=True):
        if min(image.shape) < patch_size:  # never cropped (RegionSampler names it)
            whitened.append(image.astype(np.float32))
            kept.append(name)
            continue
        w = image if stored else whiten(image)
        # constant: a blank frame of a folder whitens to rounding noise; a stored one (e.g. an all-zero slice
        # padding IMAGES.mat) varies by nothing beyond rounding of its own magnitude
        std = mean_std(w)[1]
        if not std > (FLAT_STD * np.abs(w).max() if stored else FLAT_WHITENED_STD):
            skipped.append(name)
            continue
        whitened.append((w if stored else w * np.sqrt(variance / w.var())).astype(np.float32))
        kept.append(name)
    if not whitened:
        raise ValueError(f"{data_dir}: every image is constant (no contrast); whitened patches need images "
                         "with contrast")
    if skipped:
        why = "hold no contrast (their patches would be flat)" if stored else \
            f"cannot be scaled to variance {variance}"
        listed = ", ".join(skipped[:5]) + (" …" if len(skipped) > 5 else "")
        warnings.warn(f"whitened_patches: skipped {len(skipped)} constant image(s) of {len(names)}, which "
                      f"{why}: {listed}", UserWarning, stacklevel=2)
    names = kept
    how = ("IMAGES.mat as stored (pre-whitened by Olshausen & Field)" if stored
           else f"whitened R(f)=f·exp(−(f/0.4N)^4), each image scaled to variance {variance}")
    splits, crop_positions = _plain_patches(whitened, patch_size, requested, counts, seed, names)
    return DataSplits(
        name=f"whitened_patches ({'embedded photographs' if origin == 'embedded' else data_dir})", **splits,
        image_shape=(patch_size, patch_size), normalization=how,
        info={"images": names, "skipped_images": skipped, "origin": origin,
              "crop_positions": crop_positions,
              "split_rule": f"disjoint {2 * patch_size}×{2 * patch_size} image regions per split (seeded)"},
        preprocessing=Identity() if origin == "mat" else NotRowWise(
            "whitened_patches", "whitening filters each whole photograph in the frequency domain and "
            "rescales it to the given variance"),
    )


def _plain_patches(images: list[np.ndarray], patch_size: int, requested: dict[str, int],
                   counts: dict[str, int], seed: int, names: list[str] | None = None):
    """Seeded patches as rows, no normalisation, and their crop positions, per split (regions are assigned
    in proportion to the ``requested`` sizes, ``counts`` patches are drawn)."""
    import torch

    sampler = RegionSampler(images, patch_size, requested, seed, names)
    splits, positions = {}, {}
    for key in SPLITS:
        sampler.warn_if_repeated(key, counts[key])
        crops, positions[key] = sampler.sample(key, counts[key])
        splits[key] = Split(x=torch.from_numpy(crops.reshape(counts[key], -1)))
    return splits, positions


def embedded_unit_patches(*, seed: int, requested: dict[str, int], counts: dict[str, int], patch_size: int):
    """Grayscale patches in [0, 1] of the embedded photographs (the CIFAR stand-in), disjoint regions:
    ``(splits, image names)``; ``counts`` from :func:`split_counts` with ``row_bytes`` ``4·patch_size²``
    (checked against this machine's memory there)."""
    images, names = embedded_photographs()
    splits, _ = _plain_patches([image.astype(np.float32) for image in images], patch_size, requested, counts,
                               seed)
    return splits, names
