"""Natural images: LCN (SPEC §2.8) against scipy, its statistics and inverse; whitening; patch sources."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from scipy.signal import correlate2d

from sparsecoder.data import load
from sparsecoder.data.images import gaussian_window, local_contrast_normalize, whiten
from tests.data.helpers import write_png_folder

BIG = ((220, 230), (210, 260), (240, 215))


def _gaussian_13():
    coords = np.arange(13) - 6.0
    g = np.exp(-(coords**2) / 50.0)  # σ = 5
    window = np.outer(g, g)
    return window / window.sum()


def test_gaussian_window_is_normalised_13x13_sigma5():
    np.testing.assert_allclose(gaussian_window().numpy(), _gaussian_13(), atol=1e-15)


def test_lcn_matches_a_direct_scipy_implementation():
    rng = np.random.default_rng(0)
    crops = rng.standard_normal((4, 52, 52)) * rng.uniform(0.01, 3, size=(4, 1, 1))
    crops[3] = 0.0  # flat crop: divisor falls back to 1e-4
    result = local_contrast_normalize(torch.from_numpy(crops))
    G = _gaussian_13()
    for k, x in enumerate(crops):
        m = correlate2d(x, G, mode="valid")  # 52 → 40
        v = x[6:-6, 6:-6] - m
        sigma = np.sqrt(correlate2d(v**2, G, mode="valid"))  # 40 → 28
        divisor = np.maximum(np.maximum(sigma, sigma.mean()), 1e-4)
        expected = v[6:-6, 6:-6] / divisor
        assert result.out[k].shape == (28, 28)
        np.testing.assert_allclose(result.out[k].numpy(), expected, atol=1e-9)
        np.testing.assert_allclose(result.divisor[k].numpy(), divisor, atol=1e-9)
        # the inverse is affine per pixel: crop(x) = out · divisor + crop(m)
        np.testing.assert_allclose((result.out[k] * result.divisor[k] + result.local_mean[k]).numpy(),
                                   x[12:-12, 12:-12], atol=1e-9)


def test_lcn_output_has_zero_local_mean_and_unit_local_std_in_contrasted_regions():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:160, :160]
    envelope = 0.2 + 5 * (0.5 + 0.5 * np.sin(2 * np.pi * xx / 160) * np.cos(2 * np.pi * yy / 160))
    image = rng.standard_normal((160, 160)) * envelope + 3 * np.sin(xx / 15.0)  # contrast varies 25×
    out = local_contrast_normalize(torch.from_numpy(image[None])).out[0].numpy()
    G = _gaussian_13()
    local_mean = correlate2d(out, G, mode="valid")
    local_std = np.sqrt(correlate2d(out**2, G, mode="valid"))
    strong = (envelope >= 0.8 * envelope.max())[18:-18, 18:-18]  # out is offset 12, the window 6 more
    assert strong.sum() > 300
    # zero local mean up to the sampling noise of a ~300-pixel window (the input's local mean swings ±3)
    assert np.abs(local_mean).mean() < 0.05 and np.abs(local_mean).max() < 0.25
    assert abs(local_std[strong].mean() - 1) < 0.05
    assert 0.85 < local_std[strong].min() and local_std[strong].max() < 1.15
    # before LCN the local std follows the envelope (from ~0.2 to ~5)
    raw_std = np.sqrt(correlate2d((image - correlate2d(image, G, "same")) ** 2, G, mode="valid"))
    assert raw_std.max() / raw_std.min() > 10


def _one_over_f_image(n=256, seed=0):
    rng = np.random.default_rng(seed)
    f = np.sqrt(np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2)
    amplitude = np.where(f > 0, 1 / np.maximum(f, 1e-12), 0.0)
    phase = np.exp(2j * np.pi * rng.random((n, n)))
    return np.real(np.fft.ifft2(amplitude * phase)), f


def _radial_amplitude(image, f, bands):
    spectrum = np.abs(np.fft.fft2(image))
    return np.array([spectrum[(f >= lo) & (f < hi)].mean() for lo, hi in bands])


def test_whitening_flattens_the_spectrum_of_a_one_over_f_image():
    image, f = _one_over_f_image()
    bands = [(lo, lo + 0.025) for lo in np.arange(0.025, 0.25, 0.025)]  # mid frequencies (cycles/pixel)
    before = _radial_amplitude(image, f, bands)
    after = _radial_amplitude(whiten(image), f, bands)
    assert before.max() / before.min() > 5  # 1/f: falls by ~9× over the bands
    assert after.max() / after.min() < 1.25  # whitened: roughly constant
    # and the f0 = 0.4 cycles/pixel roll-off: near Nyquist the whitened amplitude drops
    high = _radial_amplitude(whiten(image), f, [(0.45, 0.5)])
    assert high[0] < 0.75 * after.mean()


def test_whitening_leaves_no_bright_line_along_the_image_borders():
    # before: the FFT wrapped the image around, whitening the jump between its opposite edges into a line
    # along the borders (camera: outer 2 pixels at 2.4× the interior's RMS), which patches touching a border
    # carried at their own edge
    import skimage.data

    white = whiten(skimage.data.camera() / 255.0)
    outer = np.concatenate([white[:2].ravel(), white[-2:].ravel(), white[:, :2].ravel(),
                            white[:, -2:].ravel()])
    ratio = np.sqrt(np.mean(outer ** 2) / np.mean(white[8:-8, 8:-8] ** 2))
    assert ratio < 1.2


def _read(folder, names):
    return [np.asarray(Image.open(folder / name), dtype=np.float64) / 255 for name in names]


def test_lcn_patches_from_a_png_folder_round_trip_to_pixels(tmp_path):
    write_png_folder(tmp_path, BIG)
    data = load("patches", seed=0, data_dir=str(tmp_path), n_train=300, n_val=40, n_test=50)
    assert (len(data.train), len(data.val), len(data.test)) == (300, 40, 50)
    assert data.train.x.dtype == torch.float32 and data.train.x.shape == (300, 784)
    assert data.image_shape == (28, 28) and data.info["crop"] == 52
    assert data.train.scale.shape == (300, 784) and data.train.offset.shape == (300, 784)
    images = _read(tmp_path, data.info["images"])
    for key in ("train", "val", "test"):
        split = getattr(data, key)
        assert (split.x.std(dim=1) >= 0.5).all()
        pixels = split.to_pixels(split.x).numpy()
        for row, (i, top, left) in zip(pixels, data.info["crop_positions"][key], strict=True):
            expected = images[i][top + 12:top + 40, left + 12:left + 40].ravel()
            np.testing.assert_allclose(row, expected, atol=2e-5)
    # to_pixels of a slice uses the rows' own inverse maps
    np.testing.assert_allclose(data.val.to_pixels(data.val.x[5:9], slice(5, 9)).numpy(),
                               data.val.to_pixels(data.val.x).numpy()[5:9], atol=1e-6)


def test_patch_splits_come_from_disjoint_regions_and_are_seeded(tmp_path):
    write_png_folder(tmp_path, BIG)
    a = load("patches", seed=4, data_dir=str(tmp_path), n_train=200, n_val=30, n_test=30, patch_size=12)
    b = load("patches", seed=4, data_dir=str(tmp_path), n_train=200, n_val=30, n_test=30, patch_size=12)
    c = load("patches", seed=5, data_dir=str(tmp_path), n_train=200, n_val=30, n_test=30, patch_size=12)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.offset, b.test.offset)
    assert not torch.equal(a.train.x, c.train.x)
    limited = load("patches", seed=4, data_dir=str(tmp_path), n_train=200, n_val=30, n_test=30, patch_size=12,
                   limit=50)
    assert len(limited.train) == 50  # the limit changes neither the regions nor the val/test patches
    assert torch.equal(limited.val.x, a.val.x) and torch.equal(limited.test.x, a.test.x)
    assert a.train.x.shape == (200, 144) and a.info["crop"] == 36
    covered = {}
    for key in ("train", "val", "test"):
        masks = [np.zeros(shape, bool) for shape in BIG]
        for i, top, left in a.info["crop_positions"][key]:
            masks[i][top:top + 36, left:left + 36] = True
        covered[key] = masks
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not any((m1 & m2).any() for m1, m2 in zip(covered[first], covered[second], strict=True))


def test_embedded_photographs_patches():
    data = load("patches", seed=0, n_train=200, n_val=20, n_test=20)
    assert data.info["origin"] == "embedded" and len(data.info["images"]) >= 12
    pixels = data.test.to_pixels(data.test.x)
    assert pixels.min() >= -1e-4 and pixels.max() <= 1 + 1e-4


def _write_mat(path, n_images=3, side=64, seed=0):
    stack = np.random.default_rng(seed).standard_normal((side, side, n_images)) * 0.3
    scipy.io.savemat(path, {"IMAGES": stack})
    return stack


def test_whitened_patches_from_images_mat_are_used_as_stored(tmp_path):
    stack = _write_mat(tmp_path / "IMAGES.mat")
    data = load("whitened_patches", seed=0, data_dir=str(tmp_path / "IMAGES.mat"), n_train=100, n_val=10,
                n_test=10, patch_size=8)
    assert data.train.x.shape == (100, 64) and data.image_shape == (8, 8)
    assert "as stored" in data.normalization
    for key in ("train", "test"):
        split = getattr(data, key)
        for row, (i, top, left) in zip(split.x.numpy(), data.info["crop_positions"][key], strict=True):
            np.testing.assert_allclose(row, stack[top:top + 8, left:left + 8, i].ravel(), atol=1e-6)


def test_blank_images_of_an_images_mat_are_skipped_naming_them_as_a_folders_are(tmp_path):
    # before: two all-zero slices padding IMAGES.mat made a third of the whitened patches all zeros, silently
    # (a folder's blank images were already skipped with a warning)
    stack = _write_mat(tmp_path / "IMAGES.mat")
    padded = np.concatenate([stack, np.zeros((64, 64, 2))], axis=2)
    scipy.io.savemat(tmp_path / "IMAGES.mat", {"IMAGES": padded})
    with pytest.warns(UserWarning, match=r"skipped 2 constant image\(s\) of 5, which hold no contrast.*: "
                                         r"IMAGES\[:, :, 3\], IMAGES\[:, :, 4\]"):
        data = load("whitened_patches", seed=0, data_dir=str(tmp_path / "IMAGES.mat"), n_train=300, n_val=10,
                    n_test=10, patch_size=8)
    assert data.info["skipped_images"] == ["IMAGES[:, :, 3]", "IMAGES[:, :, 4]"]
    assert data.train.x.abs().amax(dim=1).min() > 0  # no flat patch
    scipy.io.savemat(tmp_path / "blank.mat", {"IMAGES": np.full((64, 64, 2), 0.5)})
    with pytest.raises(ValueError, match="every image is constant"):
        load("whitened_patches", data_dir=str(tmp_path / "blank.mat"), patch_size=8)


@pytest.mark.parametrize("scale", [1e38, 1e20, 1e-200])
def test_images_mat_whose_values_float32_cannot_hold_is_refused_naming_it(tmp_path, scale):
    # before: values of 1e38 gave whitened patches of inf (cast to float32), 1e20 patches whose squares
    # overflow in the loss, 1e-200 "every image is constant" (whitened_patches) or "every pixel has the same
    # value" (patches: np.std squares the values, 1e-400 is 0), and patches' float32 inverse (to_pixels) inf/0
    stack = _write_mat(tmp_path / "IMAGES.mat") / 0.3 * scale
    scipy.io.savemat(tmp_path / "IMAGES.mat", {"IMAGES": stack})
    for source in ("whitened_patches", "patches"):
        with pytest.raises(ValueError, match=r"IMAGES\.mat: IMAGES has pixel variance .* outside 1e-30 to "
                                             r"1e\+30.*rescale IMAGES"):
            load(source, data_dir=str(tmp_path / "IMAGES.mat"), patch_size=4, n_train=10)
    scipy.io.savemat(tmp_path / "IMAGES.mat", {"IMAGES": stack / scale * 1e-10})  # float32 holds it
    data = load("patches", data_dir=str(tmp_path / "IMAGES.mat"), patch_size=4, n_train=10, n_val=5, n_test=5)
    assert data.train.x.isfinite().all() and 0 < data.info["global_std"] < 1e-9


def test_images_mat_whose_layout_cannot_be_told_is_refused_and_mat_layout_says_it(tmp_path):
    """A k×H×W stack (np.stack of 3 images of 64×64, saved by savemat) was read as 64 images of 3×64."""
    from sparsecoder.data.images import read_olshausen_mat

    path = tmp_path / "IMAGES.mat"
    stack = np.random.default_rng(0).standard_normal((3, 64, 64)) * 0.3
    scipy.io.savemat(path, {"IMAGES": stack})
    with pytest.raises(ValueError, match=r"IMAGES has shape \(3, 64, 64\), whose layout cannot be told: 64 "
                                         r"images of 3×64 .* or 3 images of 64×64 .*mat_layout: HWk or kHW"):
        load("whitened_patches", data_dir=str(path), n_train=50, n_val=10, n_test=10, patch_size=8)
    images, names = read_olshausen_mat(path, "HWk")  # said explicitly, either layout is read
    assert len(images) == 64 and images[0].shape == (3, 64)
    data = load("whitened_patches", data_dir=str(path), n_train=50, n_val=10, n_test=10, patch_size=8,
                mat_layout="kHW")
    assert data.info["images"] == ["IMAGES[0]", "IMAGES[1]", "IMAGES[2]"]
    for row, (i, top, left) in zip(data.train.x.numpy(), data.info["crop_positions"]["train"], strict=True):
        np.testing.assert_allclose(row, stack[i, top:top + 8, left:left + 8].ravel(), atol=1e-6)
    with pytest.raises(ValueError, match="mat_layout='kHW' is for an IMAGES.mat data_dir only"):
        load("patches", mat_layout="kHW")  # the embedded photographs: nothing to lay out
    with pytest.raises(ValueError, match="mat_layout must be one of auto, HWk, kHW, got 'HKW'"):
        load("whitened_patches", data_dir=str(path), mat_layout="HKW")


def test_whitened_patches_from_a_folder_have_the_documented_variance(tmp_path):
    write_png_folder(tmp_path, BIG)
    data = load("whitened_patches", seed=0, data_dir=str(tmp_path), n_train=2000, n_val=100, n_test=100)
    assert data.train.x.shape == (2000, 256)
    assert abs(data.train.x.var().item() - 0.1) < 0.02  # each whitened image scaled to variance 0.1


def test_lcn_patches_from_images_mat_invert_to_the_stored_values(tmp_path):
    stack = _write_mat(tmp_path / "IMAGES.mat", side=128)
    data = load("patches", seed=0, data_dir=str(tmp_path / "IMAGES.mat"), n_train=50, n_val=10, n_test=10)
    pixels = data.train.to_pixels(data.train.x).numpy()
    for row, (i, top, left) in zip(pixels, data.info["crop_positions"]["train"], strict=True):
        np.testing.assert_allclose(row, stack[top + 12:top + 40, left + 12:left + 40, i].ravel(), atol=1e-4)


def test_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load("patches", data_dir=str(tmp_path / "missing"))
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("no images")
    with pytest.raises(ValueError, match="no JPEG/PNG images"):
        load("patches", data_dir=str(tmp_path / "empty"))
    write_png_folder(tmp_path / "small", ((40, 45), (30, 50), (44, 44)))
    with pytest.raises(ValueError, match="larger than every image"):
        load("patches", data_dir=str(tmp_path / "small"))
    with pytest.raises(ValueError, match="larger than every image"):
        load("whitened_patches", data_dir=str(tmp_path / "small"), patch_size=64)
    broken = tmp_path / "broken"
    write_png_folder(broken, BIG)
    target = broken / "class0" / "img0.png"
    target.write_bytes(target.read_bytes()[:200])
    with pytest.raises(ValueError, match="img0.png.*corrupt or truncated"):
        load("patches", data_dir=str(broken))
    scipy.io.savemat(tmp_path / "other.mat", {"X": np.zeros((4, 4))})
    with pytest.raises(ValueError, match="no variable 'IMAGES'"):
        load("whitened_patches", data_dir=str(tmp_path / "other.mat"))
    good = tmp_path / "IMAGES.mat"
    _write_mat(good)
    (tmp_path / "cut.mat").write_bytes(good.read_bytes()[:300])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load("whitened_patches", data_dir=str(tmp_path / "cut.mat"))
    with pytest.raises(ValueError, match="patch_size must be an integer"):
        load("patches", patch_size=0)
    with pytest.raises(ValueError, match="n_val must be a positive integer"):
        load("patches", n_val=0)
    with pytest.raises(ValueError, match="min_std must be a number"):
        load("patches", min_std=-1)



def test_images_mat_larger_than_memory_is_refused_from_its_header(tmp_path, monkeypatch):
    """A compressed IMAGES.mat inflated whatever it declared: a few kB of zlib can declare terabytes."""
    import sparsecoder.util as util_module

    path = tmp_path / "IMAGES.mat"
    scipy.io.savemat(path, {"IMAGES": np.zeros((512, 512, 10)), "junk": np.zeros((4, 4))},
                     do_compression=True)
    assert path.stat().st_size < 100_000  # 20 MiB of float64 zeros, compressed
    monkeypatch.setattr(util_module, "physical_memory", lambda: 2**20)  # a machine of 1 MiB
    inflated = []
    monkeypatch.setattr(scipy.io, "loadmat", lambda *a, **k: inflated.append(a))  # must not be reached
    with pytest.raises(ValueError, match=r"IMAGES \(double of shape 512×512×10, read and converted to "
                                         r"float64\) need .* GiB, more than this machine's .*smaller"):
        load("whitened_patches", data_dir=str(path), n_train=10, n_val=2, n_test=2)
    assert inflated == []


def _mat_values():
    import scipy.sparse

    images = np.random.default_rng(0).standard_normal((64, 64, 2))
    cell = np.empty((1, 2), dtype=object)  # a MATLAB cell array {image1, image2}
    cell[0, 0], cell[0, 1] = images[:, :, 0], images[:, :, 1]
    return {  # what IMAGES holds → fragment of the message
        "cell": (cell, "is a cell array"),
        "struct": ({"first": images[:, :, 0]}, "is a struct"),
        "sparse": (scipy.sparse.csc_matrix(images[:, :, 0]), r"is a sparse matrix.*full\(IMAGES\)"),
        "text": ("IMAGES", r"is text \(a char array\)"),
        "complex": (images * (1 + 0.5j), r"is complex \(complex128\).*real\(IMAGES\)"),
        "empty": (np.zeros((64, 64, 0)), r"has shape \(64, 64, 0\): no images"),
    }


@pytest.mark.parametrize("kind", ["cell", "struct", "sparse", "text", "complex", "empty"])
@pytest.mark.parametrize("source", ["patches", "whitened_patches"])
def test_images_mat_holding_anything_but_real_numeric_images_is_refused_naming_it(tmp_path, kind, source):
    value, message = _mat_values()[kind]
    path = tmp_path / "IMAGES.mat"
    scipy.io.savemat(path, {"IMAGES": value})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the imaginary part used to be dropped with only a ComplexWarning
        with pytest.raises(ValueError, match=f"{path}: IMAGES {message}"):
            load(source, data_dir=str(path), n_train=50, n_val=10, n_test=10, patch_size=8)


def test_a_matlab_v73_file_is_named_as_such_not_as_corrupt(tmp_path):
    path = tmp_path / "IMAGES.mat"  # the 128-byte MAT header of an HDF5-based v7.3 file (version 0x0200)
    path.write_bytes(b"MATLAB 7.3 MAT-file".ljust(116) + b"\0" * 8 + b"\x00\x02IM" + b"\0" * 512)
    with pytest.raises(ValueError, match=r"IMAGES.mat: cannot read this .mat file.*-v7"):
        load("whitened_patches", data_dir=str(path))


def test_image_folder_reads_16_bit_and_upper_case_names_and_max_images(tmp_path):
    from sparsecoder.data.images import read_image_folder

    write_png_folder(tmp_path, BIG)
    deep = (np.arange(90 * 100, dtype=np.uint16).reshape(90, 100) * 7)
    (tmp_path / "x" / "y").mkdir(parents=True)
    Image.fromarray(deep).save(tmp_path / "x" / "y" / "DEEP.PNG")
    images, names = read_image_folder(tmp_path)
    assert names[-1] == "x/y/DEEP.PNG" and len(names) == 4
    np.testing.assert_allclose(images[-1], deep / 65535.0, atol=1e-12)
    data = load("patches", seed=0, data_dir=str(tmp_path), n_train=50, n_val=10, n_test=10, max_images=2)
    assert len(data.info["images"]) == 2 and set(data.info["images"]) < set(names)
    with pytest.raises(ValueError, match="max_images must be a positive integer"):
        load("patches", data_dir=str(tmp_path), max_images=0)


@pytest.mark.parametrize("source", ["patches", "whitened_patches"])
def test_images_smaller_than_the_crop_are_named_not_dropped_silently(tmp_path, source):
    # before: a 5×5 image and a 30-pixel-high panorama gave no patch, without a word, and were still listed
    # in info["images"]
    write_png_folder(tmp_path, BIG)
    Image.fromarray(np.zeros((5, 5), np.uint8), mode="L").save(tmp_path / "tiny.png")
    Image.fromarray((np.arange(30 * 900) % 251).astype(np.uint8).reshape(30, 900), mode="L").save(
        tmp_path / "wide.png")
    crop = 52 if source == "patches" else 32
    with pytest.warns(UserWarning, match=rf"2 of 5 images are smaller than the {crop}×{crop} crop .*: "
                                         r"tiny.png \(5×5\), wide.png \(30×900\); choose a smaller "
                                         r"patch_size"):
        data = load(source, seed=0, data_dir=str(tmp_path), n_train=50, n_val=10, n_test=10,
                    patch_size=28 if source == "patches" else 32)
    used = {int(i) for positions in data.info["crop_positions"].values() for i in positions[:, 0]}
    names = data.info["images"]
    assert {names[i] for i in used} <= set(names) - {"tiny.png", "wide.png"}


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_an_exif_orientation_tag_is_applied(tmp_path, suffix):
    # before: a portrait photograph stored sideways with orientation 6 (rotate 90° clockwise to view) was read
    # sideways, turning its horizontal structure into vertical filters
    from sparsecoder.data.images import read_image_folder

    stored = np.zeros((20, 40), np.uint8)
    stored[:5] = 255  # a bright band along the top as stored: along the right edge as viewed
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / f"portrait.{suffix}", exif=exif)
    (image,), _ = read_image_folder(tmp_path)
    assert image.shape == (40, 20)
    np.testing.assert_allclose(image, np.rot90(stored, k=-1) / 255.0, atol=0.05)
    if suffix == "png":  # an EXIF block that cannot be parsed: the pixels are still read, as stored
        import struct
        import zlib

        raw = (tmp_path / "portrait.png").read_bytes()
        start = raw.index(b"eXIf") - 4
        end = start + 12 + struct.unpack(">I", raw[start:start + 4])[0]
        body = b"eXIfgarbage"
        chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
        (tmp_path / "portrait.png").write_bytes(raw[:start] + chunk + raw[end:])
        with pytest.warns(UserWarning, match=r"portrait.png: unreadable EXIF metadata .*read as stored"):
            (image,), _ = read_image_folder(tmp_path)
        np.testing.assert_allclose(image, stored / 255.0)


def test_a_folder_named_like_a_mat_file_is_an_image_folder(tmp_path):
    from sparsecoder.data.images import read_olshausen_mat

    write_png_folder(tmp_path / "photos.mat", BIG)
    data = load("whitened_patches", data_dir=str(tmp_path / "photos.mat"), n_train=50, n_val=10, n_test=10)
    assert data.info["origin"] == "folder"
    with pytest.raises(ValueError, match="photos.mat is a folder; give the IMAGES.mat file itself"):
        read_olshausen_mat(tmp_path / "photos.mat")


def test_whitened_patches_skip_a_constant_image_naming_it_instead_of_filling_patches_with_nan(tmp_path):
    write_png_folder(tmp_path, BIG)
    Image.fromarray(np.full((200, 210), 128, np.uint8), mode="L").save(tmp_path / "class0" / "blank.png")
    with pytest.warns(UserWarning, match=r"skipped 1 constant image\(s\) of 4.*class0/blank.png"):
        data = load("whitened_patches", seed=0, data_dir=str(tmp_path), n_train=500, n_val=50, n_test=50)
    assert data.info["skipped_images"] == ["class0/blank.png"]
    assert "class0/blank.png" not in data.info["images"] and len(data.info["images"]) == 3
    for split in (data.train, data.val, data.test):
        assert torch.isfinite(split.x).all()
    assert abs(data.train.x.var().item() - 0.1) < 0.02  # the kept images are scaled as documented
    (tmp_path / "flat").mkdir()
    for k in range(2):
        Image.fromarray(np.full((100, 100), 40 * k, np.uint8), mode="L").save(tmp_path / "flat" / f"{k}.png")
    with pytest.raises(ValueError, match="flat: every image is constant"):
        load("whitened_patches", data_dir=str(tmp_path / "flat"))
    with pytest.raises(ValueError, match="larger than every image"):  # a 1×1 image is constant, but too small
        load("whitened_patches", data_dir=str(tmp_path / "flat"), patch_size=200)


def test_image_folder_follows_linked_folders_once_and_skips_hidden_files(tmp_path):
    # audit 2026-11-29: folders linked in (ImageNet class folders on another disk) were skipped without a
    # word ("holds no JPEG/PNG images"); '._x.png' resource forks were read as corrupt images and
    # '.ipynb_checkpoints' copies (or a linked alias) put the same pixels in two splits; a dangling link's
    # image was lost silently
    from sparsecoder.data.images import read_image_folder

    store, root = tmp_path / "store", tmp_path / "root"
    write_png_folder(store, BIG)
    root.mkdir()
    (root / "linked").symlink_to(store / "class0", target_is_directory=True)
    (root / "twice").symlink_to(store / "class0", target_is_directory=True)  # the same folder again
    (root / "real").mkdir()
    (root / "real" / "loop").symlink_to(root, target_is_directory=True)
    (root / "real" / "alias.png").symlink_to(store / "class1" / "img1.png")
    (root / "real" / "._alias.png").write_bytes(b"\0\5\26\7 AppleDouble resource fork")
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "copy.png").write_bytes((store / "class1" / "img1.png").read_bytes())
    images, names = read_image_folder(root)
    assert names == ["linked/img0.png", "linked/img2.png", "real/alias.png"]
    np.testing.assert_array_equal(images[2] * 255, np.asarray(Image.open(store / "class1" / "img1.png")))
    (root / "real" / "gone.png").symlink_to(tmp_path / "missing.png")
    with pytest.raises(ValueError, match=r"real/gone.png: a symbolic link to a missing file"):
        read_image_folder(root)
    (root / "real" / "gone.png").unlink()
    (root / "real" / "self.png").symlink_to("self.png")  # before: OSError 'Too many levels of symbolic links'
    with pytest.raises(ValueError, match=r"real/self.png: cannot read this file's status \(Too many levels "
                                         r"of symbolic links\); fix the file \(or link\) or move it out"):
        read_image_folder(root)


def test_an_image_folder_that_cannot_fit_in_memory_is_refused_from_the_headers_alone(tmp_path):
    # before: every image was decoded first (hours for an ImageNet folder, then out of memory); here 2,000
    # headers of 80-megapixel PNGs (640 MB each as float64: 1.3 TB) with no pixel data
    import struct
    import zlib

    from sparsecoder.data.images import read_image_folder

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10000, 8000, 8, 0, 0, 0, 0))
    for k in range(2000):
        (tmp_path / f"{k:04d}.png").write_bytes(header + chunk(b"IEND", b""))
    with pytest.raises(ValueError, match=r"its 2,000 images \(160,000,000,000 pixels as float64\) need "
                                         r"1,192\.1 GiB, more than .*max_images"):
        read_image_folder(tmp_path)


def test_image_modes_that_convert_to_no_grayscale_are_named(tmp_path):
    # a TIFF named .png is read by its content; before: float pixels in [0, 1] became black (0) without a
    # word, and LAB pixels raised Pillow's "conversion from LAB to RGB not supported", naming no file
    from sparsecoder.data.images import read_image_folder

    rng = np.random.default_rng(0)
    floats = Image.fromarray(rng.random((40, 40)).astype(np.float32), "F")
    cases = {"float": (floats, "32-bit floating-point"),
             "lab": (Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).convert("LAB"),
                     "cannot convert its LAB pixels to grayscale")}
    for name, (image, message) in cases.items():
        (tmp_path / name).mkdir()
        image.save(tmp_path / name / "a.png", format="TIFF")
        with pytest.raises(ValueError, match=rf"{name}/a.png: {message}.*save the image as 8- or 16-bit"):
            read_image_folder(tmp_path / name)


def test_degenerate_patch_requests_are_named_before_any_patch_is_drawn(tmp_path):
    # audit 2026-11-29: equal pixels have a rounding std of ~1e-16, so 'patches' drew 10k crops and blamed
    # min_std; variance=inf (or true) filled whitened patches with NaN; asking for more patches than a
    # split's regions hold repeated them without a word
    (tmp_path / "flat").mkdir()
    for k in range(3):
        Image.fromarray(np.full((60, 60), 100, np.uint8), mode="L").save(tmp_path / "flat" / f"{k}.png")
    with pytest.raises(ValueError, match=r"flat: every pixel has the same value \(std [0-9.e+-]+\)"):
        load("patches", data_dir=str(tmp_path / "flat"), n_train=10, n_val=5, n_test=5)
    write_png_folder(tmp_path / "tiny", ((10, 10), (10, 10), (10, 10)))
    for variance in (float("inf"), True, 0, 1e31, 1e-300):  # 1e-300: patches all 0 in float32, before
        with pytest.raises(ValueError, match="variance must be a positive number at most 1e"):
            load("whitened_patches", data_dir=str(tmp_path / "tiny"), patch_size=4, variance=variance)
    with pytest.warns(UserWarning, match=r"test: 60 patches asked for, but the test regions hold only 49 "
                                         r"distinct 4×4 crops, so patches repeat"):
        load("whitened_patches", data_dir=str(tmp_path / "tiny"), patch_size=4, n_train=40, n_val=5,
             n_test=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load("whitened_patches", data_dir=str(tmp_path / "tiny"), patch_size=4, n_train=49, n_val=5, n_test=5)


def test_patch_counts_beyond_this_machines_memory_are_refused_before_any_image_is_read(tmp_path):
    # audit 2026-11-29: n_train=2**40 read and whitened every image, then died in a MemoryError (or the OOM
    # killer) while drawing the patches
    for source, what in (("whitened_patches", "patches of 16×16"), ("patches", r"patches of 28×28 \(with"),
                         ("cifar_patches", "patches of 12×12")):
        with pytest.raises(ValueError, match=rf"1,000,000,000,010 {what}.* GiB, more than this machine's "
                                             r".* GiB of memory; ask for fewer"):
            load(source, data_dir=str(tmp_path / "not read") if source != "cifar_patches" else None,
                 n_train=10**12, n_val=5, n_test=5)


def test_16_bit_pixels_that_pillow_9_opens_as_mode_i_are_scaled_not_clipped():
    # audit 2026-11-29: Pillow 9 (allowed: pillow>=9.0) opens a 16-bit grayscale PNG as mode "I"; only "I;16"
    # was scaled by 65535, "I" went through convert("L"), which clips every value above 255 to white
    from sparsecoder.data.images import grayscale_pixels

    deep = np.arange(100, dtype=np.int32).reshape(10, 10) * 650
    np.testing.assert_allclose(grayscale_pixels(Image.fromarray(deep, mode="I"), "x.png"), deep / 65535.0)
    with pytest.raises(ValueError, match=r"x.png: integer pixels from 0 to 70000, outside the 16-bit range"):
        grayscale_pixels(Image.fromarray(np.array([[0, 70000]], dtype=np.int32), mode="I"), "x.png")
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 1] = 255
    np.testing.assert_allclose(grayscale_pixels(Image.fromarray(rgb), "c.png"), 0.587, atol=0.003)
