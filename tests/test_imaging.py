"""Filters and convolution (seed 001): kernels, padding, filter2d, image files, `cnnzoo filter`."""

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.imaging import (
    filter2d,
    get_kernel,
    gradient_magnitude,
    list_kernels,
    load_image,
    load_kernel_file,
    pad,
    reference_conv2d,
    save_image,
)

# ---------------------------------------------------------------------------- the seed

def test_seed_worked_example():
    x = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]], dtype=torch.float32)
    k = [[0, 1], [2, 3]]
    assert filter2d(x, k).tolist() == [[19, 25], [37, 43]]
    assert reference_conv2d(x, k).tolist() == [[19, 25], [37, 43]]


def test_gaussian5_is_the_seed_table():
    table = torch.tensor([[1, 4, 7, 4, 1], [4, 16, 26, 16, 4], [7, 26, 41, 26, 7],
                          [4, 16, 26, 16, 4], [1, 4, 7, 4, 1]], dtype=torch.float32)
    g = get_kernel("gaussian5")
    assert torch.allclose(g, table / 273)
    assert g.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_seed_sobel_kernels():
    assert get_kernel("sobel-x").tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert get_kernel("sobel-y").tolist() == [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]


def test_kernel_bank():
    names = list_kernels()
    for n in ["sobel-x", "sobel-y", "prewitt-x", "prewitt-y", "laplacian", "gaussian5",
              "gaussian", "box", "sharpen", "identity", "emboss"]:
        assert n in names
    assert torch.allclose(get_kernel("box:5"), torch.full((5, 5), 1 / 25))
    g = get_kernel("gaussian:1.5:9")
    assert g.shape == (9, 9) and g.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(g, g.T) and torch.equal(g, g.flip(0)) and g.argmax() == 40
    with pytest.raises(CnnzooError, match="'sobel' is the pair sobel-x and sobel-y"):
        get_kernel("sobel")  # not one kernel: gradient_magnitude
    with pytest.raises(CnnzooError, match=r"unknown kernel 'sobol'; choose from .*, sobel$"):
        get_kernel("sobol")
    with pytest.raises(CnnzooError, match="bad kernel arguments"):
        get_kernel("box:x")


# ---------------------------------------------------------------------------- filtering

def test_sobel_x_on_a_vertical_step_edge():
    img = torch.zeros(8, 8)
    img[:, 4:] = 1.0  # dark left, bright right: edge between columns 3 and 4
    out = filter2d(img, get_kernel("sobel-x"))  # valid: output column j covers cols j..j+2
    assert out.shape == (6, 6)
    # windows straddling the edge start at columns 2 and 3; everything else sees a flat patch
    assert (out[:, 2:4] == 4).all()
    assert (out[:, :2] == 0).all() and (out[:, 4:] == 0).all()
    assert (filter2d(img, get_kernel("sobel-y")) == 0).all()  # no horizontal edge
    assert (filter2d(1 - img, get_kernel("sobel-x"))[:, 2:4] == -4).all()  # bright->dark


def test_blur_reduces_noise_variance():
    noise = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    for k in ["gaussian5", "box:5", "gaussian:2"]:
        blurred = filter2d(noise, get_kernel(k), pad=2, pad_mode="reflect")
        assert blurred.var() < 0.3 * noise.var()


def test_padding_modes_by_hand():
    row = torch.tensor([[1.0, 2, 3]])
    assert pad(row, (0, 1), "reflect").tolist() == [[2, 1, 2, 3, 2]]
    assert pad(row, (0, 1), "replicate").tolist() == [[1, 1, 2, 3, 3]]
    assert pad(row, (0, 1), "circular").tolist() == [[3, 1, 2, 3, 1]]
    assert pad(row, (0, 1), "zeros").tolist() == [[0, 1, 2, 3, 0]]
    assert pad(row, (0, 2), "constant", value=9).tolist() == [[9, 9, 1, 2, 3, 9, 9]]
    sq = torch.tensor([[1.0, 2], [3, 4]])
    assert pad(sq, 1, "zeros").tolist() == [[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0],
                                            [0, 0, 0, 0]]
    assert pad(sq, 1, "replicate").tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4],
                                                [3, 3, 4, 4]]
    assert pad(torch.zeros(2, 3, 4, 5), 2).shape == (2, 3, 8, 9)
    with pytest.raises(ShapeError, match="reflect"):
        pad(sq, 2, "reflect")
    with pytest.raises(ShapeError, match="pad mode"):
        pad(sq, 1, "mirror")


