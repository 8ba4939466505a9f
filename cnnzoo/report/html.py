"""One self-contained HTML page per run: every image a base64 data: URI, a small inline CSS,
no script, nothing fetched, so the file opens anywhere (a USB stick, no network).

Every string that comes from a run (config values, class names, layer names, warnings) goes
through `esc`; only `Raw` strings (HTML built here) pass unchanged.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
from pathlib import Path

import torch
from PIL import Image

from cnnzoo.report.run import RunData

EXAMPLES = 8  # test images with prediction and Grad-CAM
PATCH_CHANNELS = 4  # channels of the middle layer shown with their top patches
PATCH_IMAGES = 2048  # test images searched for them (the first ones, in the split's order)
MAX_FILTER_EPOCHS = 6

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;
 background:#f4f5f7;margin:0}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
header{background:#1d2330;color:#fff;padding:18px 24px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;color:#c9cfdb}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #dde1e8;padding:6px 24px;
 z-index:1;font-size:13px} nav a{margin-right:14px;color:#2556a8;text-decoration:none}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;margin:16px 0;
 padding:4px 18px 14px}
h2{font-size:17px;margin:12px 0 8px} h3{font-size:14px;margin:10px 0 4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #e3e6ec;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f6} td.n{text-align:right;font-variant-numeric:tabular-nums}
.scroll{max-height:520px;overflow:auto;display:inline-block;max-width:100%}
.scroll th{position:sticky;top:0}
img{max-width:100%} img.px{image-rendering:pixelated}
.row{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure{margin:4px 0;text-align:center;font-size:12px}
figcaption{color:#4a5366;margin-top:2px}
.card{border:2px solid #b7e1c1;border-radius:6px;padding:6px;background:#fbfdfb}
.card.bad{border-color:#efb3b3;background:#fdf9f9}
.bar{background:#dfe7f5;width:160px;height:11px;display:inline-block}
.bar i{display:block;height:100%;background:#3b73c9}
.warn{color:#8a4b00} .note{color:#5b6475;font-size:12.5px} .ok{color:#23743a}
.tiles{display:grid;gap:4px;grid-template-columns:repeat(3,auto)}
.tiles figure{font-size:10.5px;line-height:1.2}
.cols{display:grid;gap:14px;grid-template-columns:repeat(auto-fit,minmax(300px,1fr))}
code{background:#f0f2f6;padding:0 3px;border-radius:3px}
"""


class Raw(str):
    """HTML built by this module: `esc` leaves it as it is."""


def esc(v) -> Raw:
    return v if isinstance(v, Raw) else Raw(html.escape(str(v), quote=True))


def join(parts) -> Raw:
    return Raw("".join(esc(p) for p in parts if p is not None and p != ""))


def tag(name: str, *children, **attrs) -> Raw:
    """<name attrs>children</name>; `cls` is the class attribute; attribute values escaped."""
    a = "".join(f' {"class" if k == "cls" else k.replace("_", "-")}="{esc(v)}"'
                for k, v in attrs.items() if v is not None)
    if name in ("br", "hr"):  # void elements: "</br>" would be read as a second <br>
        return Raw(f"<{name}{a}>")
    return Raw(f"<{name}{a}>{join(children)}</{name}>")


def png_bytes(obj) -> bytes:
    """PNG bytes of a PIL image, a path written by one of the viz functions, or bytes."""
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj)
    if isinstance(obj, Image.Image):
        buf = io.BytesIO()
        obj.save(buf, format="PNG")
        return buf.getvalue()
    if hasattr(obj, "savefig"):  # a matplotlib Figure
        buf = io.BytesIO()
        obj.savefig(buf, format="png", dpi=100)
        return buf.getvalue()
    return Path(obj).read_bytes()


def rendered(fn, *args, **kwargs) -> bytes:
    """PNG bytes of a viz function that writes its figure to a path given as the last arg."""
    with tempfile.TemporaryDirectory(prefix="cnnzoo-report-") as d:
        out = Path(d) / "figure.png"
        fn(*args, out, **kwargs)
        return out.read_bytes()


def img(obj, alt: str, *, width: int | None = None, cls: str | None = None) -> Raw:
    data = base64.b64encode(png_bytes(obj)).decode("ascii")
    style = f"width:{width}px" if width else None
    return Raw(f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}"'
               + (f' class="{esc(cls)}"' if cls else "")
               + (f' style="{style}"' if style else "") + ">")


def figure(obj, caption, **kw) -> Raw:
    return tag("figure", img(obj, str(caption), **kw), tag("figcaption", caption))


