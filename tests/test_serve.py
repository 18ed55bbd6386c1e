"""The Serve application over real HTTP on loopback: serve/config.yaml deployed on the session's Ray
cluster with tiny models (:mod:`support.serving`), driven the way a client drives it."""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from pixelplexus.community.importer import import_weights
from pixelplexus.io.images import ImageRecord, decode_image, encode_image
from pixelplexus.photos import sample_photos
from pixelplexus.references import resolve_model
from pixelplexus.serving.api import API_KEY_ENV
from pixelplexus.serving.deploy import (
    deploy,
    deployment,
    with_user_config,
)
from pixelplexus.tasks import inference_task
from support.browser import chromium_page
from support.corpus import bad_images, good_images, pattern
from support.serving import MAX_PIXELS, MAX_UPLOAD_BYTES, Service
from support.weights import ncnn_wheel_models

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "images"


@pytest.fixture
def service(serve_app) -> Service:
    return serve_app.up()


# ------------------------------------------------------------------------------------------------ helpers
_good_images = functools.cache(good_images)
_bad_images = functools.cache(bad_images)


def _png(pixels: np.ndarray) -> bytes:
    return encode_image(ImageRecord(pixels=pixels), "PNG")


def _expected(weights: str, task: str, item: Any, options: dict[str, Any] | None = None) -> ImageRecord:
    """The same model run in this process: what the service must answer."""
    model = resolve_model(weights, task)
    return inference_task(model.info).predict(model.load(), [item], options)[0]


def _assert_close(got: ImageRecord, want: ImageRecord) -> None:
    assert got.pixels.shape == want.pixels.shape and got.pixels.dtype == want.pixels.dtype
    difference = np.abs(got.pixels.astype(np.int64) - want.pixels.astype(np.int64))
    assert difference.max() <= 1  # batched and single forward passes may round differently


def _assert_error(response: requests.Response, status: int, error: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail", "request_id"} and body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    if error is not None:
        assert body["error"] == error, body
    return body


# ------------------------------------------------------------------------------------------------ endpoints
@pytest.mark.parametrize("name", ["png_rgb", "png_rgba", "png_gray", "jpeg_rgb", "png_rgb16", "webp_rgba"])
def test_enhance_answers_the_model_output_in_the_uploads_format(service, name):
    image = _good_images(size=(37, 23))[name]
    response = service.post("/v1/enhance", files={"file": (f"x{image.extension}", image.data)})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"image/{image.format.lower()}"
    got = decode_image(response.content)
    want = _expected(service.weights["enhance"], "enhance", decode_image(image.data))
    assert (got.width, got.height) == (74, 46)
    assert got.is_gray == (name == "png_gray") and got.bit_depth == (16 if name == "png_rgb16" else 8)
    assert (got.alpha is not None) == name.endswith("rgba")
    if image.format == "PNG":  # lossless: the service's pixels are the model's
        _assert_close(got, want)


def test_enhance_raw_body_format_tile_and_scale(service):
    data = _png(pattern(40, 52, seed=3))
    raw = service.post("/v1/enhance?format=jpeg", data=data, headers={"Content-Type": "image/png"})
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(raw.content)).size == (104, 80)

    tiled = service.post("/v1/enhance?tile=16&tile_overlap=4&scale=2", data=data)
    assert tiled.status_code == 200, tiled.text
    want = _expected(
        service.weights["enhance"], "enhance", decode_image(data), {"tile": 16, "tile_overlap": 4}
    )
    _assert_close(decode_image(tiled.content), want)

    wrong_scale = _assert_error(service.post("/v1/enhance?scale=4", data=data), 422, "invalid_parameters")
    assert "scale=4 is not available" in wrong_scale["detail"] and "×2" in wrong_scale["detail"]


