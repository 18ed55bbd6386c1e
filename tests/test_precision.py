"""Inference precision: which arithmetic ``auto`` picks, that bf16 really runs the network in bfloat16 and
returns what float32 would within rounding, and that training's scores stay float32 on every machine."""

import numpy as np
import pytest
import torch

from pixelplexus import precision
from pixelplexus.io.images import ImageRecord
from pixelplexus.options import OptionsError, parse_options
from pixelplexus.tasks import get_task
from pixelplexus.tasks.base import Autocast, at_precision, unwrap
from support.corpus import pattern
from support.training import ConvDtypes


def _cpuinfo(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_native_bfloat16_is_read_from_the_processors_flags(tmp_path):
    zen4 = _cpuinfo(
        tmp_path, "zen4", "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
    )
    sapphire = _cpuinfo(tmp_path, "spr", "flags\t\t: avx512f amx_bf16 amx_tile\n")
    # AVX-512 without the bf16 dot product: oneDNN only emulates it
    skylake = _cpuinfo(tmp_path, "skx", "flags\t\t: avx2 avx512f avx512bw avx512vl avx512_vnni\n")
    graviton3 = _cpuinfo(tmp_path, "arm", "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    named_bf16 = _cpuinfo(tmp_path, "model", "model name\t: bf16 avx512_bf16 in a name\nflags\t\t: avx2\n")
    assert [precision.cpu_has_native_bf16(p) for p in (zen4, sapphire, skylake, graviton3, named_bf16)] == [
        True,
        True,
        False,
        True,
        False,
    ]
    assert precision.cpu_has_native_bf16(str(tmp_path / "absent")) is False


def test_auto_picks_bf16_only_where_the_cpu_has_it(monkeypatch):
    for native, want in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda native=native: native)
        assert precision.resolve("auto", "cpu") == precision.resolve("auto", torch.device("cpu")) == want
    assert precision.resolve("fp32", "cpu") == "fp32" and precision.resolve("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="fp16"):
        precision.resolve("fp16", "cpu")
    with pytest.raises(OptionsError, match="precision"):
        parse_options("enhance", precision="fp16")


def test_bf16_runs_the_convolutions_in_bfloat16_and_answers_what_fp32_does_within_rounding():
    task = get_task("enhance")  # the default compact ×4 network, as benchmarked
    torch.manual_seed(0)
    generator = task.build_generator().eval()
    dtypes = ConvDtypes(generator)
    image = ImageRecord(np.asarray(pattern(48, 40, seed=5)))

    exact = task.predict(generator, [image], {"precision": "fp32", "tile": 0})[0].pixels.astype(int)
    assert set(dtypes.seen) == {torch.float32}
    dtypes.seen.clear()
    fast = task.predict(generator, [image], {"precision": "bf16", "tile": 0})[0].pixels.astype(int)
    assert set(dtypes.seen) == {torch.bfloat16}
    assert fast.shape == exact.shape == (192, 160, 3)  # pattern(48, 40): 48 rows
    difference = np.abs(fast - exact)
    assert 0 < difference.mean() < 1.0 and difference.max() <= 8, (difference.mean(), difference.max())
    # the weights stay float32 and are not copied; unwrap finds the network inside
    assert all(p.dtype == torch.float32 for p in generator.parameters())
    wrapped = at_precision(generator, "bf16")
    assert isinstance(wrapped, Autocast) and unwrap(wrapped) is generator
    assert at_precision(wrapped, "fp32") is wrapped and at_precision(generator, "fp32") is generator
    # tiles at bf16 blend as float32: as close to the whole image as at fp32
    tiled = task.predict(generator, [image], {"precision": "bf16", "tile": 32, "tile_overlap": 16})[0]
    assert np.abs(tiled.pixels.astype(int) - fast).max() <= 1


def test_auto_runs_fp32_without_native_bf16_and_training_scores_stay_fp32(monkeypatch, tiny_config):
    task = get_task(tiny_config("enhance"))
    generator = task.build_generator().eval()
    dtypes = ConvDtypes(generator)
    image = ImageRecord(np.asarray(pattern(20, 24, seed=1)))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    plain = task.predict(generator, [image])[0].pixels
    assert set(dtypes.seen) == {torch.float32}
    assert np.array_equal(plain, task.predict(generator, [image], {"precision": "fp32"})[0].pixels)

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)  # a machine that has it
    dtypes.seen.clear()
    task.predict(generator, [image])
    assert set(dtypes.seen) == {torch.bfloat16}
    dtypes.seen.clear()
    scores = task.evaluate(generator, [np.asarray(pattern(32, 32, seed=2))]).metrics
    assert set(dtypes.seen) == {torch.float32}  # evaluate runs fp32 whatever the machine
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert task.evaluate(generator, [np.asarray(pattern(32, 32, seed=2))]).metrics == scores
