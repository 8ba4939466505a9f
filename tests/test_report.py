"""`cnnzoo report` without a browser: sections, inlined PNGs, escaping, reuse of eval output,
several runs, a run without its data, bad input."""

import base64
import io
import json
import os
import shutil
from html.parser import HTMLParser

import pytest
from PIL import Image

from cnnzoo.cli import main
from cnnzoo.models import create_model
from cnnzoo.report import build_report, report_html
from cnnzoo.train import TrainConfig, train

DATA = {"num_samples": 320, "channels": 1, "size": 28}
SECTIONS = ("config", "curves", "warnings", "results", "filters", "layers", "examples",
            "patches")
EVIL = '<script>alert("x")</script>&"'


class Page(HTMLParser):
    """Tags, ids, image sources, links and the text of every table cell of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.ids, self.srcs, self.hrefs, self.cells = [], set(), [], [], []
        self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.srcs.append(a.get("src", ""))
        if "href" in a:
            self.hrefs.append(a["href"])
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def pct(v):
    return f"{100 * v:.2f}%"


def logged_test_acc(run_dir):
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in recs if r["kind"] == "test"][-1]["test_acc"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet"
    train(TrainConfig(model="lenet5", dataset="synthetic", dataset_kwargs=DATA, epochs=2,
                      batch_size=32, out=str(out), log_every=1, threads=1, progress=False,
                      eval_test=True))
    return out


@pytest.fixture(scope="module")
def page(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    build_report(run, out)
    return out.read_text(encoding="utf-8")


def test_every_section_and_every_image_inlined(page, run):
    p = Page(page)
    assert set(SECTIONS) <= p.ids
    assert "script" not in p.tags and "link" not in p.tags
    assert all(h.startswith("#") and h[1:] in p.ids for h in p.hrefs)  # only in-page links
    # curves, confusion, 2 filter epochs, 8 examples (x2 with Grad-CAM), patches
    assert len(p.srcs) >= 12
    for src in p.srcs:
        head, data = src.split(",", 1)
        assert head == "data:image/png;base64"
        im = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        assert im.format == "PNG" and min(im.size) > 0
    assert "://" not in page.replace("file://", "")  # nothing to fetch (no http(s) URL)


def test_tables_hold_the_runs_numbers(page, run):
    cells = Page(page).cells
    acc = logged_test_acc(run)
    assert pct(acc) in cells  # the trainer's test record
    row = cells.index("test top-1")
    assert cells[row + 1] == pct(acc)  # computed here on the same weights and split
    config = json.loads((run / "config.json").read_text())
    params = sum(p.numel() for p in create_model("lenet5", 10, 1).parameters())
    assert "c3" in cells and "Conv2d" in cells and f"{params:,} parameters" in page  # layers
    for name in config["classes"]:
        assert name in cells  # per-class accuracy rows
    val = max(json.loads(x).get("val_acc") or 0 for x in
              (run / "metrics.jsonl").read_text().splitlines())
    assert any(c.startswith(pct(val)) for c in cells)


def test_strings_from_the_run_are_escaped(run, tmp_path):
    d = tmp_path / "evil"
    shutil.copytree(run, d)
    config = json.loads((d / "config.json").read_text())
    config["classes"][0] = EVIL
    config["train"]["augment"] = EVIL
    (d / "config.json").write_text(json.dumps(config))
    recs = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    next(r for r in recs if r["kind"] == "epoch")["warnings"] = [f"c1: {EVIL}"]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = report_html(d)
    assert EVIL not in text and "<script" not in text
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&quot;"
    assert text.count(escaped) >= 3  # class name (config, per-class table), recipe, warning
    assert EVIL in Page(text).cells  # and it reads back as the original text


def test_eval_output_is_reused_only_when_newer_than_the_weights(run, tmp_path):
    d = tmp_path / "evaluated"
    shutil.copytree(run, d)
    assert main(["eval", str(d), "--device", "cpu"]) == 0
    path = d / "eval" / "synthetic_none_best.json"
    r = json.loads(path.read_text())
    r["top1"] = 0.1234  # a value no model of this run gives: seen only if the file is read
    path.write_text(json.dumps(r))
    cells = Page(report_html(d)).cells
    assert cells[cells.index("test top-1") + 1] == "12.34%"
    assert "eval/synthetic_none_best.json (cnnzoo eval)" in cells
    old = (d / "best.safetensors").stat().st_mtime - 60
    os.utime(path, (old, old))  # evaluated before the weights were written: stale
    cells = Page(report_html(d)).cells
    assert cells[cells.index("test top-1") + 1] == pct(logged_test_acc(run))


def test_a_run_without_its_data_still_gets_a_page(run, tmp_path):
    d = tmp_path / "moved"
    shutil.copytree(run, d)
    config = json.loads((d / "config.json").read_text())
    config |= {"dataset": "folder", "data_dir": str(tmp_path / "gone"), "dataset_kwargs": {}}
    (d / "config.json").write_text(json.dumps(config))
    text = report_html(d)
    p = Page(text)
    assert set(SECTIONS) - {"patches"} <= p.ids
    assert "No test split here" in text and "image folder not found" in text
    assert pct(logged_test_acc(run)) in p.cells  # the trainer's record stands in


def test_several_runs_side_by_side(run, tmp_path):
    a, b = tmp_path / "a" / "lenet", tmp_path / "b" / "lenet"
    shutil.copytree(run, a)
    shutil.copytree(run, b)
    config = json.loads((b / "config.json").read_text())
    config["train"]["lr"] = 0.5
    (b / "config.json").write_text(json.dumps(config))
    out = tmp_path / "both.html"
    assert main(["report", str(a), str(b), "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    p = Page(text)
    assert {"results", "curves", "config", "runs"} <= p.ids
    assert "a/lenet" in p.cells and "b/lenet" in p.cells  # same folder names: parents added
    row = p.cells.index("train.lr")
    assert p.cells[row + 1:row + 3] == ["0.01", "0.5"]  # the config difference, per run
    for name in ("a/lenet", "b/lenet"):  # one results row per run
        i = p.cells.index(name)
        assert p.cells[i + 1:i + 3] == ["lenet5", "synthetic"]
        assert p.cells[i + 8] == pct(logged_test_acc(run))  # the trainer's test column
    assert len(p.srcs) >= 3  # overlaid curves + a confusion matrix per run


def test_a_folder_of_runs_gives_each(run, tmp_path):
    for seed in ("seed0", "seed1"):  # the layout of an ensemble's members
        shutil.copytree(run, tmp_path / "ens" / seed)
    cells = Page(report_html(tmp_path / "ens")).cells
    assert "seed0" in cells and "seed1" in cells


def test_not_a_run_is_one_line_and_exit_2(run, tmp_path, capsys):
    out = tmp_path / "r.html"
    cases = [(tmp_path, "not a cnnzoo run folder"), (tmp_path / "nope", "no such folder"),
             (run / "config.json", "not a cnnzoo run folder")]
    for path, why in cases:
        assert main(["report", str(path), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err and str(path) in err
        assert err.startswith("cnnzoo report: error: ")
    bad = tmp_path / "noweights"
    shutil.copytree(run, bad, ignore=shutil.ignore_patterns("*.safetensors"))
    assert main(["report", str(run), str(bad), "-o", str(out)]) == 2  # checked before work
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no best.safetensors or weights.safetensors" in err
    assert not out.exists() and not list(tmp_path.glob(".r.html*"))
