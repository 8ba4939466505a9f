"""`cnnzoo viz` on a real run: LeNet-5 trained one epoch on Fashion-MNIST. Top patches
against a brute-force pass, Grad-CAM on the object vs the background (measured), every
command's PNG, and each bad input as one line with exit code 2."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from cnnzoo.analysis import layer_field
from cnnzoo.cli import main
from cnnzoo.models.backbone import features
from cnnzoo.viz.common import load_run, normalise
from cnnzoo.viz.filters import plot_filters, run_filters
from cnnzoo.viz.saliency import saliency
from cnnzoo.viz.top_patches import run_top_patches, top_patches
from cnnzoo.viz.variance import run_variance

FMNIST = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(not FMNIST.is_dir(),
                                reason="Debian's dataset-fashion-mnist not installed")


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    from cnnzoo.train import TrainConfig, train

    out = tmp_path_factory.mktemp("viz") / "lenet5"
    # One epoch on a quarter of the training split (the rest validates): a few seconds on
    # an idle CPU, enough for structured filters and ~80% accuracy.
    train(TrainConfig(model="lenet5", dataset="fashion-mnist", data_dir=str(FMNIST),
                      epochs=1, val_fraction=0.75, out=str(out), progress=False))
    return out


@pytest.fixture(scope="session")
def test_images():
    from cnnzoo.data import load_dataset

    return load_dataset("fashion-mnist", "test", data_dir=str(FMNIST))


def _brute_force(model, x, layer, channel):
    """Every test image's activation map, all at once: (max value, argmax (i, j)) each."""
    with torch.no_grad():
        maps = torch.cat([features(model, [layer], detach=True)(x[i:i + 1000])[layer]
                          for i in range(0, len(x), 1000)])[:, channel]
    vals, where = maps.flatten(1).max(1)
    return vals, where, maps.shape[-1]


@pytest.mark.parametrize("layer,channel", [("c3", 3), ("s2", 1)])
def test_top_patches_are_the_nine_largest_of_a_brute_force_pass(run, test_images, layer,
                                                               channel):
    t = run_top_patches(run, layer, channel, device="cpu", batch_size=300)
    model, config = load_run(run)
    raw = test_images.images
    vals, where, width = _brute_force(model, normalise(raw.float() / 255, config), layer,
                                      channel)
    order = torch.sort(vals, descending=True, stable=True).indices[:9].tolist()
    got = [p.index for p in t.patches]
    assert len(set(got)) == 9 and t.seen == len(raw) == 10000
    assert got == order
    assert torch.allclose(torch.tensor([p.value for p in t.patches]), vals[order], rtol=1e-5)
    field = layer_field(model, layer, config["input_size"])
    for p in t.patches:
        pos = divmod(int(where[p.index]), width)
        assert p.position == pos and p.window == field.window(pos)
        top, left, bottom, right = p.window
        assert torch.equal((p.crop * 255).round().to(torch.uint8),
                           raw[p.index][:, top:bottom, left:right])
        assert int(p.label) == int(test_images.labels[p.index])


def test_top_patches_stream_once_whatever_the_batching(run, test_images):
    model, config = load_run(run)
    x = test_images.images[:1000].float() / 255
    y = test_images.labels[:1000]

    def batches(size):  # a generator: it can be read only once
        return ((x[i:i + size], y[i:i + size]) for i in range(0, len(x), size))

    a = top_patches(model, batches(7), "c3", 5, mean=config["mean"], std=config["std"])
    b = top_patches(model, batches(500), "c3", 5, mean=config["mean"], std=config["std"])
    assert [p.index for p in a.patches] == [p.index for p in b.patches]
    assert a.seen == b.seen == 1000


def test_gradcam_object_vs_background_on_test_images(run, test_images):
    """Object = pixels > 0 of the raw image, background = the zeros. Printed, not asserted:
    the fraction of test images whose mean map (predicted class, default layer) is higher on
    the object than on the background (LeNet-5 reads Fashion-MNIST by its silhouette, so
    much of the evidence is background). Asserted, deletion: greying out the pixels a map
    ranks highest costs the predicted class more of its logit than those it ranks lowest."""
    model, config = load_run(run)
    raw = test_images.images[:1000]
    x = normalise(raw.float() / 255, config)
    obj = (raw[:, 0] > 0).float()
    both = (obj.flatten(1).amin(1) == 0) & (obj.flatten(1).amax(1) == 1)
    with torch.no_grad():
        pred = model(x).argmax(1, keepdim=True)
        score = model(x).gather(1, pred)[:, 0]
    fractions, drops = {}, {}
    for method in ("gradcam", "gradcam++", "grad"):
        maps = torch.cat([saliency(model, x[i:i + 250], method=method).map
                          for i in range(0, len(x), 250)])
        on_obj = (maps * obj).sum((1, 2)) / obj.sum((1, 2)).clamp_min(1)
        on_bg = (maps * (1 - obj)).sum((1, 2)) / (1 - obj).sum((1, 2)).clamp_min(1)
        fractions[method] = ((on_obj > on_bg) & both).sum().item() / both.sum().item()
        # A map for nearly every image: Grad-CAM's ReLU leaves an all-zero map where every
        # channel's weighted sum is negative (1.1% of these images in one run), never most.
        assert (maps.flatten(1).amax(1) > 0).float().mean() > 0.95
        # Deletion (Petsiuk et al. 2018): grey out (the dataset mean) the fifth of the pixels
        # the map ranks highest, or lowest; a map of the evidence costs the score more.
        order = maps.flatten(1).argsort(1, descending=True)
        k = order.shape[1] // 5
        drops[method] = []
        for idx in (order[:, :k], order[:, -k:]):
            grey = x.clone().flatten(1)
            grey.scatter_(1, idx, 0.0)
            with torch.no_grad():
                after = model(grey.view_as(x)).gather(1, pred)[:, 0]
            drops[method].append((score - after).mean().item())
    print(f"\nmap mass on the object rather than the background, {int(both.sum())} test "
          "images: " + ", ".join(f"{k} {v:.1%}" for k, v in fractions.items()))
    print("logit drop when the top / bottom fifth of the map is greyed out: " + ", ".join(
        f"{k} {a:.2f} / {b:.2f}" for k, (a, b) in drops.items()))
    assert both.sum() > 900
    for method, (top, bottom) in drops.items():
        assert top > bottom, method


