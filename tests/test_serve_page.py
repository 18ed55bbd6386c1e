"""The try-it page (``GET /``) and the API docs: served by the app itself, public without data, and driven in
a real browser (Debian's ``chromium``, headless, through Playwright's Python package) against the Serve
application of :mod:`support.serving`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from pixelplexus.io.images import ImageRecord, decode_image, encode_image
from pixelplexus.photos import sample_photos
from pixelplexus.serving.api import STATIC_DIR, Limits, build_api
from support.serving import Service, asgi_server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "images"
# known to work headless in a container, with no network: no sandbox, no GPU, nothing phoning home
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_URL = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


def test_page_and_docs_are_public_and_offline_and_the_models_need_the_key(free_port):
    with asgi_server(build_api({}, Limits(), api_key="s3cret"), free_port()) as url:
        pages = {path: requests.get(url + path, timeout=10) for path in ("/", "/docs", "/redoc")}
        for path, page in pages.items():
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), path
            links = _URL.findall(page.text) + re.findall(r"url: ?'([^']+)'", page.text)
            assert links and not [link for link in links if "//" in link], (path, links)  # no CDN
            for link in links:  # every asset it names is served here, without the key
                asset = requests.get(f"{url}/{link.lstrip('/')}", timeout=10)
                assert asset.status_code == 200 and asset.content, (path, link)
        assert requests.get(url + "/openapi.json", timeout=10).json()["paths"]
        for method, path in [("get", "/v1/models"), ("post", "/v1/enhance"), ("post", "/v1/generate")]:
            answer = requests.request(method, url + path, timeout=10)
            assert answer.status_code == 401 and answer.json()["error"] == "unauthorized", path
        assert requests.get(url + "/assets/../api.py", timeout=10).status_code in (401, 404)
    for asset in STATIC_DIR.iterdir():  # nothing the page loads comes from elsewhere
        assert "http://" not in asset.read_text() and "https://" not in asset.read_text(), asset.name


# ------------------------------------------------------------------------------------------------ the browser
@pytest.fixture
def browser_page(tmp_path):
    """A Playwright page in Debian's chromium, with a fresh profile; skips when either is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: `apt-get install chromium` (make test installs it as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1100, "height": 900},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.mark.slow
def test_the_page_runs_a_model_shows_errors_in_words_and_walks_between_seeds(serve_app, browser_page):
    service: Service = serve_app.up()
    page = browser_page
    page.goto(service.url + "/")
    page.wait_for_selector("#model:has-text('version')")  # /openapi.json and /v1/models were read

    # enhance: upload, choose the scale the form offers, run; the result is ×2 beside the input
    photo = encode_image(ImageRecord(pixels=sample_photos(64)["chelsea"]), "PNG")
    page.select_option("#task", "enhance")
    assert page.locator("#option-scale option").all_inner_texts()[1:] == ["2", "3", "4"]
    page.select_option("#option-scale", "2")
    page.set_input_files("#file", files=[{"name": "cat.png", "mimeType": "image/png", "buffer": photo}])
    page.click("#submit")
    page.wait_for_selector("#status:has-text('Done')")
    assert page.eval_on_selector("#output-image", "i => [i.naturalWidth, i.naturalHeight]") == [128, 128]
    downloaded = bytes(
        page.evaluate("async () => [...new Uint8Array(await (await fetch(download.href)).arrayBuffer())]")
    )
    result = decode_image(downloaded)
    assert (result.width, result.height) == (128, 128)
    page.focus("#slider")
    for _ in range(15):
        page.keyboard.press("ArrowLeft")
    assert page.eval_on_selector("#compare", "c => c.style.getPropertyValue('--split')") == "35%"
    page.screenshot(path=str(SCREENSHOTS / "serve-page.png"), full_page=True)

    # an error: the API's JSON in words, not a raw body
    page.set_input_files("#file", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"hello"}])
    page.click("#submit")
    error = page.wait_for_selector("#error:has-text('Unsupported media type')").inner_text()
    assert "request" in error and "{" not in error and "hello" not in error

    # generate: a walk from one seed to another, shown as a strip
    page.select_option("#task", "generate")
    page.fill("#option-seed", "3")
    page.fill("#option-to_seed", "9")
    page.fill("#option-n", "5")
    page.click("#submit")
    page.wait_for_selector("#status:has-text('Done')")
    strip = page.locator("#strip img")
    assert strip.count() == 5
    assert strip.nth(0).get_attribute("alt") == "Generated image, seed 3 → 9, t = 0.00"
    assert page.evaluate("[...document.querySelectorAll('#strip img')].every(i => i.naturalWidth > 0)")
