"""read_image: one preprocessing for the folder dataset and predict (EXIF orientation,
channels, stretch or shorter-side + centre crop), unreadable files as one-line DataErrors."""

import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.data import IMAGENET_EVAL, ImageFolderDataset, Preprocess, read_image
from cnnzoo.errors import CnnzooError, DataError, ShapeError
from cnnzoo.evaluate import load_image, predict_images


def sideways_jpeg(path, w, h):
    """A w x h JPEG stored as a phone does: pixels unrotated, EXIF Orientation 6 (shown turned
    90 degrees clockwise). A bright marker in the stored top-left corner, the rest dark."""
    a = np.full((h, w, 3), 30, np.uint8)
    a[: h // 4, : w // 4] = 230
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(a).save(path, quality=95, exif=exif)
    with Image.open(path) as im:  # the decoded pixels, as stored (no EXIF applied)
        return np.asarray(im.convert("RGB"))


def test_exif_orientation_is_applied_by_the_folder_dataset_and_predict(tmp_path):
    (tmp_path / "a").mkdir()
    stored = sideways_jpeg(tmp_path / "a" / "phone.jpg", 40, 24)
    upright = np.rot90(stored, k=-1)  # 24 wide, 40 tall; the marker now top-right
    ds = ImageFolderDataset(tmp_path, image_size=(40, 24))  # its upright size: no resize
    img, _, err = ds[0]
    assert err == "" and img.shape == (3, 40, 24)
    assert np.array_equal(img.permute(1, 2, 0).numpy(), upright)
    assert img[:, :10, -6:].float().mean() > 200 and img[:, :10, :6].float().mean() < 60
    seen = load_image(tmp_path / "a" / "phone.jpg", 3, (40, 24))  # predict's reading
    assert torch.equal((seen * 255).round().to(torch.uint8), img)


def test_a_large_sideways_photo_is_upright_at_the_model_size(tmp_path):
    # large enough for the JPEG decoder's shrink-on-load, which runs before the rotation
    stored = sideways_jpeg(tmp_path / "big.jpg", 400, 240)
    assert stored.shape == (240, 400, 3)
    for size in ((40, 24), (20, 12)):  # the upright aspect ratio: the whole photo is kept
        img = read_image(tmp_path / "big.jpg", Preprocess(size))
        assert img.shape == (3, *size)
        top = img[:, : size[0] // 5].float().mean(0)  # the marker: top-right only
        assert top[:, -size[1] // 5:].mean() > 200 and top[:, : size[1] // 5].mean() < 60
        gray = read_image(tmp_path / "big.jpg", Preprocess(size, channels=1))
        assert gray.shape == (1, *size) and gray[0, 0, -1] > 200 and gray[0, 0, 0] < 60


def blocks(bh, bw, rows, cols):
    """A grayscale image of rows x cols constant bh x bw blocks, block (i, j) = 10*(i*cols+j)."""
    b = (np.arange(rows * cols).reshape(rows, cols) * 10).astype(np.uint8)
    return b, np.kron(b, np.ones((bh, bw), np.uint8))


def test_shorter_side_then_centre_crop(tmp_path):
    b, a = blocks(2, 2, 4, 6)  # 8 x 12
    Image.fromarray(a).save(tmp_path / "b.png")
    # shorter side 8 -> 4: the 4 x 6 blocks, then the centre 4 x 4 (columns 1..4)
    img = read_image(tmp_path / "b.png", Preprocess((4, 4), 1, shorter=4, interpolation="nearest"))
    assert img[0].tolist() == b[:, 1:5].tolist()
    # the default covers the crop exactly: a 2 x 6 crop of the 4 x 6 blocks is rows 1..2
    img = read_image(tmp_path / "b.png", Preprocess((2, 6), 1, interpolation="nearest"))
    assert img[0].tolist() == b[1:3].tolist()
    # RGB from grayscale: three equal channels
    rgb = read_image(tmp_path / "b.png", Preprocess((4, 4), 3, shorter=4, interpolation="nearest"))
    assert rgb.shape == (3, 4, 4) and all(torch.equal(rgb[c], img[0].new_tensor(b[:, 1:5]))
                                          for c in range(3))


def test_stretch_ignores_the_aspect_ratio(tmp_path):
    b, a = blocks(2, 4, 4, 4)  # 8 x 16: stretched to 4 x 4, each block becomes one pixel
    Image.fromarray(a).save(tmp_path / "b.png")
    img = read_image(tmp_path / "b.png", Preprocess((4, 4), 1, "stretch", interpolation="nearest"))
    assert img.dtype == torch.uint8 and img[0].tolist() == b.tolist()


def test_imagenet_evaluation_geometry(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "p.png")
    prep = dataclasses.replace(IMAGENET_EVAL, interpolation="bicubic")
    img = read_image(tmp_path / "p.png", prep)
    # 300 x 400 -> shorter side 256: 256 x 341; the centre 224 x 224 starts at (16, 58)
    want = Image.fromarray(a).resize((341, 256), Image.BICUBIC).crop((58, 16, 282, 240))
    assert img.shape == (3, 224, 224)
    assert np.array_equal(img.permute(1, 2, 0).numpy(), np.asarray(want))
    assert not torch.equal(img, read_image(tmp_path / "p.png", IMAGENET_EVAL))  # bilinear


def test_transparency_and_16_bit(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 0, 0, 255)  # opaque red; the rest transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    p = Image.new("P", (2, 2), 1)
    p.putpalette([0, 0, 0, 0, 0, 200] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.save(tmp_path / "p.png", transparency=0)  # palette entry 0 (black) is transparent
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow warns on palette transparency converted badly
        a = read_image(tmp_path / "a.png", Preprocess(2, 3))
        q = read_image(tmp_path / "p.png", Preprocess(2, 3))
        g = read_image(tmp_path / "a.png", Preprocess(2, 1))
    assert a[:, 0, 0].tolist() == [200, 0, 0] and (a[:, 1, 1] == 255).all()  # over white
    assert q[:, 0, 0].tolist() == [255, 255, 255] and q[:, 1, 1].tolist() == [0, 0, 200]
    assert g.shape == (1, 2, 2) and g[0, 1, 1] == 255 and g[0, 0, 0] < 100
    Image.fromarray(np.array([[0, 40000], [65535, 1000]], np.uint16)).save(tmp_path / "16.png")
    with Image.open(tmp_path / "16.png") as im:
        assert im.mode.startswith("I;16")
    assert read_image(tmp_path / "16.png", Preprocess(2, 1))[0].tolist() == [[0, 156], [255, 3]]


def test_unreadable_files_are_one_line_data_errors(tmp_path, monkeypatch):
    prep = Preprocess(8)
    with pytest.raises(DataError, match=r"nope\.jpg: no such image file$"):
        read_image(tmp_path / "nope.jpg", prep)
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    sideways_jpeg(tmp_path / "ok.jpg", 40, 24)
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "dir.png").mkdir()
    for name in ("junk.png", "cut.jpg", "dir.png"):
        with pytest.raises(DataError, match=rf"{name}: cannot read image \(") as e:
            read_image(tmp_path / name, prep)
        assert "\n" not in str(e.value) and e.value.reason
    # the decompression-bomb limit is Pillow's own: lowered here, the 960-pixel photo trips it
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DataError, match=r"ok\.jpg: cannot read image \(Image size .* exceeds"):
        read_image(tmp_path / "ok.jpg", prep)


def test_preprocess_is_checked_and_round_trips_through_json():
    p = Preprocess([24, 32], 1, shorter=40, interpolation="bicubic")
    assert p.size == (24, 32) and Preprocess(**json.loads(json.dumps(dataclasses.asdict(p)))) == p
    assert Preprocess(16).size == (16, 16)
    for kw, msg in [(dict(size=8, channels=4), "1 .* or 3 .* channels, not 4"),
                    (dict(size=(8, 0)), "positive integers"),
                    (dict(size=8, resize="fit"), "resize must be one of crop, stretch"),
                    (dict(size=8, interpolation="area"), "interpolation must be one of"),
                    (dict(size=224, shorter=200), "shorter side 200 is smaller than"),
                    (dict(size=8, resize="stretch", shorter=10), "shorter applies to")]:
        with pytest.raises(CnnzooError, match=msg):
            Preprocess(**kw)
    with pytest.raises(ShapeError):
        Preprocess(8, 2)


class _LeftPixel(torch.nn.Module):
    """Class 0 when the top-left input pixel is bright, else class 1."""

    def forward(self, x):
        return torch.stack([x[:, 0, 0, 0], torch.full_like(x[:, 0, 0, 0], 0.5)], 1) * 20


def test_predict_reads_files_as_the_folder_run_did(tmp_path, monkeypatch):
    a = np.zeros((2, 6), np.uint8)
    a[:, :2] = 255  # bright left third: the centre crop misses it, a stretch keeps it
    Image.fromarray(a).save(tmp_path / "x.png")
    config = {"input_size": [1, 2, 2], "classes": ["left", "dark"], "num_classes": 2,
              "mean": [0.0], "std": [1.0], "dataset": "folder",
              "dataset_kwargs": {"image_size": [2, 2], "channels": 1}}
    monkeypatch.setattr("cnnzoo.runs.load_run",
                        lambda *a, **k: (_LeftPixel(), config))
    assert predict_images(tmp_path, [tmp_path / "x.png"], topk=1)[0][1][0][0] == "dark"
    config["dataset_kwargs"] |= {"resize": "stretch", "interpolation": "nearest"}
    assert predict_images(tmp_path, [tmp_path / "x.png"], topk=1)[0][1][0][0] == "left"
    ds = ImageFolderDataset(tmp_path / "f", **config["dataset_kwargs"], samples=[
        (str(tmp_path / "x.png"), 0)], classes=["left", "dark"])
    assert ds[0][0][0, 0, 0] == 255 and ds.split(0.0)[0].preprocess == ds.preprocess
