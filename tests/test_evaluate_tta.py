"""predict_proba: TTA averages softmax over views; a list of models is averaged too."""

import torch
import torch.nn as nn

from cnnzoo.evaluate.evaluate import Normalized, make_views, predict_proba


class Symmetric(nn.Module):
    """Mirror-symmetric by construction: global average pool, then linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        with torch.no_grad():  # symmetric kernels keep conv(mirror(x)) == mirror(conv(x))
            self.conv.weight.copy_((self.conv.weight + self.conv.weight.flip(3)) / 2)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


class LeftRight(nn.Module):
    """Not symmetric: a linear layer over raw pixel positions."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        return self.fc(x.flatten(1))


def batches(n=12, b=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 8, 8, generator=g)
    y = torch.randint(4, (n,), generator=g)
    return [(x[i:i + b], y[i:i + b]) for i in range(0, n, b)], x, y


def test_flip_tta_is_a_no_op_on_a_mirror_symmetric_model():
    torch.manual_seed(0)
    model = Symmetric().eval()
    loader, x, y = batches()
    plain, labels = predict_proba(model, loader, "none")
    flipped, _ = predict_proba(model, loader, "flip")
    assert torch.equal(labels, y) and plain.shape == (12, 4)
    torch.testing.assert_close(flipped, plain, rtol=0, atol=1e-6)


def test_flip_tta_averages_the_mirror_on_an_asymmetric_model():
    torch.manual_seed(0)
    model = LeftRight().eval()
    loader, x, _ = batches()
    plain, _ = predict_proba(model, loader, "none")
    flipped, _ = predict_proba(model, loader, "flip")
    mirror = model(x.flip(3)).softmax(1)
    torch.testing.assert_close(flipped, (plain + mirror) / 2)
    assert (flipped - plain).abs().max() > 1e-3  # the view really changed the answer
    torch.testing.assert_close(flipped.sum(1), torch.ones(12))


def test_ten_crop_views_keep_the_input_size_and_include_the_image():
    x = torch.rand(2, 3, 28, 28)
    views, v = make_views(x, "10crop")
    assert v == 10 and views.shape == (20, 3, 28, 28)
    per_view = views.view(10, 2, 3, 28, 28)
    assert any(torch.equal(p, x) for p in per_view)  # the centre crop of the padded image
    assert any(torch.equal(p, x.flip(3)) for p in per_view)  # and its mirror
    seen = []
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 5))
    model.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].shape))
    probs, _ = predict_proba(model, [(x, torch.zeros(2))], "10crop")
    assert probs.shape == (2, 5) and len(seen) == 10  # one view per forward: bounded memory


def test_list_of_models_is_an_ensemble_and_normalized_applies_stats():
    torch.manual_seed(0)
    a, b = LeftRight().eval(), LeftRight().eval()
    loader, x, _ = batches()
    both, _ = predict_proba([a, b], loader, "none")
    torch.testing.assert_close(both, (a(x).softmax(1) + b(x).softmax(1)) / 2)
    norm = Normalized(a, [0.5, 0.4, 0.3], [0.2, 0.2, 0.1])
    mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.2, 0.1]).view(1, 3, 1, 1)
    torch.testing.assert_close(norm(x), a((x - mean) / std))
