"""The try-it page (``GET /``) and the API docs: served by the app itself with every file they load (no CDN),
public since they hold no data, while the model routes need the key. (The page in a real browser, against
the Serve application: tests/test_serve.py.)"""

from __future__ import annotations

import re

import requests

from pixelplexus.serving.api import STATIC_DIR, Limits, build_api
from support.serving import asgi_server

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