@pytest.mark.parametrize("f", [3, 5, 7])
def test_same_padding_keeps_size(f):
    x = torch.rand(3, 11, 13)
    out = filter2d(x, torch.rand(f, f), pad=(f - 1) // 2, pad_mode="reflect")
    assert out.shape == x.shape


def test_does_not_fit():
    with pytest.raises(ShapeError, match=r"does not fit.*\(7 - 3 \+ 2\*0\)/3 \+ 1 = 2\.33"):
        filter2d(torch.rand(7, 7), torch.rand(3, 3), stride=3)
    assert filter2d(torch.rand(7, 7), torch.rand(3, 3), stride=3, strict=False).shape == (2, 2)
    assert filter2d(torch.rand(7, 7), torch.rand(3, 3), stride=2).shape == (3, 3)
    with pytest.raises(ShapeError, match="does not fit"):
        filter2d(torch.rand(3, 3), torch.rand(5, 5), strict=False)
    assert filter2d(torch.rand(3, 3), torch.rand(5, 5), pad=1).shape == (1, 1)


@pytest.mark.parametrize("stride, p, mode", [(1, 0, "zeros"), (2, 1, "zeros"),
                                             (3, 2, "reflect"), (2, 1, "replicate"),
                                             (1, 2, "circular")])
def test_filter2d_equals_the_loop(stride, p, mode):
    g = torch.Generator().manual_seed(stride * 10 + p)
    x = torch.randn(2, 3, 9, 10, generator=g)
    k = torch.randn(3, 4, generator=g)
    out = filter2d(x, k, stride=stride, pad=p, pad_mode=mode, strict=False)
    for b in range(2):
        for c in range(3):
            ref = reference_conv2d(x[b, c], k, stride=stride, pad=p, pad_mode=mode)
            assert torch.allclose(out[b, c], ref, atol=1e-5)


def test_flip_is_true_convolution():
    x = torch.randn(6, 7, generator=torch.Generator().manual_seed(1))
    k = torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 10]])
    conv = filter2d(x, k, flip=True)
    # true convolution by definition: out[i,j] = sum_{u,v} x[i+2-u, j+2-v] * k[u,v]
    want = torch.zeros(4, 5)
    for i in range(4):
        for j in range(5):
            want[i, j] = sum(x[i + 2 - u, j + 2 - v] * k[u, v] for u in range(3)
                             for v in range(3))
    assert torch.allclose(conv, want, atol=1e-5)
    assert not torch.allclose(conv, filter2d(x, k), atol=1e-3)
    # a delta image convolved with k reproduces k itself (correlation gives it flipped)
    delta = torch.zeros(5, 5)
    delta[2, 2] = 1
    assert torch.equal(filter2d(delta, k, flip=True), k)
    assert torch.equal(filter2d(delta, k), k.flip(0, 1))


def test_gradient_magnitude_and_channels():
    img = torch.zeros(3, 10, 10)
    img[:, :, 5:] = 1
    m = gradient_magnitude(img)
    assert m.shape == img.shape
    assert (m[:, :, 4:6] == 4).all() and (m[:, :, :3] == 0).all() and (m[:, :, 7:] == 0).all()
    assert torch.equal(filter2d(img[1], get_kernel("identity"), pad=1), img[1])


def test_sobel_magnitude_by_hand():
    # a vertical step edge (columns 2, 3 bright) whose bottom row is dark: a corner
    img = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]],
                       dtype=torch.float32)
    # valid 3x3 windows: top ones see only the vertical edge (Gx 1+2+1 = 4, Gy 0);
    # bottom-left: Gx = 1+2 = 3, Gy = 1; bottom-right: Gx = 1+2 = 3, Gy = 1+2 = 3
    want = torch.tensor([[4.0, 4.0], [10**0.5, 18**0.5]])
    assert torch.allclose(gradient_magnitude(img, pad=0), want)
    # the same as the lectures' loop for Gx and Gy, with padding and stride
    for p, mode in ((0, "zeros"), (1, "zeros"), (1, "replicate"), (1, "reflect")):
        gx, gy = (reference_conv2d(img, get_kernel(k), pad=p, pad_mode=mode)
                  for k in ("sobel-x", "sobel-y"))
        assert torch.allclose(gradient_magnitude(img, mode, pad=p), (gx**2 + gy**2).sqrt())
    with pytest.raises(CnnzooError, match="unknown kernel pair 'x'"):
        gradient_magnitude(img, pair="x")


# ---------------------------------------------------------------------------- files + CLI

def _step_png(path, rgb=False):
    a = np.zeros((20, 30), np.uint8)
    a[:, 15:] = 200
    a[5:10, 3:8] = 255
    Image.fromarray(np.stack([a] * 3, -1) if rgb else a).save(path)
    return a


