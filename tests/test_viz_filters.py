"""First-layer filter grids: tile layout, per-filter scaling, atomic PNG, bad shapes."""

import pytest
import torch
from PIL import Image

from cnnzoo.errors import ShapeError
from cnnzoo.viz.filters import filter_grid_image, first_conv_weight, save_filter_grid


def test_rgb_filters_become_one_colour_tile_each(tmp_path):
    w = torch.randn(16, 3, 11, 11)  # AlexNet-like conv1 (fewer filters)
    path = tmp_path / "filters" / "epoch_001.png"
    save_filter_grid(w, path, title="epoch 1")
    img = Image.open(path)
    assert img.mode == "RGB"
    # 4x4 grid of 11 px kernels scaled x3 = 33 px, 2 px gaps, 16 px title band
    assert img.size == (4 * 35 + 2, 16 + 4 * 35 + 2)
    assert [p.name for p in tmp_path.joinpath("filters").iterdir()] == ["epoch_001.png"]


def test_each_tile_is_min_max_scaled_on_its_own():
    w = torch.zeros(2, 1, 2, 2)
    w[0, 0] = torch.tensor([[0.0, 1.0], [2.0, 3.0]])  # tiny range
    w[1, 0] = torch.tensor([[-100.0, 0.0], [0.0, 100.0]])  # huge range
    img = filter_grid_image(w)
    scale = 16  # 2 px kernel -> 32 px tile
    top_left = img.getpixel((2, 2))
    bottom_right = img.getpixel((2 + scale + 1, 2 + scale + 1))
    assert (top_left, bottom_right) == (0, 255)  # filter 0 spans the full range
    second = 2 + 2 * scale + 2  # x of the second tile
    assert img.getpixel((second, 2)) == 0 and img.getpixel((second + scale, 2)) == 128


def test_deeper_conv_draws_a_row_per_filter():
    img = filter_grid_image(torch.randn(4, 6, 3, 3))
    assert img.mode == "L"
    tile = 3 * 11 + 2  # 3 px kernel scaled to 33 px + gap
    assert img.size == (6 * tile + 2, 4 * tile + 2)


def test_not_a_conv_weight_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"\[O, I, kh, kw\].*\[10, 5\]"):
        filter_grid_image(torch.randn(10, 5))


def test_first_conv_weight_finds_the_stem():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))
    assert first_conv_weight(net) is net[0].weight
    with pytest.raises(ShapeError, match="no Conv2d"):
        first_conv_weight(torch.nn.Linear(2, 2))
