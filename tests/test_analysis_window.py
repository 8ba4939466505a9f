"""Receptive-field windows (start offset + size + jump) against brute force: perturb one input
pixel at a time and see which output units change."""

import pytest
import torch
import torch.nn as nn

from cnnzoo.analysis import layer_field, receptive_window
from cnnzoo.analysis.receptive import RF, merge
from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.models import create_model
from cnnzoo.models.backbone import UnknownLayerError


class Add(nn.Module):
    def __init__(self, main, short):
        super().__init__()
        self.main, self.short = main, short

    def forward(self, x):
        return self.main(x) + self.short(x)


class Cat(nn.Module):
    def __init__(self, *branches):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], 1)


class Crop(nn.Module):
    def forward(self, x):
        return x[:, :, 1:, 2:-1]


def conv(*a, **k):
    return nn.Conv2d(*a, bias=False, **k)


CASES = {
    "pad-stride-dilation": nn.Sequential(
        conv(1, 2, 3, padding=1), nn.MaxPool2d(2), conv(2, 2, 3, stride=2, padding=1),
        conv(2, 2, 3, dilation=2, padding=2)),
    "asymmetric-pad-avgpool": nn.Sequential(
        nn.ZeroPad2d((1, 2, 0, 3)), conv(1, 2, 5), nn.AvgPool2d(3, 2, padding=1),
        conv(2, 2, 3)),
    "residual-downsample": nn.Sequential(
        conv(1, 2, 3, padding=1), nn.ReLU(inplace=True),
        Add(nn.Sequential(conv(2, 2, 3, stride=2, padding=1), conv(2, 2, 3, padding=1)),
            conv(2, 2, 1, stride=2))),
    "ceil-pool-transposed": nn.Sequential(
        conv(1, 2, 3), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.ConvTranspose2d(2, 2, 3, padding=0, bias=False), conv(2, 2, 2, stride=2)),
    "inception-concat": nn.Sequential(
        Cat(conv(1, 1, 1), conv(1, 1, 3, padding=1), conv(1, 1, (5, 3), padding=(2, 1))),
        conv(3, 2, 3, stride=2)),
    "crop-reflect": nn.Sequential(
        conv(1, 2, 3, padding=1, padding_mode="reflect"), Crop(), conv(2, 2, 3, stride=2)),
    "offset-branches": Cat(conv(1, 1, 3), nn.Sequential(nn.ZeroPad2d((2, -2, 2, -2)),
                                                        conv(1, 1, 3))),
}