def test_load_save_roundtrip(tmp_path):
    a = _step_png(tmp_path / "g.png")
    t = load_image(tmp_path / "g.png")
    assert t.shape == (1, 20, 30) and t.dtype == torch.float32
    assert t.max().item() == 1.0 and t[0, 0, 20].item() == pytest.approx(200 / 255)
    _step_png(tmp_path / "c.png", rgb=True)
    assert load_image(tmp_path / "c.png").shape == (3, 20, 30)
    assert load_image(tmp_path / "c.png", "L").shape == (1, 20, 30)
    save_image(t, tmp_path / "out.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), a)


def test_kernel_file(tmp_path):
    f = tmp_path / "k.txt"
    f.write_text("# a 2x3 kernel\n1 2 3\n\n-4 5.5 6  # comment\n")
    assert load_kernel_file(f).tolist() == [[1, 2, 3], [-4, 5.5, 6]]
    f.write_text("1 2\n3\n")
    with pytest.raises(CnnzooError, match=r"k\.txt line 2: 1 values, expected 2"):
        load_kernel_file(f)


def test_cli_filter_end_to_end(tmp_path, capsys):
    _step_png(tmp_path / "in.png")
    out = tmp_path / "edges.png"
    assert main(["filter", str(tmp_path / "in.png"), "--kernel", "sobel-x", "--pad", "1",
                 "--pad-mode", "reflect", "-o", str(out)]) == 0
    im = np.asarray(Image.open(out))
    assert im.shape == (20, 30)
    assert abs(int(im[15, 0]) - 128) <= 1  # flat area: zero response shown as mid-grey
    assert im[15, 14] > 200 and im[15, 15] > 200  # dark->bright step: bright
    assert im[7, 8] < 60  # right edge of the white square: bright->dark, dark
    (tmp_path / "k.txt").write_text("0 1\n2 3\n")
    assert main(["filter", str(tmp_path / "in.png"), "--kernel-file", str(tmp_path / "k.txt"),
                 "--stride", "2", "-o", str(tmp_path / "k.png")]) == 0
    assert Image.open(tmp_path / "k.png").size == (15, 10)  # (30-2)/2+1, (20-2)/2+1
    assert main(["filter", str(tmp_path / "in.png"), "--kernel", "gaussian5", "--pad", "same",
                 "-o", str(tmp_path / "b.png")]) == 0
    assert Image.open(tmp_path / "b.png").size == (30, 20)
    assert main(["filter", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "sobel-x" in listing and "gaussian5" in listing and "custom" in listing
    assert any(line.startswith("sobel ") and "sqrt(Gx^2 + Gy^2)" in line
               for line in listing.splitlines())


def test_cli_sobel_edge_strength(tmp_path, capsys):
    a = _step_png(tmp_path / "in.png")
    out = tmp_path / "edges.png"
    assert main(["filter", str(tmp_path / "in.png"), "--kernel", "sobel", "--pad", "same",
                 "--pad-mode", "replicate", "-o", str(out)]) == 0
    assert "kernel sobel 3x3" in capsys.readouterr().out
    im = np.asarray(Image.open(out)).astype(int)
    # the magnitude shown as |v| / max|v|: flat areas black, every edge bright whatever
    # its direction (the square's left and right sides alike)
    x = torch.from_numpy(a).float() / 255
    want = gradient_magnitude(x, "replicate")
    assert np.abs(im - (want / want.max() * 255).round().numpy()).max() <= 1
    assert im[15, 0] == 0 and im[15, 25] == 0 and im[15, 14] > 150 and im[15, 15] > 150
    assert im[7, 2] > 150 and im[7, 8] > 150 and im[4, 5] > 150  # the square's sides and top
    with pytest.raises(SystemExit):
        main(["filter", "--help"])
    assert "sobel (edge strength sqrt(Gx^2 + Gy^2)" in " ".join(capsys.readouterr().out.split())


def test_cli_errors_leave_nothing(tmp_path, capsys):
    _step_png(tmp_path / "in.png")
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    (tmp_path / "bad.txt").write_text("1 2\nx y\n")
    (tmp_path / "big.txt").write_text("\n".join(["1 1 1 1 1 1 1"] * 25))
    img = str(tmp_path / "in.png")
    cases = [
        ([str(tmp_path / "nope.png"), "--kernel", "sobel-x"], ["nope.png", "does not exist"]),
        ([str(tmp_path / "bad.png"), "--kernel", "sobel-x"], ["cannot read image", "bad.png"]),
        ([img, "--kernel-file", str(tmp_path / "bad.txt")], ["bad.txt line 2", "not numbers"]),
        ([img, "--kernel-file", str(tmp_path / "missing.txt")], ["missing.txt"]),
        ([img, "--kernel-file", str(tmp_path / "big.txt"), "--pad", "2"], ["does not fit"]),
        ([img, "--kernel", "blur"], ["unknown kernel 'blur'"]),
    ]
    for argv, words in cases:
        out = tmp_path / "out.png"
        assert main(["filter", *argv, "-o", str(out)]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("cnnzoo filter: error:") and "\n" not in err
        for w in words:
            assert w in err, (argv, err)
        assert not out.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png", "bad.txt", "big.txt",
                                                              "in.png"]
