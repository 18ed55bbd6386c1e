"""NIQE (Mittal et al. 2013): MATLAB's figure on BasicSR's baboon.png, the direction of its judgement on
damaged photos, its inputs and where it finds the authors' pristine model."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage import data

from pixelplexus.io.images import read_image_file
from pixelplexus.metrics import load_niqe_params, niqe, niqe_params_path

PARAMS = niqe_params_path()
needs_params = pytest.mark.skipif(
    not PARAMS.is_file(),
    reason=f"NIQE pristine model not found at {PARAMS} (set PIXELPLEXUS_NIQE_PARAMS to niqe_pris_params.npz "
    "or PIXELPLEXUS_SHARED to the shared folder)",
)
SHARED = Path(os.environ.get("PIXELPLEXUS_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
BABOON = SHARED / "data" / "eval" / "Set14" / "baboon.png"  # = BasicSR's tests/data/baboon.png


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(gaussian_filter(image.astype(np.float64), (sigma, sigma, 0)) + 0.5, 0, 255).astype(
        np.uint8
    )


@needs_params
@pytest.mark.skipif(not BABOON.is_file(), reason=f"baboon.png not found at {BABOON}")
def test_baboon_gives_matlabs_figure():
    # The authors' MATLAB code (R2021a) gives 5.72957338 on this image, Y channel, no crop (BasicSR's note).
    assert niqe(read_image_file(BABOON).pixels) == pytest.approx(5.7296, abs=5e-4)


@needs_params
def test_niqe_rises_with_blur_and_strong_jpeg():
    photo = data.astronaut()  # a natural 512×512 photo bundled with scikit-image
    clean = niqe(photo)
    assert 2.0 < clean < 5.0
    assert niqe(blur(photo, 1.5)) > clean + 1.0
    assert niqe(blur(photo, 3.0)) > niqe(blur(photo, 1.5))
    assert niqe(jpeg(photo, 10)) > clean + 1.0


@needs_params
def test_inputs_and_params_forms_agree():
    photo = data.astronaut()[:200, :300]
    score = niqe(photo)
    assert niqe(photo.astype(np.float32)) == pytest.approx(score, abs=1e-9)
    assert niqe(photo, params=PARAMS) == score
    assert niqe(photo, params=dict(load_niqe_params())) == score
    gray = data.camera()[:200, :300]
    assert niqe(gray) == niqe(gray[..., None]) == niqe(gray, y_channel=False)
    assert niqe(photo, crop_border=4) != score
    assert np.isfinite(niqe(photo, y_channel=False))


@needs_params
def test_bad_inputs_are_explained():
    photo = data.astronaut()
    with pytest.raises(ValueError, match="at least two"):
        niqe(photo[:96, :150])
    with pytest.raises(ValueError, match="at least two"):
        niqe(photo[:200, :200], crop_border=10)
    with pytest.raises(ValueError, match="crop_border must be >= 0"):
        niqe(photo, crop_border=-1)
    with pytest.raises(ValueError, match="H×W×3"):
        niqe(photo[..., :2])
    with pytest.raises(ValueError, match="NaN or infinite"):
        niqe(np.full((200, 200), np.nan))
    with pytest.raises(ValueError, match="36×36"):
        niqe(photo, params={"mu_pris_param": np.zeros(18), "cov_pris_param": np.eye(18)})


def test_missing_params_name_both_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("PIXELPLEXUS_NIQE_PARAMS", raising=False)
    monkeypatch.setenv("PIXELPLEXUS_SHARED", str(tmp_path))
    assert niqe_params_path() == tmp_path / "data" / "niqe" / "niqe_pris_params.npz"
    with pytest.raises(FileNotFoundError, match=r"PIXELPLEXUS_NIQE_PARAMS.*PIXELPLEXUS_SHARED"):
        niqe(data.astronaut())
    monkeypatch.setenv("PIXELPLEXUS_NIQE_PARAMS", str(tmp_path / "elsewhere.npz"))
    assert niqe_params_path() == tmp_path / "elsewhere.npz"
    with pytest.raises(FileNotFoundError, match=r"elsewhere\.npz"):
        load_niqe_params()


def test_the_shape_lookup_is_the_authors_argmin_over_the_grid():
    from pixelplexus.metrics import _AGGD_SHAPES, _aggd_fit, _aggd_ratios

    rng = np.random.default_rng(0)
    samples = np.concatenate(
        [rng.laplace(size=(20, 500)), rng.normal(size=(20, 500)) ** 3, rng.uniform(-1, 2, (20, 500))]
    )
    alpha, _, _ = _aggd_fit(samples)
    for row, found in zip(samples, alpha):  # the authors' estimateaggdparam, one block at a time
        left, right = np.sqrt(np.mean(row[row < 0] ** 2)), np.sqrt(np.mean(row[row > 0] ** 2))
        g = left / right
        r = np.mean(np.abs(row)) ** 2 / np.mean(row**2)
        r_norm = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
        assert found == _AGGD_SHAPES[np.argmin((_aggd_ratios() - r_norm) ** 2)]
    assert _aggd_fit(np.zeros((1, 10)))[0][0] == _AGGD_SHAPES[0]  # a flat block: MATLAB's min of NaNs