def _positive(net: nn.Module) -> nn.Module:
    """Positive weights and no biases: a pixel's change reaches every unit that reads it
    (nothing cancels, max-pooling over zeros picks it)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            else:
                p.copy_(p.abs() + 0.1)
    return net.eval()


def _brute_force_boxes(net: nn.Module, size) -> dict:
    """For each output unit (i, j): the bounding box of the input pixels whose change
    changes it, as (top, left, bottom, right), bottom/right exclusive."""
    c, h, w = size
    onehot = torch.eye(h * w).reshape(h * w, 1, h, w).expand(-1, c, -1, -1)
    with torch.no_grad():
        changed = (net(onehot) - net(torch.zeros(1, c, h, w))).abs().sum(1) > 0  # [HW, h', w']
    deps = changed.reshape(h, w, *changed.shape[1:])
    boxes = {}
    for i in range(deps.shape[2]):
        for j in range(deps.shape[3]):
            rows, cols = deps[:, :, i, j].nonzero(as_tuple=True)
            boxes[i, j] = (int(rows.min()), int(cols.min()), int(rows.max()) + 1,
                           int(cols.max()) + 1)
    return boxes


def _inside(box, size) -> bool:
    top, left, bottom, right = box
    return top >= 0 and left >= 0 and bottom <= size[1] and right <= size[2]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("size", [(1, 32, 40), (1, 33, 37)], ids=["even", "odd"])
def test_window_matches_which_outputs_a_pixel_changes(case, size):
    """Units whose field lies inside the image: the window is exactly the pixels that
    change them. At a border a deeper layer's zero padding reads no pixels, so there the
    pixels that matter can be fewer than the window, never more."""
    torch.manual_seed(0)
    net = _positive(nn.Sequential(CASES[case]))
    boxes = _brute_force_boxes(net, size)
    field = layer_field(net, "0", size)
    assert field.shape[1:] == tuple(1 + max(k[a] for k in boxes) for a in (0, 1))
    inside = 0
    for pos, box in boxes.items():
        rf = field.rf
        top, left = rf.start_h + pos[0] * rf.jump_h, rf.start_w + pos[1] * rf.jump_w
        unclipped = (top, left, top + rf.rf_h, left + rf.rf_w)
        win = field.window(pos)
        if _inside(unclipped, size):
            inside += 1
            assert win == box == unclipped, pos
        else:
            assert all(w <= b for w, b in zip(win[:2], box[:2])), (pos, win, box)
            assert all(w >= b for w, b in zip(win[2:], box[2:])), (pos, win, box)
    assert inside > 0


NO_DEEP_PADDING = {  # padding only before the first layer, every stride divides the size
    "first-layer-pad": nn.Sequential(conv(1, 2, 5, padding=2), nn.MaxPool2d(2),
                                     conv(2, 2, 3, stride=2), nn.AvgPool2d(2)),
    "pad-op-then-dilated": nn.Sequential(nn.ZeroPad2d((3, 1, 2, 0)), conv(1, 2, 3, dilation=2),
                                         conv(2, 2, 2, stride=2), conv(2, 2, 3)),
}


@pytest.mark.parametrize("case", sorted(NO_DEEP_PADDING))
def test_window_is_exact_up_to_the_border_when_only_the_input_is_padded(case):
    torch.manual_seed(0)
    net = _positive(nn.Sequential(NO_DEEP_PADDING[case]))
    size = (1, 16, 24)
    boxes = _brute_force_boxes(net, size)
    field = layer_field(net, "0", size)
    assert {pos: field.window(pos) for pos in boxes} == boxes


def test_lenet5_windows_follow_its_zero_padding_to_32():
    """LeNet-5 pads 28x28 to 32x32 in forward (F.pad): the windows start 2 pixels up-left."""
    torch.manual_seed(0)
    net = _positive(create_model("lenet5"))
    size = (1, 28, 28)
    for layer in ("c1", "s2", "c3", "s4"):
        sub = nn.Sequential(*[m for n, m in net.named_children()][: list(
            dict(net.named_children())).index(layer) + 1])
        boxes = _brute_force_boxes(sub, size)
        field = layer_field(net, layer, size)
        assert {p: field.window(p) for p in boxes} == boxes, layer
    c3 = layer_field(net, "c3", size)
    assert (c3.rf.rf_h, c3.rf.jump_h, c3.rf.start_h) == (14, 2, -2)
    assert receptive_window(net, "c3", size, (0, 0)) == (0, 0, 12, 12)  # clipped at the top
    assert receptive_window(net, "c3", size, (4, 5)) == (6, 8, 20, 22)


def test_field_centres_are_the_middle_of_each_window():
    net = nn.Sequential(conv(1, 1, 3, padding=1), nn.MaxPool2d(2), conv(1, 1, 3, padding=1))
    field = layer_field(net, "2", (1, 8, 8))  # rf 8, jump 2, start -3
    rows, cols = field.centres()
    assert rows.tolist() == [0.5, 2.5, 4.5, 6.5] == cols.tolist()


def test_merge_of_nested_fields_is_the_largest_and_of_offset_fields_their_union():
    a, b = RF(5, 5, 2, 2, -2, -2), RF(1, 1, 2, 2, 0, 0)
    assert merge([a, b]) == a
    assert merge([RF(3, 3, 1, 1, 0, 0), RF(3, 3, 1, 1, -2, 0)]) == RF(5, 3, 1, 1, -2, 0)


def test_bad_layer_position_and_non_spatial_layers_are_clear_errors():
    net = create_model("lenet5")
    with pytest.raises(UnknownLayerError, match="no layer 'c4'; closest: .*c3"):
        layer_field(net, "c4", (1, 28, 28))
    with pytest.raises(ShapeError, match=r"position \(10, 0\) is outside layer c3's 10x10"):
        receptive_window(net, "c3", (1, 28, 28), (10, 0))
    with pytest.raises(ShapeError, match="f6 has no spatial map"):
        receptive_window(net, "f6", (1, 28, 28), (0, 0))
    up = nn.Sequential(conv(1, 1, 3), nn.Upsample(scale_factor=2), conv(1, 1, 3))
    with pytest.raises(CnnzooError, match="only known in closed form"):
        receptive_window(up, "2", (1, 16, 16), (0, 0))


def test_an_input_size_the_layer_cannot_take_is_a_shape_error():
    with pytest.raises(ShapeError):
        layer_field(nn.Sequential(conv(1, 1, 5)), "0", (1, 3, 3))
