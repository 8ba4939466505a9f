"""Batched augmentation ops: what each does, reproducibility, test-time views."""

import math

import pytest
import torch
import torch.nn.functional as F

from cnnzoo.data import ArrayDataset, build_augment, pca_basis, tta_views
from cnnzoo.data.augment import cutout, erase, flip, rotate
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


def _colored_dataset(n=400):
    """Pixels whose RGB covariance is known: colour = a * (1, 1, 1)/sqrt3 + small noise."""
    g = gen(0)
    a = torch.rand(n, 1, 4, 4, generator=g)
    x = a.expand(n, 3, 4, 4) + 0.02 * torch.randn(n, 3, 4, 4, generator=g)
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
    assert torch.equal(v[15:20], x[:, :, 2:, 2:])  # bottom-right
    assert torch.equal(v[20:25], x[:, :, 1:9, 1:9])  # centre
    assert torch.equal(v[25:30], x[:, :, :8, :8].flip(3))  # first mirrored view
    v, n = tta_views(x, "10crop")  # pad by H//8, windows of the original size
    assert n == 10 and v.shape == (50, 3, 10, 10) and torch.equal(v[20:25], x)
    v, n = tta_views(x, "center", crop=6)
    assert torch.equal(v, x[:, :, 2:8, 2:8])
    with pytest.raises(DataError, match="unknown mode"):
        tta_views(x, "12crop")