@pytest.mark.parametrize("name", ["png_gray", "jpeg_gray", "png_rgba", "png_gray16"])
def test_colorize_returns_colour_at_the_uploads_size(service, name):
    image = _good_images(size=(45, 30))[name]
    source = decode_image(image.data)
    response = service.post("/v1/colorize?render_size=32", data=image.data)
    assert response.status_code == 200, response.text
    got = decode_image(response.content)
    assert (got.width, got.height, got.channels) == (45, 30, 3)
    assert (got.alpha is not None) == (source.alpha is not None)
    if image.format == "PNG":
        _assert_close(got, _expected(service.weights["colorize"], "colorize", source, {"render_size": 32}))


def test_colorize_strength_zero_adds_no_colour(service):
    gray = _png(pattern(32, 32, seed=5)[..., :1])
    got = decode_image(service.post("/v1/colorize?strength=0", data=gray).content).pixels.astype(int)
    assert np.abs(got - got[..., :1]).max() <= 2  # R = G = B up to rounding


def test_generate_one_many_and_grid(service):
    weights = service.weights["generate"]
    one = service.post("/v1/generate", json={"seed": 7})
    assert one.status_code == 200 and one.headers["content-type"] == "image/png"
    assert one.headers["X-Seeds"] == "7"
    _assert_close(decode_image(one.content), _expected(weights, "generate", 7))
    assert service.post("/v1/generate", json={"seed": 7}).content == one.content  # a seed is an image

    many = service.post("/v1/generate", json={"n": 3, "seed": 7, "truncation": 1.5})
    assert many.status_code == 200 and many.headers["content-type"] == "application/json"
    images = many.json()["images"]
    assert [image["seed"] for image in images] == [7, 8, 9]
    for image in images:
        want = _expected(weights, "generate", image["seed"], {"truncation": 1.5})
        _assert_close(decode_image(base64.b64decode(image["png"])), want)

    seeds = service.post("/v1/generate", json={"seeds": [3, 1, 4, 1, 5], "grid": True})
    assert seeds.status_code == 200 and seeds.headers["X-Seeds"] == "3,1,4,1,5"
    grid = decode_image(seeds.content)
    assert grid.width > 2 * 16 and grid.height > 2 * 16  # 3 × 2 cells of 16 × 16 with padding

    walk = service.post("/v1/generate", json={"seed": 7, "to_seed": 9, "n": 3})
    assert walk.status_code == 200 and walk.headers["X-Seeds"] == "7,9"
    points = walk.json()["images"]
    assert [(p["seed"], p["to_seed"], p["t"]) for p in points] == [(7, 9, 0.0), (7, 9, 0.5), (7, 9, 1.0)]
    ends = [decode_image(base64.b64decode(points[i]["png"])) for i in (0, 2)]
    for end, seed in zip(ends, (7, 9)):  # the walk starts and ends at the seeds' own images
        _assert_close(end, _expected(weights, "generate", seed))

    random = service.post("/v1/generate")  # no body: one image from a random seed
    assert random.status_code == 200 and random.headers["X-Seeds"].isdigit()


def test_models_health_and_docs(service):
    models = service.models()
    assert set(models) == {"enhance", "colorize", "generate"}
    for task, model in models.items():
        assert model["reference"] == service.weights[task]
        assert model["version"] == resolve_model(service.weights[task], task).version
        assert model["device"] == "cpu"
    assert models["enhance"]["scale"] == 2
    assert service.get("/healthz").json() == {"status": "ok"}
    docs = service.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert {"/v1/enhance", "/v1/colorize", "/v1/generate", "/v1/models"} <= set(
        service.get("/openapi.json").json()["paths"]
    )


def test_the_proxies_use_serves_grpc_data_plane(service):
    """The proxies that run PixelPlexus's hook also send requests to the ingress over gRPC (the config's
    controller environment reaches them): with the ingress's by-value handles, a third less serving
    overhead (docs/benchmarks.md)."""
    import psutil

    from pixelplexus.serving.proxy import CALLBACK, CALLBACK_ENV, GRPC_ENV

    environments = []
    for process in psutil.process_iter(["cmdline"]):
        if "ray::ProxyActor" in " ".join(process.info["cmdline"] or []):
            with contextlib.suppress(psutil.Error, OSError):
                environments.append(process.environ())
    ours = [env for env in environments if env.get(CALLBACK_ENV) == CALLBACK]
    assert ours, "no Serve proxy with PixelPlexus's hook is running"
    assert all(env.get(GRPC_ENV) == "1" for env in ours)
    assert service.get("/healthz").json() == {"status": "ok"}


