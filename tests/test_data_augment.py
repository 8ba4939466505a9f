"""Batched augmentation ops: what each does, reproducibility, test-time views."""

import math

import pytest
import torch
import torch.nn.functional as F

from cnnzoo.data import ArrayDataset, build_augment, pca_basis, tta_views
from cnnzoo.data.augment import (
    color,
    cutout,
    erase,
    flip,
    pca_lighting,
    random_resized_crop,
    rotate,
    shear,
    warp,
)
from cnnzoo.errors import DataError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def batch(b=16, c=3, h=8, w=8, seed=0):
    return torch.rand(b, c, h, w, generator=gen(seed))


def test_empty_spec_is_none():
    assert build_augment(None) is None and build_augment("") is None


def test_flip_probability_one_mirrors_everything():
    x = batch()
    assert torch.equal(flip(x, gen(), p=1.0), x.flip(3))
    assert torch.equal(flip(x, gen(), p=0.0), x)


def test_flip_mixes_per_sample():
    x = batch(b=64)
    y = build_augment("flip", (8, 8))(x, gen())
    flipped = [torch.equal(y[i], x[i].flip(2)) for i in range(64)]
    kept = [torch.equal(y[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 54


@pytest.mark.parametrize("spec", ["crop:2", "flip,crop:2", "crop:2,flip"])
def test_crop_is_a_window_of_the_padded_image(spec):
    x = batch(b=32, h=6, w=7)
    y = build_augment(spec, (6, 7))(x, gen(3))
    assert y.shape == x.shape
    xp = F.pad(x, (2, 2, 2, 2))
    shifts, flips = set(), set()
    for i in range(32):
        views = {(dy, dx, f) for dy in range(5) for dx in range(5) for f in (0, 1)
                 if torch.equal(y[i], (xp[i].flip(2) if f else xp[i])[:, dy:dy + 6, dx:dx + 7])}
        assert views, f"sample {i} is not a window of its padded image"
        shifts |= {v[:2] for v in views}
        flips |= {v[2] for v in views}
    assert len(shifts) > 5  # offsets really vary
    assert flips == ({0, 1} if "flip" in spec else {0})


def test_crop_zero_is_identity():
    x = batch()
    assert torch.equal(build_augment("crop:0", (8, 8))(x, gen()), x)


def test_reproducible_from_seed_and_seed_matters():
    x = batch(b=8, h=16, w=16)
    aug = build_augment("flip,crop:4,rotate:10,shear:5,warp,color:0.1,pca:0.1,cutout:4,erase",
                        (16, 16), 3)
    a, b, c = aug(x, gen(7)), aug(x, gen(7)), aug(x, gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape


def test_rotate_zero_is_identity_and_180_reverses():
    x = batch(h=9, w=9)
    assert torch.allclose(rotate(x, gen(), 0.0), x, atol=1e-5)
    # rotating by exactly 180 degrees (U(-180,180) pinned by a tiny range around it)
    from cnnzoo.data.augment import _affine

    cos, sin = math.cos(math.pi), math.sin(math.pi)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]]).expand(16, 2, 3)
    assert torch.allclose(_affine(x, theta), x.flip(2, 3), atol=1e-5)


def test_rcrop_is_an_unpadded_window():
    x = batch(b=32, h=9, w=9)
    y = build_augment("rcrop:5", (9, 9))(x, gen(2))
    offsets = set()
    for i in range(32):
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if torch.equal(y[i], x[i, :, dy:dy + 5, dx:dx + 5])]
        assert len(hits) == 1, f"sample {i} is not a 5x5 window of its image"
        offsets |= set(hits)
    assert len(offsets) > 8  # the window moves


def test_rrc_and_rcrop_sizes():
    x = batch(b=4, h=40, w=40)
    assert build_augment("rrc:0.08", (24, 24))(x, gen()).shape == (4, 3, 24, 24)
    assert build_augment("rcrop:32", (40, 40))(x, gen()).shape == (4, 3, 32, 32)
    assert build_augment("rcrop:32,flip", (40, 40)).out_hw == (32, 32)
    with pytest.raises(DataError, match="rcrop:50 is larger"):
        build_augment("rcrop:50", (40, 40))


def test_color_shift_is_constant_per_channel():
    x = batch()
    y = build_augment("color:0.2", (8, 8))(x, gen())
    d = (y - x).flatten(2)
    assert torch.allclose(d, d[:, :, :1].expand_as(d), atol=1e-6)
    assert d.abs().max() <= 0.2 + 1e-6 and d.abs().max() > 0.01


