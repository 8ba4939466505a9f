"""Gradient saliency, Grad-CAM and Grad-CAM++ against answers worked out by hand on tiny
networks; every kind of zoo model (auxiliary heads, in-place activations); the
model-randomisation check and its rank correlation."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.models import create_model
from cnnzoo.models.backbone import UnknownLayerError
from cnnzoo.viz.saliency import (
    randomised_copy,
    rank_correlation,
    saliency,
    sanity_check,
)

X = torch.tensor([[[1.0, -2.0, 0.0, 3.0],
                   [0.5, 4.0, -1.0, 2.0],
                   [0.0, 1.0, 1.0, -3.0],
                   [2.0, 0.0, -0.5, 1.5]]])  # one channel, 4 x 4


def gap_net(w=(2.0, -1.0), v=((1.0, 0.5), (-1.0, 0.0), (0.25, 1.0))):
    """x -> A_c = w_c x (a 1x1 conv, 2 maps) -> global mean -> y_k = sum_c V_kc mean(A_c).

    By hand: dy_k / dA_c(i, j) = V_kc / 16 everywhere, so Grad-CAM's alpha_c = V_kc / 16
    and its map is ReLU(sum_c V_kc w_c x) / 16 = ReLU((V_k . w) x) / 16: the CAM of Zhou et
    al. 2016 (Grad-CAM equals CAM for a GAP-linear head)."""
    net = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(2, 3, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(w).view(2, 1, 1, 1))
        net[3].weight.copy_(torch.tensor(v))
    return net


def test_gradcam_of_a_gap_linear_net_is_the_hand_worked_cam():
    net = gap_net()
    # class 0: V_0 . w = 1*2 + 0.5*(-1) = 1.5; class 1: -2; class 2: 0.25*2 - 1 = -0.5
    s0 = saliency(net, X, method="gradcam", target=0, layer="0")
    assert torch.allclose(s0.raw, (1.5 * X[0]).clamp_min(0) / 16)
    assert s0.raw[1, 1] == pytest.approx(1.5 * 4 / 16)  # the brightest pixel, 0.375
    assert torch.allclose(s0.map, (X[0]).clamp_min(0) / 4)  # scaled to max 1; x max is 4
    s1 = saliency(net, X, method="gradcam", target=1, layer="0")
    assert torch.allclose(s1.raw, (-2 * X[0]).clamp_min(0) / 16)  # the negative pixels
    assert s1.map[2, 3] == 1.0 and s1.map[0, 0] == 0.0
    assert int(s0.target) == 0 and float(s0.score) == pytest.approx(1.5 * X.mean().item())


def test_gradcam_plus_plus_of_a_gap_linear_net_is_the_hand_worked_formula():
    net = gap_net()
    w, v = torch.tensor([2.0, -1.0]), torch.tensor([0.25, 1.0])  # class 2
    s = saliency(net, X, method="gradcam++", target=2, layer="0")
    g = v / 16  # the gradient, constant over each map
    sum_a = w * X.sum()  # sum over positions of A_c
    alpha = g**2 / (2 * g**2 + sum_a * g**3)  # the same at every position
    weight = 16 * alpha * g.clamp_min(0)  # sum over positions of alpha * ReLU(g)
    expected = (weight[0] * w[0] * X[0] + weight[1] * w[1] * X[0]).clamp_min(0)
    assert torch.allclose(s.raw, expected)


def test_gradient_saliency_of_a_quadratic_net_is_its_derivative():
    """y_k = sum W_k * x^2 over 2 channels: dy_k/dx = 2 W_k x; the map is the largest
    |2 W_k x| over the channels."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 3)
    net = nn.Sequential(Square(), nn.Flatten(), nn.Linear(18, 4, bias=False))
    s = saliency(net, x, method="grad", target=3)
    w3 = net[2].weight[3].detach().view(2, 3, 3)
    expected = (2 * w3 * x).abs().amax(0)
    assert torch.allclose(s.raw, expected)
    assert torch.allclose(s.map, expected / expected.max())
    assert s.layer is None


class Square(nn.Module):
    def forward(self, x):
        return x * x