# ------------------------------------------------------------------------------------------------ errors
NOT_IMAGES = {"text_named_jpg", "random_bytes", "float_tiff", "negative_int32_tiff"}


@pytest.mark.parametrize("name", sorted(_bad_images()))
def test_bad_images_are_refused_politely(service, name):
    bad = _bad_images()[name]
    if bad.too_large:
        status, error = 413, "image_too_large"
    elif name in NOT_IMAGES:
        status, error = 415, "unsupported_media_type"
    else:  # empty, truncated, corrupt
        status, error = 422, "invalid_image"
    _assert_error(service.post("/v1/colorize", data=bad.data), status, error)


def test_size_limits(service):
    too_many_bytes = np.random.default_rng(0).bytes(MAX_UPLOAD_BYTES + 1)
    _assert_error(service.post("/v1/enhance", data=too_many_bytes), 413, "payload_too_large")
    _assert_error(
        service.post("/v1/enhance", files={"file": ("big.png", too_many_bytes)}), 413, "payload_too_large"
    )
    body = _assert_error(service.post("/v1/enhance", data=_png(pattern(401, 400))), 413, "image_too_large")
    assert "400×401 pixels" in body["detail"] and f"max_pixels={MAX_PIXELS}" in body["detail"]


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/v1/enhance?scale=7", {}),
        ("/v1/enhance?scale=two", {}),
        ("/v1/enhance?tile=3", {}),
        ("/v1/enhance?tile=32", {}),  # smaller than twice the default overlap
        ("/v1/enhance?format=gif", {}),
        ("/v1/colorize?render_size=5", {}),
        ("/v1/colorize?strength=2", {}),
        ("/v1/generate", {"json": {"n": 1000}}),
        ("/v1/generate", {"json": {"truncation": -1}}),
        ("/v1/generate", {"json": {"seed": 1, "seeds": [1, 2]}}),
        ("/v1/generate", {"json": {"n": 2, "seeds": [1, 2, 3]}}),
        ("/v1/generate", {"json": {"seed": -4}}),
        ("/v1/generate", {"json": {"to_seed": 4, "n": 3}}),  # a walk needs its start
        ("/v1/generate", {"json": {"seed": 1, "to_seed": 4}}),  # and two images at least
        ("/v1/generate", {"json": {"colour": "red"}}),
        ("/v1/generate", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}),
    ],
)
def test_bad_parameters_are_422(service, path, kwargs):
    kwargs = kwargs or {"data": _png(pattern(20, 20))}
    _assert_error(service.post(path, **kwargs), 422, "invalid_parameters")


def test_other_errors_and_the_service_keeps_answering(service):
    _assert_error(service.get("/v1/nothing"), 404, "not_found")
    _assert_error(service.get("/v1/enhance"), 405)
    no_file = service.post("/v1/enhance", files={"image": ("x.png", _png(pattern(8, 8)))})
    _assert_error(no_file, 422, "invalid_upload")
    assert service.post("/v1/enhance", data=_png(pattern(20, 20))).status_code == 200


# ------------------------------------------------------------------------------------------------ load
def test_200_requests_from_16_threads_are_all_answered_correctly(service):
    inputs = [  # mixed sizes and options, so batches mix them
        ("/v1/enhance", _png(pattern(24, 24, seed=1)), "enhance", {}),
        ("/v1/enhance", _png(pattern(17, 31, seed=2)), "enhance", {}),
        (
            "/v1/enhance?tile=16&tile_overlap=4",
            _png(pattern(30, 20, seed=3)),
            "enhance",
            {"tile": 16, "tile_overlap": 4},
        ),
        ("/v1/colorize", _png(pattern(24, 24, seed=4)[..., :1]), "colorize", {}),
        ("/v1/colorize?strength=0.5", _png(pattern(20, 28, seed=5)), "colorize", {"strength": 0.5}),
    ]
    expected = [
        _expected(service.weights[task], task, decode_image(data), opts) for _, data, task, opts in inputs
    ]

    def call(i: int) -> tuple[int, int, bytes]:
        path, data, _, _ = inputs[i % len(inputs)]
        response = service.post(path, data=data)
        return i, response.status_code, response.content

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(200)))
    assert [status for _, status, _ in results] == [200] * 200
    for i, _, content in results:
        _assert_close(decode_image(content), expected[i % len(inputs)])