def _colored_dataset(n=400, axis=(1.0, 1.0, 1.0)):
    """Pixels whose RGB covariance is known: colour varies along `axis` (default the grey
    axis (1, 1, 1)/sqrt3), plus small noise."""
    g = gen(0)
    a = torch.rand(n, 1, 4, 4, generator=g)
    x = 0.5 + (a - 0.5) * torch.tensor(axis).view(1, 3, 1, 1)
    x = x + 0.02 * torch.randn(n, 3, 4, 4, generator=g)
    return ArrayDataset((x.clamp(0, 1) * 255).round().to(torch.uint8),
                        torch.zeros(n, dtype=torch.long), ["a"], "colored")


def test_pca_basis_finds_the_dominant_colour_axis():
    eigval, eigvec = pca_basis(_colored_dataset())
    assert eigval[0] > 5 * eigval[1] and eigval[1] >= eigval[2]
    axis = eigvec[:, 0] * eigvec[:, 0].sign()[0]
    assert torch.allclose(axis, torch.full((3,), 3 ** -0.5), atol=0.02)
    assert torch.allclose(eigvec.T @ eigvec, torch.eye(3), atol=1e-4)


def test_pca_shift_lies_along_principal_components():
    ds = _colored_dataset()
    aug = build_augment("pca:0.5", (8, 8), 3, pca_from=ds)
    x = batch(b=32)
    d = (aug(x, gen()) - x).flatten(2)
    assert torch.allclose(d, d[:, :, :1].expand_as(d), atol=1e-6)  # same shift every pixel
    shift = d[:, :, 0]  # [B, 3]
    eigval, eigvec = pca_basis(ds)
    coef = shift @ eigvec  # coordinates along the components = alpha_i * lambda_i
    # dominant component carries most of the shift
    assert coef[:, 0].abs().mean() > 5 * coef[:, 1:].abs().mean()


def test_pca_from_uses_the_training_sets_own_basis():
    """A training set whose colours vary along red-minus-green (not ImageNet's grey-ish
    first component): the spec's `pca` shifts along that axis, sized by its own std."""
    ds = _colored_dataset(axis=(1.0, -1.0, 0.0))
    axis = torch.tensor([1.0, -1.0, 0.0]) / 2**0.5
    s = 0.5
    x = batch(b=512)
    shift = (build_augment(f"pca:{s}", (8, 8), 3, pca_from=ds)(x, gen()) - x)[:, :, 0, 0]
    cos = (shift @ axis).abs() / shift.norm(dim=1)
    assert cos.median() > 0.95  # along the data's axis, not ImageNet's
    std_along_axis = float(((ds.images.double() / 255).transpose(0, 1).flatten(1).T
                            @ axis.double()).std())
    assert (shift @ axis).std() == pytest.approx(s * std_along_axis, rel=0.15)


def test_pca_needs_basis_for_grayscale():
    with pytest.raises(DataError, match="pca on 1-channel"):
        build_augment("pca:0.1", (28, 28), 1)


def test_cutout_square():
    x = torch.ones(8, 3, 16, 16)
    x[0] = 0.0  # so the batch mean (the fill) is not 1
    y = cutout(x, gen(), 4)
    changed = (y != x).any(1)  # [B,H,W]
    for i in range(1, 8):
        n = int(changed[i].sum())
        assert 0 < n <= 16  # a (possibly border-clipped) 4x4 square
        rows, cols = changed[i].nonzero().T
        assert rows.max() - rows.min() < 4 and cols.max() - cols.min() < 4


def test_erase_probability():
    x = batch(b=64, h=16, w=16)
    assert torch.equal(erase(x, gen(), p=0.0), x)
    y = erase(x, gen(), p=1.0)
    assert all((y[i] != x[i]).any() for i in range(64))


def test_unknown_and_malformed_specs():
    with pytest.raises(DataError, match="unknown op 'blur'"):
        build_augment("flip,blur:3", (8, 8))
    with pytest.raises(DataError, match="bad number in 'crop:x'"):
        build_augment("crop:x", (8, 8))
    with pytest.raises(DataError, match="crop needs an amount, e.g. crop:4"):
        build_augment("crop", (8, 8))


def test_tta_views():
    x = batch(b=5, h=10, w=10)
    v, n = tta_views(x, "none")
    assert n == 1 and torch.equal(v, x)
    v, n = tta_views(x, "flip")
    assert n == 2 and torch.equal(v[5:], x.flip(3)) and torch.equal(v[:5], x)
    v, n = tta_views(x, "10crop", crop=8)
    assert n == 10 and v.shape == (50, 3, 8, 8)
    assert torch.equal(v[0:5], x[:, :, :8, :8])  # top-left corner, views-major
    assert torch.equal(v[5:10], x[:, :, :8, 2:])  # top-right
    assert torch.equal(v[10:15], x[:, :, 2:, :8])  # bottom-left
    assert torch.equal(v[15:20], x[:, :, 2:, 2:])  # bottom-right
    assert torch.equal(v[20:25], x[:, :, 1:9, 1:9])  # centre
    assert torch.equal(v[25:30], x[:, :, :8, :8].flip(3))  # first mirrored view
    v, n = tta_views(x, "10crop")  # pad by H//8, windows of the original size
    assert n == 10 and v.shape == (50, 3, 10, 10) and torch.equal(v[20:25], x)
    v, n = tta_views(x, "center", crop=6)
    assert torch.equal(v, x[:, :, 2:8, 2:8])
    with pytest.raises(DataError, match="unknown mode"):
        tta_views(x, "12crop")


