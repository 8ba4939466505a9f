"""Conv arithmetic of seed 001: (W - F + 2P)/S + 1, 'same' padding, 'does not fit'."""

import pytest
import torch

from cnnzoo.analysis import (
    conv_output_shape,
    conv_output_size,
    parse_input_size,
    same_padding,
    stacked_rf,
)
from cnnzoo.analysis.receptive import widest_bin
from cnnzoo.errors import ShapeError


def test_seed_7x7_input_3x3_filter():
    assert conv_output_size(7, 3, stride=1) == 5
    assert conv_output_size(7, 3, stride=2) == 3
    with pytest.raises(ShapeError, match=r"does not fit.*\(7 - 3 \+ 2\*0\)/3 \+ 1 = 2\.33 is not "
                       r"an integer \(PyTorch floors it to 2\)"):
        conv_output_size(7, 3, stride=3)


def test_seed_examples_with_padding():
    assert conv_output_size(7, 3, stride=1, padding=1) == 7  # "preserved size"
    assert conv_output_size(32, 5, stride=1) == 28  # 32x32x3, 5x5 filters -> 28x28x5
    assert conv_output_size(227, 11, stride=4) == 55  # AlexNet CONV1
    assert conv_output_size(55, 3, stride=2) == 27  # AlexNet POOL1


def test_same_padding():
    assert [same_padding(k) for k in (3, 5, 7)] == [1, 2, 3]
    assert same_padding(3, dilation=2) == 2
    for k in (1, 3, 5, 7, 11):
        assert conv_output_size(224, k, 1, same_padding(k)) == 224
    with pytest.raises(ShapeError, match="even"):
        same_padding(2)


def test_non_strict_floors_like_pytorch_and_still_rejects_too_small():
    assert conv_output_size(224, 7, 2, 3, strict=False) == 112
    assert conv_output_size(112, 3, 2, 1, strict=False) == 56
    assert conv_output_size(6, 3, 2, 0, ceil_mode=True, strict=False) == 3
    with pytest.raises(ShapeError, match="does not fit.*needs at least 3"):
        conv_output_size(2, 3, 1, 0, strict=False)


def test_bad_arguments():
    with pytest.raises(ShapeError, match="stride"):
        conv_output_size(7, 3, stride=0)


@pytest.mark.parametrize("text", ["3x224", "axbxc", "3x224x0", "", "3x224x224x1"])
def test_parse_input_rejects(text):
    with pytest.raises(ShapeError, match="--input"):
        parse_input_size(text)


def test_parse_input():
    assert parse_input_size("3x224x224") == (3, 224, 224)
    assert parse_input_size(" 1X28x28 ") == (1, 28, 28)


def test_three_3x3_have_the_receptive_field_of_one_7x7():
    assert stacked_rf([(3, 1)] * 3).rf == 7 == stacked_rf([(7, 1)]).rf
    assert stacked_rf([(3, 1)] * 2).rf == 5  # two 3x3 = one 5x5 (seed 002)


def test_output_shape_names_the_axis_that_does_not_fit():
    assert conv_output_shape((224, 160), 7, 2, 3, strict=False) == (112, 80)
    assert conv_output_shape((5, 9), (1, 3), 1, (0, 1)) == (5, 9)
    with pytest.raises(ShapeError, match=r"pool does not fit: 2x2 pool \(stride 2, padding 0\) "
                       r"on a 20000000x1 input: along W, needs at least 2 pixels"):
        conv_output_shape((20_000_000, 1), 2, 2, what="pool", strict=False)
    with pytest.raises(ShapeError, match=r"along H, \(7 - 3 \+ 2\*0\)/3 \+ 1 = 2\.33 is not an"):
        conv_output_shape((7, 10), 3, 3)


@pytest.mark.parametrize("n", [1, 5, 7, 8, 14, 17, 35])
@pytest.mark.parametrize("o", [1, 3, 4, 6, 7])
def test_widest_adaptive_bin_is_pytorchs(n, o):
    """Each input position is an indicator row; an output is nonzero on its bin only."""
    bins = torch.nn.functional.adaptive_max_pool1d(torch.eye(n).unsqueeze(1), o)[:, 0, :]
    assert widest_bin(n, o) == int((bins > 0).sum(0).max())