def test_model_hot_swap_under_load_drops_nothing(service):
    data = _png(pattern(24, 24, seed=9))
    before = service.models()["enhance"]
    sizes: list[tuple[int, int]] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            response = service.post("/v1/enhance", data=data)
            if response.status_code != 200:
                failures.append(response.text)
            else:
                sizes.append(Image.open(io.BytesIO(response.content)).size)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        deploy(with_user_config(service.config, "enhance", model=service.weights["enhance-x4"]))
        after = service.models()["enhance"]
        time.sleep(1.0)
        deploy(service.config)  # and back, still under load
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures
    assert set(sizes) == {(48, 48), (96, 96)} and sizes[-1] == (48, 48)
    assert before["reference"] == service.weights["enhance"] and before["scale"] == 2
    assert after["reference"] == service.weights["enhance-x4"] and after["scale"] == 4
    assert after["version"] != before["version"]
    assert service.models()["enhance"]["version"] == before["version"]


def test_hot_swap_to_an_imported_community_model(service, tmp_path):
    imported = str(tmp_path / "realesr-animevideov3-x2.safetensors")
    import_weights(
        ncnn_wheel_models() / "realesr-animevideov3-x2.param", imported, license_text="BSD-3-Clause"
    )
    pixels = pattern(24, 20, seed=4)
    deploy(with_user_config(service.config, "enhance", model=imported))
    try:
        described = service.models()["enhance"]
        response = service.post("/v1/enhance", data=_png(pixels))
        assert response.status_code == 200, response.text
        _assert_close(
            decode_image(response.content), _expected(imported, "enhance", ImageRecord(pixels=pixels))
        )
        assert (described["reference"], described["arch"], described["scale"]) == (imported, "compact", 2)
        assert (described["name"], described["license"]) == ("realesr-animevideov3-x2", "BSD-3-Clause")
    finally:
        deploy(service.config)
    assert service.models()["enhance"]["reference"] == service.weights["enhance"]


# ------------------------------------------------------------------------------------------------ auth
def test_api_key_guards_every_model_route(service):
    key = "s3cret-key"
    with_key = copy.deepcopy(service.config)
    deployment(with_key, "ingress")["ray_actor_options"]["runtime_env"] = {"env_vars": {API_KEY_ENV: key}}
    deploy(with_key)
    try:
        data = _png(pattern(16, 16))
        calls = {
            "enhance": lambda headers: service.post("/v1/enhance", data=data, headers=headers),
            "models": lambda headers: service.get("/v1/models", headers=headers),
            "generate": lambda headers: service.post("/v1/generate", json={"seed": 1}, headers=headers),
        }
        for call in calls.values():
            _assert_error(call({}), 401, "unauthorized")
            _assert_error(call({"Authorization": "Bearer not-the-key"}), 401, "unauthorized")
            _assert_error(call({"Authorization": key}), 401, "unauthorized")  # no scheme
            assert call({"Authorization": f"Bearer {key}"}).status_code == 200
        for public in ("/healthz", "/", "/docs", "/openapi.json", "/assets/page.js"):  # no data: no key
            assert service.get(public).status_code == 200, public
    finally:
        deploy(service.config)
    assert service.get("/v1/models").status_code == 200  # off again


# ------------------------------------------------------------------------------------------------ the page
def test_the_page_runs_a_model_shows_errors_in_words_and_walks_between_seeds(service, tmp_path):
    """The try-it page in headless chromium (:mod:`support.browser`; skips without it); its screenshot is
    the one serve/README.md shows."""
    with chromium_page(tmp_path / "profile") as page:
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
        page.set_input_files(
            "#file", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"hello"}]
        )
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
