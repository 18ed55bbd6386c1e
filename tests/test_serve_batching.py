"""Serving without Ray: one batch of the model deployment (``predict_requests``) with a real tiny model — mixed
image sizes and options come back each with its own result, and a bad request fails alone — and the HTTP
API's query parameters, derived from the options models."""

from __future__ import annotations

import numpy as np
import pytest

from pixelplexus.io.images import ImageRecord
from pixelplexus.references import resolve_model
from pixelplexus.serving.deployments import InferenceRequest, load_model, predict_requests
from pixelplexus.tasks import OptionsError, get_task
from pixelplexus.weights import save_generator
from support.corpus import pattern


def test_a_batch_mixes_sizes_and_options_and_isolates_failures(tiny_config, tmp_path):
    task = get_task(tiny_config("enhance"))
    generator = task.build_generator()
    path = save_generator(tmp_path / "enhance.safetensors", generator, task.weights_info(generator))
    model = load_model("enhance", str(path), "cpu")
    assert model.describe()["reference"] == str(path) and model.scale == 2

    images = [ImageRecord(pixels=pattern(h, w, seed=h)) for h, w in [(20, 20), (17, 29), (20, 20), (31, 8)]]
    tiled = task.parse_options(tile=16, tile_overlap=4)
    plain = task.parse_options()
    jobs = [
        InferenceRequest(images[0], plain),
        InferenceRequest(images[1], tiled),
        InferenceRequest(images[2], plain),
        InferenceRequest(images[3], task.parse_options(scale=4)),  # the model is ×2: this one alone fails
        InferenceRequest(images[1], plain),
        InferenceRequest(7, tiled),  # not an image: its options group fails, the others do not
        InferenceRequest(images[2], task.parse_options(scale=2)),  # the model's scale: fine
    ]
    results = predict_requests(model, jobs)

    local = resolve_model(str(path), "enhance").load()
    for index in (0, 1, 2, 4, 6):
        want = task.predict(local, [jobs[index].item], jobs[index].options)[0].pixels.astype(int)
        got = results[index]
        assert isinstance(got, ImageRecord) and got.pixels.shape == want.shape
        assert np.abs(got.pixels.astype(int) - want).max() <= 1
    assert isinstance(results[3], OptionsError) and "scale=4 is not available" in str(results[3])
    assert isinstance(results[5], Exception)  # request 1 shared its options (and first attempt) with it


def test_the_query_parameters_are_the_options_models_fields():
    from pixelplexus.options import OPTIONS
    from pixelplexus.serving.api import ApiError, Limits, build_api, query_options

    spec = build_api({}, Limits()).openapi()
    for task, names in {
        "enhance": {"scale", "tile", "tile_overlap", "precision"},
        "colorize": {"render_size", "strength", "precision"},
    }.items():
        parameters = {p["name"]: p for p in spec["paths"][f"/v1/{task}"]["post"]["parameters"]}
        assert set(parameters) == names | {"format"}  # skip_color is a batch option: no parameter
        for name in names:
            assert parameters[name]["description"] == OPTIONS[task].model_fields[name].description
    enhance = query_options("enhance")
    assert enhance().tile is None  # the API's default: the whole image, unless tile is asked for
    assert enhance(scale=2, tile=16, tile_overlap=4, precision="fp32").model_dump() == {
        "scale": 2,
        "tile": 16,
        "tile_overlap": 4,
        "precision": "fp32",
    }
    assert enhance().precision == "auto"
    # smaller than twice the default overlap; no such precision
    for bad in ({"tile": 32}, {"precision": "fp16"}):
        with pytest.raises(ApiError) as error:
            enhance(**bad)
        assert error.value.status == 422 and error.value.code == "invalid_parameters"
