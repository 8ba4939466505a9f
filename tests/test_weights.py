"""Published weights: the table, the real download code against an http.server on 127.0.0.1
(good, truncated, wrong-hash and dropped-mid-file transfers, resume, no network), the cache
re-hashed on every load, loading into the zoo's networks with their preprocessing."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import math
import re
import socket
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save

from cnnzoo.errors import CheckpointError, CnnzooError
from cnnzoo.models import weights
from cnnzoo.models.registry import create_model, list_models, model_info
from cnnzoo.models.weights import WEIGHTS, Weights, WeightsError
from cnnzoo.utils.download import RETRIES, ChecksumError, download

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")


# ------------------------------------------------------------------------- the test server
class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `files`; honours `Range: bytes=N-` (206) unless `no_range`; `drops[name]`
    requests of that file send half of what they promise and hang up; `delay` slows each
    response (to make concurrent downloads overlap)."""

    files: dict = {}
    drops: dict = {}
    no_range = False
    delay = 0.0
    log: list = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        name = self.path.rsplit("/", 1)[-1]
        rng = self.headers.get("Range")
        self.log.append((name, rng))
        if name not in self.files:
            self.send_error(404)
            return
        body, start = self.files[name], 0
        if rng and not self.no_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng)[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        time.sleep(self.delay)
        rest = body[start:]
        if self.drops.get(name, 0) > 0:
            self.drops[name] -= 1
            self.wfile.write(rest[: len(rest) // 2])  # promise everything, send half, hang up
            self.close_connection = True
            return
        self.wfile.write(rest)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("H", (_Handler,), {"files": {}, "drops": {}, "log": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _pth(sd: dict) -> bytes:
    """A state dict as torchvision publishes its weights: torch.save of the state_dict."""
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


def _tv_name(stem: str, blob: bytes) -> tuple[str, str]:
    """torchvision's file naming: `<stem>-<first 8 hex of the sha256>.pth`."""
    sha = hashlib.sha256(blob).hexdigest()
    return f"{stem}-{sha[:8]}.pth", sha


def _serve(monkeypatch, handler, url, name, blob, *, stem=None, base=None, **kw) -> Weights:
    """Put `blob` on the server in torchvision's naming and point `name`'s entry at it."""
    file, sha = _tv_name(stem or name, blob)
    handler.files[file] = blob
    base = base or WEIGHTS.get(name) or Weights(
        url="", file="", sha256=None, origin="test", top1=50.0, top1_source="test", crop=32,
        resize=32, classes=CIFAR_CLASSES)
    entry = dataclasses.replace(base, url=url + file, file=file, sha256=sha[:8], **kw)
    monkeypatch.setitem(WEIGHTS, name, entry)
    return entry


@pytest.fixture(scope="module")
def resnet20_sd():
    torch.manual_seed(0)
    return create_model("resnet20").state_dict()


def _closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


def _cache_files():
    folder = weights.cache_dir() / "weights"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# ------------------------------------------------------------------------------- the table
def test_torchvision_entries_match_the_registry_and_torchvisions_file_names():
    tv = {n for n in list_models() if model_info(n).ref_source.startswith("torchvision")}
    assert tv <= WEIGHTS.keys()  # every network quoting torchvision's weights can load them
    assert {n for n, w in WEIGHTS.items() if w.origin.startswith("torchvision")} == tv
    for name in tv:
        w, info = WEIGHTS[name], model_info(name)
        assert w.url == "https://download.pytorch.org/models/" + w.file
        assert re.fullmatch(r"[a-z0-9_]+(-owt|_google)?-[0-9a-f]{8}\.pth", w.file), w.file
        assert w.file.rsplit("-", 1)[1] == f"{w.sha256}.pth"  # the hash prefix in the name
        assert w.top1 == info.ref_top1_acc and w.crop == info.input_size[1], name
        assert (w.mean, w.std, w.interpolation) == ((0.485, 0.456, 0.406),
                                                    (0.229, 0.224, 0.225), "bilinear")
        assert w.resize > w.crop and w.classes == "imagenet-1k" and not w.key_map
    assert {n for n, w in WEIGHTS.items() if w.transform_input} == {"googlenet", "inception_v3"}


def test_timm_entries_name_their_hub_files_and_publish_no_hash():
    for name, hub, pct in (("inception_v4", "inception_v4.tf_in1k", 0.875),
                           ("inception_resnet_v2", "inception_resnet_v2.tf_in1k", 0.8975)):
        w = WEIGHTS[name]
        assert w.url == f"https://huggingface.co/timm/{hub}/resolve/main/model.safetensors"
        assert w.sha256 is None and w.format == "safetensors" and w.file == f"{hub}.safetensors"
        assert (w.crop, w.resize, w.interpolation) == (299, math.floor(299 / pct), "bicubic")
        assert w.mean == w.std == (0.5, 0.5, 0.5) and not w.transform_input
        assert hub in w.top1_source and 75 < w.top1 < 85
    assert len({w.file for w in WEIGHTS.values()}) == len(WEIGHTS)  # cache names unique


def test_imagenet_class_names_in_torchvisions_order():
    names = weights.imagenet_classes()
    assert len(names) == 1000
    assert (names[0], names[1], names[207], names[281], names[409], names[999]) == (
        "tench", "goldfish", "golden retriever", "tabby", "analog clock", "toilet tissue")
    # torchvision's list repeats two WordNet lemmas (different synsets): kept as published
    dup = {n for n in names if names.count(n) > 1}
    assert dup == {"crane", "maillot"}
    assert [i for i, n in enumerate(names) if n in dup] == [134, 517, 638, 639]


# Real key names from timm's source (timm/models/inception_v4.py, inception_resnet_v2.py: the
# module names and channel numbers there), with the shapes that source gives them.
TIMM_KEYS = {
    "inception_v4": {
        "features.0.conv.weight": (32, 3, 3, 3),
        "features.2.bn.running_var": (64,),
        "features.3.conv.conv.weight": (96, 64, 3, 3),  # Mixed3a.conv
        "features.4.branch1.3.conv.weight": (96, 64, 3, 3),  # Mixed4a
        "features.5.conv.bn.bias": (192,),  # Mixed5a.conv
        "features.9.branch3.1.conv.weight": (96, 384, 1, 1),  # 4th InceptionA
        "features.10.branch1.2.conv.weight": (256, 224, 3, 3),  # ReductionA
        "features.17.branch2.4.conv.weight": (256, 224, 1, 7),  # 7th InceptionB
        "features.18.branch1.3.conv.weight": (320, 320, 3, 3),  # ReductionB
        "features.19.branch1_1a.conv.weight": (256, 384, 1, 3),  # InceptionC
        "features.21.branch2_1.conv.weight": (448, 384, 3, 1),
        "features.21.branch2_3b.bn.running_mean": (256,),
        "last_linear.weight": (1000, 1536),
    },
    "inception_resnet_v2": {
        "conv2d_1a.conv.weight": (32, 3, 3, 3),
        "conv2d_3b.conv.weight": (80, 64, 1, 1),
        "conv2d_4a.bn.running_var": (192,),
        "mixed_5b.branch1.1.conv.weight": (64, 48, 5, 5),
        "repeat.0.branch2.2.conv.weight": (64, 48, 3, 3),  # Block35
        "repeat.9.conv2d.bias": (320,),
        "mixed_6a.branch0.conv.weight": (384, 320, 3, 3),
        "repeat_1.19.branch1.2.conv.weight": (192, 160, 7, 1),  # Block17
        "mixed_7a.branch2.2.conv.weight": (320, 288, 3, 3),
        "repeat_2.8.branch1.1.conv.weight": (224, 192, 1, 3),  # Block8
        "block8.conv2d.weight": (2080, 448, 1, 1),
        "conv2d_7b.bn.weight": (1536,),
        "classif.bias": (1000,),
    },
}


@pytest.mark.parametrize("name", sorted(TIMM_KEYS))
def test_timm_key_map_sends_timms_names_to_the_same_tensors(name):
    with torch.device("meta"):
        ours = create_model(name).state_dict()
    fake = {k: torch.empty(s, device="meta") for k, s in TIMM_KEYS[name].items()}
    mapped = weights._map_keys(fake, WEIGHTS[name].key_map)
    assert len(mapped) == len(fake)
    for timm_key, our_key in zip(fake, mapped):
        assert our_key in ours, (timm_key, our_key)
        assert tuple(ours[our_key].shape) == TIMM_KEYS[name][timm_key], (timm_key, our_key)
    # every cnnzoo module the table names holds tensors, and no two timm modules share one
    targets = [t for _, t in WEIGHTS[name].key_map]
    assert len(targets) == len(set(targets))
    assert all(any(k.startswith(t + ".") for k in ours) for t in targets)


# ---------------------------------------------------------------- download, cache, re-hash
def test_download_into_the_cache_with_the_full_digest_recorded(server, monkeypatch,
                                                               resnet20_sd):
    handler, url = server
    blob = _pth(resnet20_sd)
    entry = _serve(monkeypatch, handler, url, "resnet20", blob)
    path = weights.fetch("resnet20")
    assert path == weights.weights_path("resnet20") == weights.cache_dir() / "weights" / entry.file
    assert path.read_bytes() == blob
    full = hashlib.sha256(blob).hexdigest()
    assert weights.recorded_sha256("resnet20") == full
    assert (path.parent / (entry.file + ".sha256")).read_text() == f"{full}  {entry.file}\n"
    assert _cache_files() == [entry.file, entry.file + ".sha256"]  # no .part left
    n = len(handler.log)
    assert weights.fetch("resnet20") == path and len(handler.log) == n  # a cache hit
    assert weights.verify("resnet20") == full


def test_a_corrupted_cache_hit_is_caught_removed_and_named(server, monkeypatch, resnet20_sd):
    handler, url = server
    entry = _serve(monkeypatch, handler, url, "resnet20", _pth(resnet20_sd))
    path = weights.fetch("resnet20")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(data))
    bad = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(ChecksumError) as e:
        create_model("resnet20", pretrained=True)
    msg = str(e.value)
    assert entry.url in msg and bad in msg and weights.recorded_sha256("resnet20") is None
    assert f"expected {entry.sha256}" in msg and str(path) in msg
    assert not path.exists() and _cache_files() == []
    assert torch.equal(create_model("resnet20", pretrained=True).conv1.weight,
                       resnet20_sd["conv1.weight"])  # the next load downloads it afresh


@pytest.mark.parametrize("what", ["truncated", "other weights"])
def test_a_file_with_the_wrong_hash_is_discarded_naming_url_and_both_hashes(
        server, monkeypatch, resnet20_sd, what):
    handler, url = server
    good = _pth(resnet20_sd)
    entry = _serve(monkeypatch, handler, url, "resnet20", good)
    served = good[: len(good) * 2 // 3] if what == "truncated" else _pth(
        {k: v + 1 for k, v in resnet20_sd.items()})
    handler.files[entry.file] = served  # complete transfer of the wrong bytes
    with pytest.raises(ChecksumError) as e:
        weights.fetch("resnet20")
    actual = hashlib.sha256(served).hexdigest()
    assert str(e.value) == (f"{entry.url}: checksum mismatch (sha256 {actual}, expected "
                            f"{entry.sha256}); discarded")
    assert _cache_files() == []  # neither the file nor a .part


def test_a_connection_dropped_mid_file_is_resumed_with_a_range_request(server, monkeypatch,
                                                                       resnet20_sd):
    handler, url = server
    blob = _pth(resnet20_sd)
    entry = _serve(monkeypatch, handler, url, "resnet20", blob)
    handler.drops[entry.file] = 1
    assert weights.fetch("resnet20").read_bytes() == blob
    assert handler.log == [(entry.file, None), (entry.file, f"bytes={len(blob) // 2}-")]


def test_an_interrupted_download_resumes_where_it_stopped_on_the_next_call(
        server, monkeypatch, resnet20_sd):
    handler, url = server
    blob = _pth(resnet20_sd)
    entry = _serve(monkeypatch, handler, url, "resnet20", blob)
    handler.drops[entry.file] = RETRIES + 1  # every attempt of this call hangs up half-way
    with pytest.raises(WeightsError) as e:
        weights.fetch("resnet20")
    part = weights.weights_path("resnet20").with_name(entry.file + ".part")
    have = part.stat().st_size
    assert 0 < have < len(blob) and part.read_bytes() == blob[:have]
    msg = str(e.value)
    assert entry.url in msg and str(part) in msg and str(weights.weights_path("resnet20")) in msg
    handler.log.clear()
    assert weights.fetch("resnet20").read_bytes() == blob
    assert handler.log == [(entry.file, f"bytes={have}-")]  # not from the start
    assert _cache_files() == [entry.file, entry.file + ".sha256"]


def test_a_server_ignoring_range_starts_over(server, monkeypatch, resnet20_sd):
    handler, url = server
    blob = _pth(resnet20_sd)
    entry = _serve(monkeypatch, handler, url, "resnet20", blob)
    handler.no_range, handler.drops[entry.file] = True, 1
    assert weights.fetch("resnet20").read_bytes() == blob  # the 200 answer replaced the .part
    assert [r for _, r in handler.log] == [None, f"bytes={len(blob) // 2}-"]


def test_a_part_file_already_complete_is_finished_by_a_416(server, monkeypatch, resnet20_sd):
    handler, url = server
    blob = _pth(resnet20_sd)
    entry = _serve(monkeypatch, handler, url, "resnet20", blob)
    part = weights.weights_path("resnet20").with_name(entry.file + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(blob)  # interrupted after the last byte, before the rename
    assert weights.fetch("resnet20").read_bytes() == blob
    assert handler.log == [(entry.file, f"bytes={len(blob)}-")]


def test_no_network_is_one_message_with_the_url_and_the_cache_path(monkeypatch, resnet20_sd):
    dead = _closed_port_url()
    entry = _serve(monkeypatch, type("H", (), {"files": {}}), dead, "resnet20",
                   _pth(resnet20_sd))
    with pytest.raises(WeightsError) as e:
        create_model("resnet20", pretrained=True)
    msg = str(e.value)
    assert "\n" not in msg and entry.url in msg
    assert msg.endswith(f"save it as {weights.cache_dir() / 'weights' / entry.file}")
    assert _cache_files() == []


def test_a_mirror_from_the_environment(server, monkeypatch, resnet20_sd):
    handler, url = server
    blob = _pth(resnet20_sd)
    _serve(monkeypatch, handler, _closed_port_url(), "resnet20", blob)  # the table's URL: dead
    monkeypatch.setenv("CNNZOO_WEIGHTS_URL", url + "mirror")
    assert weights.fetch("resnet20").read_bytes() == blob
    assert handler.log[0][0] == WEIGHTS["resnet20"].file


def test_two_processes_fetching_one_file_download_it_once(server, tmp_path):
    handler, url = server
    blob = bytes(range(256)) * 4096
    handler.files["f.bin"], handler.delay = blob, 0.3
    dest, got = tmp_path / "f.bin", []
    threads = [threading.Thread(target=lambda: got.append(download(url + "f.bin", dest)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [hashlib.sha256(blob).hexdigest()] * 2 and dest.read_bytes() == blob
    assert len(handler.log) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


# --------------------------------------------------------------------- loading and using
@pytest.fixture(scope="module")
def tabby_squeezenet():
    """squeezenet1_1 weights whose classifier says 'tabby' (class 281) for every image."""
    torch.manual_seed(0)
    sd = create_model("squeezenet1_1").state_dict()
    sd["classifier.1.weight"].zero_()
    sd["classifier.1.bias"].zero_()
    sd["classifier.1.bias"][281] = 8.0
    return sd


def _photo(path, size=(400, 300)):
    g = torch.Generator().manual_seed(1)
    arr = torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8)
    Image.fromarray(arr.numpy()).save(path)
    return path


def test_create_model_pretrained_carries_its_preprocessing_and_classes(
        server, monkeypatch, tabby_squeezenet, tmp_path):
    from cnnzoo.evaluate.pretrained import predict_pretrained

    handler, url = server
    _serve(monkeypatch, handler, url, "squeezenet1_1", _pth(tabby_squeezenet))
    model = create_model("squeezenet1_1", pretrained=True)
    assert all(torch.equal(v, tabby_squeezenet[k]) for k, v in model.state_dict().items())
    cfg = model.pretrained_cfg
    assert (cfg["crop"], cfg["resize"], cfg["interpolation"]) == (224, 256, "bilinear")
    assert cfg["mean"] == [0.485, 0.456, 0.406] and cfg["std"] == [0.229, 0.224, 0.225]
    assert cfg["classes"] == list(weights.imagenet_classes()) and cfg["top1"] == 58.178
    assert cfg["input_size"] == [3, 224, 224] and "SqueezeNet1_1" in cfg["top1_source"]
    [(path, top)] = predict_pretrained("squeezenet1_1", [_photo(tmp_path / "cat.png")])
    assert path == str(tmp_path / "cat.png") and top[0][0] == "tabby" and top[0][1] > 0.5
    assert len(top) == 5 and all(n in weights.imagenet_classes() for n, _ in top)


def test_pretrained_with_other_classes_resets_only_the_classifier(
        server, monkeypatch, tabby_squeezenet):
    handler, url = server
    _serve(monkeypatch, handler, url, "squeezenet1_1", _pth(tabby_squeezenet))
    model = create_model("squeezenet1_1", num_classes=5, pretrained=True)
    sd = model.state_dict()
    assert sd["classifier.1.weight"].shape[0] == 5
    assert all(torch.equal(sd[k], v) for k, v in tabby_squeezenet.items()
               if k.startswith("features."))
    assert model.pretrained_cfg["classes"] is None and model.pretrained_cfg["num_classes"] == 5
    with pytest.raises(WeightsError, match="3-channel input, not in_chans=1"):
        create_model("squeezenet1_1", in_chans=1, pretrained=True)


def test_tf_ported_weights_get_transform_input_or_the_matching_normalisation(
        server, monkeypatch):
    handler, url = server
    torch.manual_seed(0)
    _serve(monkeypatch, handler, url, "googlenet",
           _pth(create_model("googlenet", transform_input=True).state_dict()))
    model = create_model("googlenet", pretrained=True)
    assert model.transform_input and model.pretrained_cfg["mean"] == [0.485, 0.456, 0.406]
    # built without it, the weights are fed [-1, 1] by the normalisation itself
    plain = create_model("googlenet", pretrained=True, transform_input=False)
    assert not plain.transform_input and not plain.pretrained_cfg["transform_input"]
    assert plain.pretrained_cfg["mean"] == plain.pretrained_cfg["std"] == [0.5, 0.5, 0.5]
    x = torch.rand(1, 3, 64, 64)
    norm = [(x - torch.tensor(m["mean"]).view(1, 3, 1, 1)) / torch.tensor(m["std"]).view(
        1, 3, 1, 1) for m in (model.pretrained_cfg, plain.pretrained_cfg)]
    with torch.no_grad():
        a, b = model.eval()(norm[0]), plain.eval()(norm[1])
    assert (a - b).abs().max() < 1e-4 * a.abs().max(), ((a - b).abs().max(), a.abs().max())


def test_weights_for_another_architecture_name_the_keys(server, monkeypatch):
    handler, url = server
    _serve(monkeypatch, handler, url, "resnet20", _pth(create_model("resnet32").state_dict()))
    with pytest.raises(CheckpointError, match=r"resnet20-[0-9a-f]{8}\.pth: does not fit "
                       r"resnet20: unexpected keys \(\d+\): layer1\.3\."):
        create_model("resnet20", pretrained=True)
    _serve(monkeypatch, handler, url, "resnet20",
           _pth(create_model("resnet20", num_classes=100).state_dict()), stem="resnet20c100")
    with pytest.raises(CheckpointError, match=r"shape mismatch: fc\.bias \[100\] in the file, "
                       r"\[10\] in the model"):
        create_model("resnet20", pretrained=True)


def test_a_mapped_safetensors_file_without_a_published_hash(server, monkeypatch, resnet20_sd):
    """timm's kind of entry: other key names, safetensors, the digest recorded on arrival."""
    handler, url = server
    renamed = {re.sub(r"^conv1\.", "stem.", re.sub(r"^fc\.", "head.", k)): v
               for k, v in resnet20_sd.items()}
    blob = save(renamed)
    handler.files["r20.safetensors"] = blob
    monkeypatch.setitem(WEIGHTS, "resnet20", Weights(
        url=url + "r20.safetensors", file="r20.safetensors", sha256=None, origin="test",
        top1=50.0, top1_source="test", crop=32, resize=32, classes=CIFAR_CLASSES,
        key_map=(("stem", "conv1"), ("head", "fc"))))
    model = create_model("resnet20", pretrained=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in resnet20_sd.items())
    assert model.pretrained_cfg["classes"] == list(CIFAR_CLASSES)
    assert weights.recorded_sha256("resnet20") == hashlib.sha256(blob).hexdigest()
    path = weights.weights_path("resnet20")
    path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(ChecksumError, match=f"expected {hashlib.sha256(blob).hexdigest()}"):
        weights.verify("resnet20")
    assert not path.exists()
    monkeypatch.setitem(WEIGHTS, "resnet20", dataclasses.replace(
        WEIGHTS["resnet20"], key_map=(("head", "fc"),)))  # a table that misses a module
    with pytest.raises(CheckpointError, match=r"r20\.safetensors \(test, its key names mapped "
                       r"to cnnzoo's\): does not fit resnet20: missing keys \(1\): conv1\.weight"):
        create_model("resnet20", pretrained=True)


def test_models_without_weights_and_unknown_names():
    with pytest.raises(WeightsError, match="no published weights for lenet5; models with "
                       "weights: alexnet, "):
        create_model("lenet5", pretrained=True)
    with pytest.raises(KeyError, match="unknown model 'resnet51'; did you mean"):
        create_model("resnet51", pretrained=True)
    assert isinstance(WeightsError("x"), CnnzooError)


# ----------------------------------------------------------------------- preprocessing
def test_images_are_read_with_the_weights_own_preprocessing(tmp_path):
    from cnnzoo.evaluate.pretrained import preprocess_of, pretrained_inputs

    img = _photo(tmp_path / "p.png", size=(400, 300))
    cfg = weights.pretrained_cfg("resnet50")
    x = pretrained_inputs([img], cfg)
    # by hand: shorter side 300 -> 256 (400 -> 341), bilinear, centre 224 x 224
    with Image.open(img) as im:
        ref = im.convert("RGB").resize((341, 256), Image.Resampling.BILINEAR)
    ref = torch.from_numpy(np.asarray(ref.crop((58, 16, 282, 240))).copy())
    assert x.shape == (1, 3, 224, 224)
    assert torch.equal(x[0], ref.permute(2, 0, 1).float() / 255)
    p = preprocess_of(weights.pretrained_cfg("inception_v3"))
    assert (p.size, p.shorter, p.interpolation) == ((299, 299), 342, "bilinear")
    p = preprocess_of(weights.pretrained_cfg("inception_resnet_v2"))
    assert (p.size, p.shorter, p.interpolation) == ((299, 299), 333, "bicubic")


# -------------------------------------------------------------------------------- the CLI
def test_cli_weights_fetch_verify_list(server, monkeypatch, resnet20_sd, capsys):
    from cnnzoo.cli import main

    handler, url = server
    blob = _pth(resnet20_sd)
    entry = _serve(monkeypatch, handler, url, "resnet20", blob)
    path = weights.weights_path("resnet20")
    assert main(["weights", "fetch", "resnet20"]) == 0
    full = hashlib.sha256(blob).hexdigest()
    assert capsys.readouterr().out == f"resnet20: {path}\n  sha256 {full} (verified)\n"
    assert main(["weights", "verify", "resnet20"]) == 0
    assert capsys.readouterr().out == f"resnet20: ok  sha256 {full}  {path}\n"
    assert main(["weights", "list"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["resnet20"][:4] == ["resnet20", "50.000", "32/32", "bilinear"]
    assert rows["resnet50"][1:5] == ["76.130", "256/224", "bilinear", "-"]
    assert rows["googlenet"][4] == "tf" and rows["inception_v4"][2:4] == ["341/299", "bicubic"]
    path.write_bytes(blob[:-10])
    assert main(["weights", "verify", "resnet20"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and entry.url in err and "checksum mismatch" in err
    assert not path.exists()


def test_cli_predict_pretrained_prints_imagenet_names(server, monkeypatch, tabby_squeezenet,
                                                      tmp_path, capsys):
    from cnnzoo.cli import main

    handler, url = server
    _serve(monkeypatch, handler, url, "squeezenet1_1", _pth(tabby_squeezenet))
    img = _photo(tmp_path / "cat.jpg")
    assert main(["predict", "--pretrained", "squeezenet1_1", str(img), "--topk", "3",
                 "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(img) and len(lines) == 4
    assert re.fullmatch(r"\s+\d+\.\d\d%  tabby", lines[1])
