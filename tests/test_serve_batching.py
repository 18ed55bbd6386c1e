"""One batch of the model deployment (``run_batch``) with a real tiny model, without Ray: mixed image sizes
and options come back each with its own result, and a bad request fails alone."""

from __future__ import annotations

import numpy as np

from pixelplexus.imageio import ImageRecord
from pixelplexus.models import resolve_model
from pixelplexus.serving.model import Job, load_model, run_batch
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
        Job(images[0], plain),
        Job(images[1], tiled, scale=2),
        Job(images[2], plain),
        Job(images[3], plain, scale=4),  # the model is ×2: this one alone fails
        Job(images[1], plain),
        Job(7, tiled),  # not an image: its options group fails, the others do not
    ]
    results = run_batch(task, model, jobs)

    local = resolve_model(str(path), "enhance").load()
    for index in (0, 1, 2, 4):
        want = task.predict(local, [jobs[index].item], jobs[index].options)[0].pixels.astype(int)
        got = results[index]
        assert isinstance(got, ImageRecord) and got.pixels.shape == want.shape
        assert np.abs(got.pixels.astype(int) - want).max() <= 1
    assert isinstance(results[3], OptionsError) and "scale=4 is not available" in str(results[3])
    assert isinstance(results[5], Exception)  # job 1 shared its options (and first attempt) with it