def test_every_command_writes_a_png(run, test_images, tmp_path, capsys):
    img = tmp_path / "boot.png"
    Image.fromarray(test_images.images[0, 0].numpy()).save(img)
    commands = {
        "filters": ["filters", str(run)],
        "filters_c3": ["filters", str(run), "--layer", "c3"],
        "activations": ["activations", str(run), str(img), "--layer", "c3"],
        "top": ["top-patches", str(run), "--layer", "c3", "--channel", "2", "--device", "cpu"],
        "saliency": ["saliency", str(run), str(img), "--sanity"],
        "gradpp": ["saliency", str(run), str(img), "--method", "gradcam++", "--class", "9",
                   "--layer", "c3"],
        "variance_run": ["variance", str(run)],
        "variance_plain": ["variance", "plain", "--init", "small,xavier"],
    }
    for name, argv in commands.items():
        out = tmp_path / f"{name}.png"
        assert main(["viz", *argv, "-o", str(out)]) == 0, name
        with Image.open(out) as im:
            assert im.format == "PNG" and min(im.size) > 200, name
    printed = capsys.readouterr().out
    assert "rank correlation with randomised weights:" in printed
    assert "class Ankle boot (9)" in printed
    assert "tanh10" in printed and "init small" in printed


def test_filters_and_variance_of_the_run(run):
    f = run_filters(run)
    assert f.layer == "c1" and list(f.weight.shape) == [6, 1, 5, 5]
    assert [e for e, _ in f.epochs] == [1]
    assert run_filters(run, "c3").epochs == []  # the trainer draws the first layer only
    v = run_variance(run)
    assert list(v.series) == ["epoch 1"] and v.layers[:2] == ["act1", "act3"]
    assert all(x > 0 for x in v.series["epoch 1"])
    every = run_variance(run, activations_only=False)
    assert "c1" in every.layers and len(every.layers) > len(v.layers)
    assert plot_filters(f, run / "f.png").exists()


@pytest.mark.parametrize("argv,message", [
    (["saliency", "{run}", "{bad_image}"], "bad.png: cannot read image"),
    (["activations", "{run}", "{image}", "--layer", "c4"],
     "lenet5 has no layer 'c4'; closest: "),
    (["top-patches", "{run}", "--layer", "c3", "--channel", "16"],
     "--channel 16 out of range: layer c3 has 16 channels (0-15)"),
    (["saliency", "{run}", "{image}", "--class", "10"],
     "--class 10 out of range: the model has 10 classes (0-9)"),
    (["filters", "{not_a_run}"], "config.json: not found (is "),
    (["variance", "{not_a_run}"], "config.json: not found (is "),
    (["filters", "{run}", "--layer", "f6"], "layer f6 (Linear) has no conv kernels; conv "
                                            "layers: c1, c3, c5"),
    (["saliency", "{run}", "{missing}"], "missing.png: no such image file"),
    (["variance", "{run}", "--init", "he"], "--init and --act apply to an untrained MODEL"),
    (["variance", "resnet"], "unknown model"),
])
def test_bad_input_is_one_clear_line_and_exit_2(run, tmp_path, capsys, test_images, argv,
                                               message):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    image = tmp_path / "ok.png"
    Image.fromarray(test_images.images[1, 0].numpy()).save(image)
    (tmp_path / "empty").mkdir()
    names = {"run": str(run), "bad_image": str(bad), "image": str(image),
             "not_a_run": str(tmp_path / "empty"), "missing": str(tmp_path / "missing.png")}
    out = tmp_path / "out.png"
    code = main(["viz", *[a.format(**names) for a in argv], "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("cnnzoo viz: error: ")
    assert message in err
    assert not out.exists()