def test_cam_upsampling_is_bilinear_resizing_when_the_grid_tiles_the_image():
    """Patches of 2x2 (k = s = 2): the unit centres are 0.5 and 2.5, so the map on the image
    is plain bilinear resizing (align_corners=False)."""
    net = nn.Sequential(nn.Conv2d(1, 1, 2, 2, bias=False), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(1, 2, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[3].weight.copy_(torch.tensor([[1.0], [-1.0]]))
    s = saliency(net, X, method="gradcam", target=0, layer="0")
    sums = F.avg_pool2d(X, 2)[0] * 4  # each patch's sum: A at the layer's grid
    assert torch.allclose(s.raw, sums.clamp_min(0) / 4)
    resized = F.interpolate(s.raw[None, None], size=(4, 4), mode="bilinear",
                            align_corners=False)[0, 0]
    assert torch.allclose(s.map, resized / resized.max())


def test_cam_sits_on_the_receptive_field_centres_when_the_model_pads_or_crops():
    """LeNet-5's way, pad 2 then a 5x5 conv: unit (i, j) sees pixels i-2..i+2, centred on
    pixel (i, j), so the map on the image is the layer's map as it is. Cropping 1 pixel then
    a 2x2 conv: unit i sees pixels i+1..i+2, centre i + 1.5, so pixel 2 lies half-way between
    units 0 and 1 and pixels 0, 1 take unit 0 (plain resizing would put them elsewhere)."""
    x = torch.rand(1, 6, 6) + 0.1  # positive input, weights: a positive CAM everywhere
    pad = nn.Sequential(nn.ZeroPad2d(2), nn.Conv2d(1, 2, 5), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(2, 3))
    crop = nn.Sequential(nn.ZeroPad2d(-1), nn.Conv2d(1, 1, 2), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(1, 2))
    for net in (pad, crop):
        with torch.no_grad():
            for prm in net.parameters():
                prm.copy_(torch.rand_like(prm) + 0.1)
    s = saliency(pad, x, method="gradcam", target=1, layer="1")
    assert s.raw.shape == (6, 6) and (s.raw > 0).all()
    assert torch.allclose(s.map, s.raw / s.raw.max())
    s = saliency(crop, x, method="gradcam", target=0, layer="1")
    r = s.raw / s.raw.max()
    assert r.shape == (3, 3) and (r > 0).all()
    m = s.map
    assert m[0, 0] == pytest.approx(float(r[0, 0])) and m[1, 1] == pytest.approx(float(r[0, 0]))
    assert m[2, 2] == pytest.approx(float(r[:2, :2].mean()))
    assert m[3, 5] == pytest.approx(float(r[1:, 2].mean()))
    assert m[5, 0] == pytest.approx(float(r[2, 0]))
    naive = F.interpolate(r[None, None], size=(6, 6), mode="bilinear", align_corners=False)
    assert not torch.allclose(naive[0, 0], m)


def test_a_batch_gives_each_image_its_own_map_and_class():
    net = gap_net()
    xs = torch.stack([X, -X])
    s = saliency(net, xs, method="gradcam", target=torch.tensor([0, 0]), layer="0")
    assert s.map.shape == (2, 4, 4)
    assert torch.allclose(s.raw[1], (-1.5 * X[0]).clamp_min(0) / 16)
    one = saliency(net, -X, method="gradcam", target=0, layer="0")
    assert torch.allclose(s[1].map, one.map)


def _no_inplace(model):
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    return model


@pytest.mark.parametrize("name,kw,layer", [
    ("lenet5", {}, "c3"),  # conv followed by an in-place ReLU
    ("resnet18", {"small_input": True}, "layer1.0.bn1"),  # BN, then an in-place ReLU
    ("googlenet", {"small_input": True}, None),  # auxiliary heads, default layer
])
def test_every_kind_of_zoo_model_gives_the_map_of_its_out_of_place_twin(name, kw, layer):
    """Without the clone around the hooked output, an in-place op after the layer would
    overwrite the maps being explained, and the map would differ from the twin's."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, **kw)
    twin = _no_inplace(create_model(name, num_classes=10, **kw))
    twin.load_state_dict(model.state_dict())
    c, size = model.in_chans, 28 if name == "lenet5" else 32
    x = torch.randn(c, size, size)
    model.train()  # googlenet returns AuxOutput in train mode; saliency runs it in eval
    for method in ("grad", "gradcam", "gradcam++"):
        s = saliency(model, x, method=method, layer=layer)
        assert model.training
        assert s.map.shape == (size, size) and torch.isfinite(s.map).all()
        assert s.map.max() == pytest.approx(1.0) or s.map.max() == 0
        if method != "grad":
            assert s.layer == (layer or model.stage_names[-1])
        if method == "gradcam":
            t = saliency(twin, x, method=method, layer=layer)
            assert torch.allclose(s.map, t.map, atol=1e-5) and int(s.target) == int(t.target)


def test_bad_method_class_and_layer_are_clear_errors():
    net = gap_net()
    with pytest.raises(CnnzooError, match="--method must be one of grad, gradcam, gradcam"):
        saliency(net, X, method="cam")
    with pytest.raises(CnnzooError, match=r"--class 3 out of range: the model has 3 "
                                          r"classes \(0-2\)"):
        saliency(net, X, method="grad", target=3)
    with pytest.raises(UnknownLayerError, match="no layer '9'"):
        saliency(net, X, method="gradcam", layer="9")
    with pytest.raises(ShapeError, match="Grad-CAM needs a layer with feature maps; layer 2"):
        saliency(net, X, method="gradcam", layer="2")


def test_rank_correlation_is_spearmans_with_average_ranks_for_ties():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert rank_correlation(a, a * 10 + 3) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert rank_correlation(a, a**3) == pytest.approx(1.0)  # ranks, not values
    # ranks [1, 2.5, 2.5, 4] and [1, 3, 2, 4]: 4.5 / sqrt(4.5 * 5)
    got = rank_correlation(torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([1.0, 3, 2, 4]))
    assert got == pytest.approx(4.5 / math.sqrt(22.5))
    assert math.isnan(rank_correlation(torch.zeros(4), a))


def test_sanity_check_randomises_a_copy_and_compares_the_maps():
    torch.manual_seed(0)
    model = create_model("lenet5").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(1, 28, 28)
    chk = sanity_check(model, x, method="grad", seed=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    rand = randomised_copy(model, seed=1)
    weights = [k for k, v in before.items() if v.ndim > 1]
    assert weights and all(not torch.equal(rand.state_dict()[k], before[k]) for k in weights)
    assert int(chk.randomised.target) == int(chk.trained.target)
    expected = rank_correlation(chk.trained.map, chk.randomised.map)
    assert chk.spearman == pytest.approx(expected) and -1 <= chk.spearman <= 1
    same = saliency(randomised_copy(model, seed=1), x, method="grad",
                    target=int(chk.trained.target))
    assert torch.equal(same.map, chk.randomised.map)  # the seed fixes the random weights