def table(head, rows, *, numeric=(), cls: str | None = None) -> Raw:
    """A table (no header row when `head` is None); cells are escaped unless Raw; column
    indices in `numeric` align right."""
    th = tag("thead", tag("tr", *(tag("th", h) for h in head))) if head else ""
    trs = [tag("tr", *(tag("td", c, cls="n" if i in numeric else None)
                       for i, c in enumerate(r))) for r in rows]
    t = tag("table", th, tag("tbody", *trs))
    return tag("div", t, cls=cls) if cls else t


def section(sid: str, title: str, *body) -> Raw:
    return tag("section", tag("h2", title), *body, id=sid)


def note(text) -> Raw:
    return tag("p", text, cls="note")


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def num(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def page(title: str, subtitle, sections: list[tuple[str, str, Raw]]) -> str:
    """The whole document: header, a table of contents, the (id, title, html) sections."""
    nav = tag("nav", *(tag("a", t, href=f"#{sid}") for sid, t, _ in sections))
    body = tag("main", *(h for _, _, h in sections))
    head = (f'<meta charset="utf-8"><meta name="viewport" content="width=device-width,'
            f'initial-scale=1"><title>{esc(title)}</title><style>{CSS}</style>')
    top = tag("header", tag("h1", title), tag("p", subtitle))
    return f"<!DOCTYPE html>\n<html lang=\"en\"><head>{head}</head><body>{top}{nav}{body}" \
           "</body></html>\n"


# --- the sections of one run ----------------------------------------------------------------

def subtitle(run: RunData) -> Raw:
    from cnnzoo.models.registry import model_info

    c = run.config
    try:
        info = model_info(c["model"])
        about = info.paper
    except Exception:  # a run of a model this version does not register
        about = ""
    shape = "x".join(str(v) for v in c["input_size"])
    return join([f"{c['model']} on {c.get('dataset', '?')} {shape}, {run.which} weights",
                 f" — {about}" if about else "", f" — {run.path}"])


def recipe_of(config: dict) -> dict | None:
    """The model's default recipe for this input size (what the run's flags changed)."""
    from cnnzoo.models.registry import model_info
    from cnnzoo.train.recipes import recipe_for

    try:
        info = model_info(config["model"])
    except Exception:
        return None
    return recipe_for(info.recipe, small=max(config["input_size"][1:]) <= 64)


def config_section(run: RunData) -> Raw:
    from cnnzoo.train.recipes import FIELDS, describe

    c, train = run.config, dict(run.config.get("train") or {})
    classes = ", ".join(run.classes[:20]) + (" ..." if len(run.classes) > 20 else "")
    about = [
        ("model", c["model"]), ("model options", c.get("model_kwargs") or "none"),
        ("dataset", c.get("dataset")), ("dataset options", c.get("dataset_kwargs") or "none"),
        ("data folder", c.get("data_dir") or "default (cache / system folders)"),
        ("input size [C,H,W]", c["input_size"]), ("classes", f"{len(run.classes)}: {classes}"),
        ("mean", [round(v, 4) for v in c.get("mean", [])]),
        ("std", [round(v, 4) for v in c.get("std", [])]),
        ("weights", run.weights.name), ("cnnzoo version", c.get("cnnzoo_version", "?")),
    ]
    left, cols = [tag("h3", "Run"), table(None, about)], []
    rec = recipe_of(c)
    if train:
        rows = []
        for k in (k for k in FIELDS if k in train):
            default = rec.get(k) if rec else None
            if rec is not None and train[k] != default:
                rows.append((tag("b", k), tag("b", num(train[k])),
                             tag("span", f"changed (recipe: {num(default)})", cls="warn")))
            else:
                rows.append((k, num(train[k]), tag("span", "recipe", cls="note")))
        runtime = [(k, num(v)) for k, v in sorted(train.items()) if k not in FIELDS
                   and k not in ("model", "dataset", "model_kwargs", "dataset_kwargs")]
        left += [tag("h3", "Runtime"), table(None, runtime)]
        cols.append(tag("div", tag("h3", "Recipe"), table(("field", "value", ""), rows)))
    cols.insert(0, tag("div", *left))
    try:
        line = describe({k: train.get(k) for k in FIELDS}) if train else ""
    except (KeyError, TypeError):  # a run written by another version
        line = ""
    return section("config", "Config and recipe", tag("p", tag("code", line)) if line else "",
                   tag("div", *cols, cls="row"))


def curves_section(run: RunData) -> Raw:
    from cnnzoo.viz.plots import plot_curves

    if not run.records:
        return section("curves", "Curves", note(run.notes[0] if run.notes else "no metrics"))
    png = rendered(plot_curves, run.path / "metrics.jsonl")
    return section("curves", "Curves", img(png, "training curves"), note(
        "Loss per step and per epoch; train vs validation accuracy (the grey gap is "
        "overfitting); learning rate; update/weight ratio per layer (healthy around 1e-3) "
        "and activation variance per layer, measured once per epoch."))


def monitor_warnings(run: RunData) -> list[tuple[int, str]]:
    """(first epoch, message) of each distinct warning the monitor logged."""
    seen: dict[str, int] = {}
    for r in run.epochs:
        for msg in r.get("warnings") or []:
            seen.setdefault(str(msg), r.get("epoch", 0))
    return [(e, m) for m, e in seen.items()]


def warnings_section(run: RunData) -> Raw:
    warns = monitor_warnings(run)
    if warns:
        body = table(("first epoch", "warning"), [(e, m) for e, m in warns], numeric=(0,))
    elif any("update_ratio" in r or "act_var" in r for r in run.epochs):
        body = tag("p", "None: update/weight ratios stayed in range, no activations vanished "
                   "and no ReLU layer died.", cls="ok")
    else:
        body = note("The run was trained without the monitor (--no-monitor): nothing measured.")
    return section("warnings", "Monitor warnings", body)


def results_rows(run: RunData) -> list[tuple[str, str]]:
    r, ep = run.results, run.epochs
    rows = []
    if r is not None:
        rows += [("test top-1", pct(r["top1"])), ("test top-5", pct(r.get("top5"))),
                 ("test images", f"{r['n']:,}"), ("from", r["source"])]
    rec = run.test_record()
    if rec is not None:
        rows.append(("test accuracy logged by the trainer", pct(rec)))
    vals = [(e.get("val_acc"), e.get("epoch")) for e in ep if e.get("val_acc") is not None]
    if vals:
        best = max(vals, key=lambda t: t[0])
        rows += [("best val accuracy", f"{pct(best[0])} (epoch {best[1]})"),
                 ("last val accuracy", pct(vals[-1][0]))]
    if ep:
        last = ep[-1]
        rows.append(("epochs", str(last.get("epoch"))))
        if isinstance(last.get("time"), (int, float)):
            rows.append(("training time", f"{last['time']:.1f} s"))
        if last.get("train_acc") is not None and last.get("val_acc") is not None:
            rows.append(("train - val gap (last epoch)",
                         f"{100 * (last['train_acc'] - last['val_acc']):+.2f} points"))
    return rows


def results_section(run: RunData) -> Raw:
    from cnnzoo.viz.plots import plot_confusion

    parts = [tag("div", table(None, results_rows(run), cls="results"))]
    if run.test_error:
        parts.append(note(f"No test split here: {run.test_error}"))
    r = run.results
    if r is None:
        return section("results", "Test results", *parts)
    classes = [str(c) for c in r["classes"]]
    cm = torch.tensor(r["confusion"])
    png = rendered(plot_confusion, cm, classes, title=f"{run.config['model']} on the test "
                   f"split: top-1 {pct(r['top1'])}")
    counts = cm.sum(1).tolist()
    rows = []
    for i, c in enumerate(classes):
        a = r["per_class"].get(c)
        bar = Raw(f'<span class="bar"><i style="width:{0 if a is None else 100 * a:.1f}%">'
                  "</i></span>")
        rows.append((c, pct(a), bar, f"{counts[i]:,}" if i < len(counts) else ""))
    per_class = table(("class", "accuracy", "", "images"), rows, numeric=(1, 3))
    return section("results", "Test results", *parts, tag("div", tag(
        "div", tag("h3", "Per-class accuracy"), per_class), img(png, "confusion matrix",
                                                                  width=620), cls="row"))


def filters_section(run: RunData) -> Raw:
    files = sorted((run.path / "filters").glob("epoch_*.png"))
    if not files:
        return section("filters", "Filters across epochs",
                       note("No RUN/filters/epoch_*.png (trained without the monitor?)."))
    if len(files) > MAX_FILTER_EPOCHS:  # evenly spaced, first and last included
        step = (len(files) - 1) / (MAX_FILTER_EPOCHS - 1)
        files = [files[round(i * step)] for i in range(MAX_FILTER_EPOCHS)]
    figs = []
    for f in files:
        with Image.open(f) as im:
            w = im.size[0]
        epoch = f.stem.removeprefix("epoch_").lstrip("0") or "0"
        figs.append(figure(f, f"epoch {epoch}", width=max(w, min(3 * w, 300)), cls="px"))
    return section("filters", "Filters across epochs", tag("div", *figs, cls="row"), note(
        "First-layer filters, each tile min-max scaled: smooth, structured filters mean "
        "training is going well, noisy ones an unconverged net or a bad learning rate."))


def run_profile(run: RunData):
    """The per-layer profile of the run's model at its input size (once), or None."""
    from cnnzoo.analysis import profile
    from cnnzoo.errors import CnnzooError

    if "profile" not in run.cache:
        try:
            run.cache["profile"] = profile(run.model, tuple(run.config["input_size"]),
                                           training=False)
        except CnnzooError as e:
            run.cache["profile"], run.cache["profile_error"] = None, str(e)
    return run.cache["profile"]


def layers_section(run: RunData) -> Raw:
    from cnnzoo.analysis.report import human, shape_str

    p = run_profile(run)
    if p is None:
        return section("layers", "Layers", note(f"No per-layer profile: "
                                                f"{run.cache['profile_error']}"))
    rows = [(r.name, r.type, r.window, shape_str(r.output_shape), f"{r.params:,}",
             human(r.macs), str(r.rf), str(r.jump)) for r in p.layers]
    totals = (f"{p.params:,} parameters, {human(p.macs)} MACs and {human(p.activations)} "
              f"activation values per image at {shape_str(p.input_size)}")
    return section("layers", "Layers", tag("p", totals), table(
        ("layer", "type", "window", "output", "params", "MACs", "RF", "jump"), rows,
        numeric=(4, 5, 6, 7), cls="scroll"), *(note(n) for n in p.notes))


def to_pil(x: torch.Tensor, size: int | None = None) -> Image.Image:
    """uint8 [C, H, W] (C 1 or 3) as a PIL image, upscaled to `size` px wide (nearest)."""
    a = x.detach().cpu()
    im = Image.fromarray(a[0].numpy() if a.shape[0] == 1 else a.permute(1, 2, 0).numpy())
    if size and im.size[0] < size:
        im = im.resize((size, round(size * im.size[1] / im.size[0])), Image.NEAREST)
    return im


def pick_examples(run: RunData, n: int = EXAMPLES) -> list[int]:
    """Test images to show: up to half mistakes (distinct true classes), then correct ones
    (distinct classes), in test-set order."""
    if run.probs is None or n <= 0:
        return []
    labels = run.test.labels[:len(run.probs)].tolist()
    pred = run.probs.argmax(1).tolist()
    wrong, right, seen_w, seen_r = [], [], set(), set()
    for i, (y, p) in enumerate(zip(labels, pred)):
        if p != y and y not in seen_w and len(wrong) < n // 2:
            wrong.append(i)
            seen_w.add(y)
        elif p == y and y not in seen_r:
            right.append(i)
            seen_r.add(y)
    return sorted(wrong + right[:n - len(wrong)])


def examples_section(run: RunData) -> Raw:
    from cnnzoo.report.run import test_images

    idx = pick_examples(run)
    if not idx:
        return section("examples", "Test images", note(
            f"No test split here: {run.test_error}" if run.test_error else "No test images."))
    x = test_images(run.test, idx)
    layer, cams = gradcam_images(run, x)
    cards = []
    for j, i in enumerate(idx):
        y, p = int(run.test.labels[i]), run.probs[i]
        k = int(p.argmax())
        cap = join([tag("b", run.classes[k]), f" {pct(float(p[k]))}", tag("br"),
                    f"true: {run.classes[y]} (#{i})"])
        pics = [figure(to_pil(x[j], 112), "input", cls="px")]
        if layer is not None:
            pics.append(figure(cams[j], "Grad-CAM", cls="px"))
        cards.append(tag("div", tag("div", *pics, cls="row"), tag("figcaption", cap),
                         cls="card" if k == y else "card bad"))
    return section("examples", "Test images: prediction and Grad-CAM",
                   tag("div", *cards, cls="row"), note(
                       f"Red: misclassified. Grad-CAM (Selvaraju et al. 2017) at layer {layer}: "
                       "where that layer's evidence for the predicted class lies."
                       if layer is not None else f"No Grad-CAM: {cams}"))


def overlay(x: torch.Tensor, heat: torch.Tensor, size: int) -> Image.Image:
    """uint8 image [C, H, W] under a 0..1 map [H, W] in the inferno colours, `size` px wide."""
    from matplotlib import colormaps

    base = x.detach().cpu().float().div(255).permute(1, 2, 0).numpy()
    colour = colormaps["inferno"](heat.detach().cpu().clamp(0, 1).numpy())[..., :3]
    mixed = (0.45 * base + 0.55 * colour).clip(0, 1)  # grey images broadcast to RGB
    return to_pil(torch.from_numpy(mixed * 255).round().byte().permute(2, 0, 1), size)


def gradcam_images(run: RunData, x: torch.Tensor):
    """(layer, one Grad-CAM overlay per uint8 image of the predicted class), or (None, why)."""
    from cnnzoo.errors import CnnzooError
    from cnnzoo.viz.common import normalise
    from cnnzoo.viz.saliency import saliency

    try:
        s = saliency(run.model, normalise(x.to(run.device).float() / 255, run.config),
                     method="gradcam")
    except CnnzooError as e:  # no conv layer with a spatial map
        return None, str(e)
    return s.layer, [overlay(x[j], s.map[j], 112) for j in range(len(x))]


def middle_layer(run: RunData):
    """(name, channels) of the middle conv layer whose output is still a spatial map
    (LeNet-5: c3), or None."""
    p = run_profile(run)
    convs = [r for r in (p.layers if p is not None else []) if r.type == "Conv2d"
             and len(r.output_shape) == 3 and r.output_shape[1] * r.output_shape[2] > 1]
    mid = convs[len(convs) // 2] if convs else None
    return (mid.name, mid.output_shape[0]) if mid else None


def patch_tiles(t, size: int = 56) -> Raw:
    """One channel's top patches as an HTML grid of crops (upscaled, nearest) with captions:
    crisp at any zoom, and far cheaper than a matplotlib figure per channel."""
    tiles = []
    for p in t.patches:
        crop = (p.crop.clamp(0, 1) * 255).round().byte()
        scale = max(1, size // max(crop.shape[1:]))
        im = to_pil(crop).resize((crop.shape[2] * scale, crop.shape[1] * scale), Image.NEAREST)
        name = t.classes[p.label] if t.classes and 0 <= p.label < len(t.classes) else p.label
        tiles.append(tag("figure", img(im, f"test image #{p.index}", cls="px"),
                         tag("figcaption", f"#{p.index} {name}", tag("br"),
                             f"act {p.value:.3g}"), title=f"rows {p.window[0]}-{p.window[2]}, "
                         f"columns {p.window[1]}-{p.window[3]}"))
    return tag("div", tag("h3", f"channel {t.channel}"), tag("div", *tiles, cls="tiles"))


def patches_section(run: RunData) -> Raw:
    from cnnzoo.report.run import test_images
    from cnnzoo.viz.top_patches import top_patches

    title = "Top patches of a middle layer"
    if run.test is None:
        return section("patches", title, note(f"No test split here: {run.test_error}"))
    mid = middle_layer(run)
    if mid is None:
        return section("patches", title, note("No conv layer with a spatial map found."))
    layer, channels = mid
    n = min(len(run.test), PATCH_IMAGES)
    x = test_images(run.test, range(n))
    y = run.test.labels[:n]
    batches = [(x[i:i + 512].to(run.device).float() / 255, y[i:i + 512])
               for i in range(0, n, 512)]
    picks = sorted({round(i * (channels - 1) / max(PATCH_CHANNELS - 1, 1))
                    for i in range(min(PATCH_CHANNELS, channels))})
    blocks, rf = [], None
    for ch in picks:
        t = top_patches(run.model, batches, layer, ch, mean=run.config["mean"],
                        std=run.config["std"], k=9, classes=run.classes)
        rf = t.field.rf.rf
        blocks.append(patch_tiles(t))
    return section("patches", f"{title}: {layer}", tag("div", *blocks, cls="row"), note(
        f"For channels {', '.join(map(str, picks))} of {channels}: the 9 of the first {n:,} "
        "test images that excite the channel most (Zeiler & Fergus 2014), each cropped to "
        f"the receptive field ({rf} px) of the unit where the channel peaks, clipped at the "
        "image border; largest activation first."))


def run_sections(run: RunData) -> list[tuple[str, str, Raw]]:
    out = [("config", "Config", config_section(run)), ("curves", "Curves", curves_section(run)),
           ("warnings", "Warnings", warnings_section(run)),
           ("results", "Test results", results_section(run)),
           ("filters", "Filters", filters_section(run)), ("layers", "Layers", layers_section(run)),
           ("examples", "Grad-CAM", examples_section(run)),
           ("patches", "Top patches", patches_section(run))]
    return [s for s in out if s[2]]


def run_page(run: RunData) -> str:
    return page(f"cnnzoo report: {run.name}", subtitle(run), run_sections(run))