# --- Each op checked against what it must do (each test fails for a plausible breakage). ---


def _coord_image(b, h, w):
    """Channel 0 holds each pixel's column, channel 1 its row (in pixels), channel 2 zero:
    bilinear resampling of a linear ramp is exact, so an op's output says where each output
    pixel was sampled from."""
    cols = torch.arange(w, dtype=torch.float32).expand(h, w)
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    return torch.stack([cols, rows, torch.zeros(h, w)]).expand(b, 3, h, w).clone()


def test_warp_zero_is_identity():
    x = batch(b=4, h=20, w=20)
    assert torch.allclose(warp(x, gen(), mag=0.0), x, atol=1e-5)


def test_warp_is_a_small_smooth_local_displacement():
    b, n, mag = 16, 48, 0.05
    x = _coord_image(b, n, n)
    y = warp(x, gen(1), mag=mag)
    m = 6  # border pixels may be clamped (padding_mode="border"); look inside
    d = (y - x)[:, :2, m:-m, m:-m]  # displacement in pixels, [B, 2, h, w]
    assert d.abs().mean() > 0.1  # it moves pixels
    assert d.abs().max() < 6 * mag * n / 2  # by a few knot standard deviations at most
    # smooth: neighbouring pixels move nearly alike (per-pixel noise would differ by ~|d|) ...
    for step in (d[..., 1:] - d[..., :-1], d[..., 1:, :] - d[..., :-1, :]):
        assert step.abs().mean() < 0.2 * d.abs().mean()
    # ... and local: the displacement varies across the image, not one global shift
    assert (d.flatten(2).std(2) > 0.2 * d.abs().mean()).float().mean() > 0.8
    assert not torch.allclose(d[0], d[1])  # and per image


def _fit_slope(img):
    """Column of the brightest pixel in each row -> slope d(column)/d(row) (least squares)."""
    rows = torch.arange(img.shape[0], dtype=torch.float32)
    cols = (img * torch.arange(img.shape[1])).sum(1) / img.sum(1)  # intensity centroid
    r, c = rows - rows.mean(), cols - cols.mean()
    return float((r * c).sum() / (r * r).sum())


