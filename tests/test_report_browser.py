"""The report of a real run (LeNet-5, one epoch of Fashion-MNIST) in headless Chromium:
no console errors, no network request, every image decoded, the run's numbers in the tables.
The full-page screenshot is kept in tests/artifacts/report.png."""

import json
import shutil
import time
from pathlib import Path

import pytest

from cnnzoo.report import build_report
from cnnzoo.train import TrainConfig, train

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FASHION = Path("/usr/share/datasets/fashion-mnist")
ARTIFACTS = Path(__file__).parent / "artifacts"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                "(pip install -e .[dev])")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists() or shutil.which(str(DRIVER)) is None,
                       reason="chromium / chromium-driver not installed (apt-get install "
                       "chromium chromium-driver)"),
    pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist not "
                       "installed"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet5_fashion"
    train(TrainConfig(model="lenet5", dataset="fashion-mnist", epochs=1, out=str(out),
                      eval_test=True, progress=False))
    page = out.parent / "report.html"
    build_report(out, page)
    return out, page


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
                "--window-size=1280,900"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    yield driver
    driver.quit()


def test_report_in_a_real_browser(report, browser):
    run, page = report
    browser.get_log("performance")  # drop the start page's requests: only ours count
    browser.get(page.resolve().as_uri())
    deadline = time.time() + 20
    while browser.execute_script("return document.readyState") != "complete":
        assert time.time() < deadline, "the page did not finish loading"
        time.sleep(0.1)

    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, "
        "i.naturalHeight, i.alt])")
    assert len(images) >= 10
    for complete, w, h, alt in images:
        assert complete and w > 0 and h > 0, f"image {alt!r} did not decode"

    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    test_acc = [r for r in recs if r["kind"] == "test"][-1]["test_acc"]
    results = browser.find_element("css selector", "#results .results").text
    assert f"{100 * test_acc:.2f}%" in results
    val = [r for r in recs if r["kind"] == "epoch"][-1]["val_acc"]
    assert f"{100 * val:.2f}%" in results
    layers = browser.find_element("css selector", "#layers table").text
    assert "c1 Conv2d 5x5 s1 p0" in layers

    # Full page: the window as tall as the document, then one screenshot.
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height)
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "report.png"))

    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    urls = []
    for entry in browser.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    assert page.resolve().as_uri() in urls  # the log works: it saw the page itself
    assert not [u for u in urls if u.split(":", 1)[0] in ("http", "https", "ws", "wss")], urls