def test_shear_slants_a_vertical_line():
    b, n, deg = 32, 33, 20.0
    x = torch.zeros(b, 1, n, n)
    x[:, :, :, n // 2] = 1.0  # a vertical line through the middle
    y = shear(x, gen(2), deg)
    slopes = torch.tensor([_fit_slope(y[i, 0, 6:-6]) for i in range(b)])
    t = math.tan(math.radians(deg))
    assert slopes.abs().max() <= t + 0.02  # at most the largest shear
    assert slopes.max() > 0.5 * t and slopes.min() < -0.5 * t  # both ways, clearly slanted
    assert len(set(slopes.round(decimals=3).tolist())) > b // 2  # a fresh angle per image
    # horizontal shear: the line stays a straight line (every row still hit once)
    assert (y[:, 0, 6:-6].sum(2) - 1).abs().max() < 1e-4


def test_rotate_moves_a_marker_by_an_angle_within_range():
    b, n, deg = 64, 32, 25.0
    x = torch.zeros(b, 1, n, n)
    x[:, :, 15:17, 26:28] = 1.0  # a 2x2 marker 11 px right of the centre (15.5, 15.5)
    y = rotate(x, gen(3), deg)[:, 0]
    ii = torch.arange(n, dtype=torch.float32)
    mass = y.sum((1, 2))
    cy = (y.sum(2) * ii).sum(1) / mass - 15.5
    cx = (y.sum(1) * ii).sum(1) / mass - 15.5
    angle = torch.rad2deg(torch.atan2(cy, cx))
    assert torch.allclose(torch.hypot(cx, cy), torch.full((b,), 11.0), atol=0.3)  # rotated
    assert angle.abs().max() <= deg + 1.0  # by at most DEG, either way
    assert angle.max() > deg / 2 and angle.min() < -deg / 2 and angle.std() > deg / 3


def _rrc_boxes(seed, min_scale=0.25, n=40, out=20, b=64):
    """Each output's source box (x0, y0, width, height) in input pixels."""
    y = random_resized_crop(_coord_image(b, n, n), gen(seed), min_scale, (out, out))
    # output pixel centres span (out-1)/out of the box; the ramps give their source coords
    w = (y[:, 0, :, -1] - y[:, 0, :, 0]).mean(1) * out / (out - 1)
    h = (y[:, 1, -1, :] - y[:, 1, 0, :]).mean(1) * out / (out - 1)
    x0 = y[:, 0, :, 0].mean(1) - w / (2 * out)
    y0 = y[:, 1, 0, :].mean(1) - h / (2 * out)
    return x0, y0, w, h


def test_rrc_boxes_are_random_and_respect_scale_and_ratio():
    n, min_scale = 40, 0.25
    x0, y0, w, h = _rrc_boxes(0, min_scale, n)
    area, ratio = w * h / n**2, w / h
    assert area.min() >= min_scale - 0.01 and area.max() <= 1.0 + 1e-4
    assert ratio.min() >= 3 / 4 - 0.01 and ratio.max() <= 4 / 3 + 0.01
    assert area.min() < 0.4 and area.max() > 0.8  # the whole scale range is used
    assert ratio.min() < 0.85 and ratio.max() > 1.15  # and the aspect range
    tol = 0.51  # half a pixel: the ramps are sampled at pixel centres
    assert x0.min() >= -tol and y0.min() >= -tol  # inside the image
    assert (x0 + w).max() <= n + tol and (y0 + h).max() <= n + tol
    assert len(set(x0.round().tolist())) > 5 and len(set(y0.round().tolist())) > 5
    assert not torch.allclose(_rrc_boxes(1, min_scale, n)[2], w)  # the seed matters


def test_pca_basis_eigval_is_the_std_along_each_component():
    ds = _colored_dataset()
    eigval, eigvec = pca_basis(ds)
    x = ds.images.double().div(255).transpose(0, 1).reshape(3, -1)
    variances = torch.linalg.eigvalsh(torch.cov(x)).flip(0)  # descending
    assert torch.allclose(eigval.double() ** 2, variances, rtol=1e-3, atol=1e-7)
    assert torch.allclose((x.T @ eigvec.double()).std(0), eigval.double(), rtol=1e-3)


def test_pca_shift_std_along_each_component_is_s_times_eigval():
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen(4)))  # an orthonormal basis
    eigval, s = torch.tensor([0.3, 0.1, 0.03]), 0.2
    x = torch.rand(4000, 3, 2, 2, generator=gen(5))
    d = pca_lighting(x, gen(6), s, eigval, q) - x
    assert torch.allclose(d, d[:, :, :1, :1].expand_as(d), atol=1e-6)  # one shift per image
    along = d[:, :, 0, 0] @ q  # the shift's coordinates on each component
    assert torch.allclose(along.std(0), s * eigval, rtol=0.06)
    assert along.mean(0).abs().max() < 3 * s * eigval[0] / 4000**0.5  # zero-mean
    corr = torch.corrcoef(along.T)
    assert (corr - torch.eye(3)).abs().max() < 0.06  # independent per component


def test_erase_changes_exactly_one_rectangle():
    b, n = 64, 20
    x = batch(b=b, h=n, w=n)
    y = erase(x, gen(7), p=1.0)
    changed = y != x  # [B, C, H, W]
    assert torch.equal(changed, changed[:, :1].expand_as(changed))  # all channels alike
    areas, ratios = [], []
    for i in range(b):
        rows, cols = changed[i, 0].nonzero().T
        bh, bw = int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1
        assert bh * bw == len(rows), f"image {i}: changed pixels are not one filled rectangle"
        areas.append(bh * bw / n**2)
        ratios.append(bh / bw)
    assert 0.02 - 0.01 <= min(areas) and max(areas) <= 0.4 + 0.06  # area 0.02..0.4 (rounded)
    assert max(areas) > 0.2 and min(areas) < 0.1
    assert min(ratios) >= 0.3 / 1.5 and max(ratios) <= 3.3 * 1.5  # aspect 0.3..3.3 (rounded)


def test_color_shift_differs_per_channel():
    s = 0.2
    x = batch(b=64)
    d = (color(x, gen(8), s) - x)[:, :, 0, 0]  # [B, C]: one shift per image and channel
    assert (d.std(1) > 0.02).float().mean() > 0.9  # channels shifted differently
    assert d.min() < -0.7 * s and d.max() > 0.7 * s and d.abs().max() <= s + 1e-6
    assert torch.corrcoef(d.T).sub(torch.eye(3)).abs().max() < 0.4  # independently
