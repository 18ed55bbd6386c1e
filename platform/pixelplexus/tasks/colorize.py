"""colorize: pix2pix (Isola et al. 2017) in Lab space — predict ab from L.

Training: a U-Net maps normalised L (1 channel) to ab (2 channels); a conditional 70×70 PatchGAN judges
(L, ab) pairs; the generator loss is adversarial + λ·L1 on ab with λ = ``losses.pixel_weight`` (100).
Inference runs the network on L at ``render_size`` (longer side), upsamples ab to full resolution and
merges it with the image's own full-resolution L, so the lightness of the original is kept.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from pixelplexus.color import AB_SCALE, lab_to_model, lab_to_rgb, rgb_to_lab
from pixelplexus.config import LossConfig, NetworkSpec, OptimConfig, TaskConfig
from pixelplexus.imageio import ImageRecord, from_float, resize
from pixelplexus.tasks.base import InferenceOptions, Logs, Task, rgb_float
from pixelplexus.transforms import ensure_min_size, random_crop, random_flip, to_chw


class ColorizeOptions(InferenceOptions):
    """``render_size``: longer side (px) the network sees; ``strength``: scale of the predicted colour."""

    render_size: int = Field(256, ge=32, le=2048)
    strength: float = Field(1.0, ge=0.0, le=1.0)


def _lab(rgb: np.ndarray) -> Tensor:
    """H×W×3 float RGB in [0, 1] → 3×H×W Lab tensor."""
    return rgb_to_lab(torch.from_numpy(to_chw(rgb)))


class ColorizeTask(Task):
    name = "colorize"
    Options = ColorizeOptions

    @classmethod
    def default_config(cls) -> TaskConfig:
        return TaskConfig(
            task="colorize",
            generator=NetworkSpec(
                arch="pix2pix_unet", args={"in_ch": 1, "out_ch": 2, "num_downs": 8, "ngf": 64}
            ),
            discriminator=NetworkSpec(arch="patchgan", args={"in_ch": 3, "ndf": 64, "n_layers": 3}),
            losses=LossConfig(pixel="l1", pixel_weight=100.0, adversarial="nsgan", adversarial_weight=1.0),
            optim=OptimConfig(lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)),
            crop_size=256,
            batch_size=16,
        )

    # --------------------------------------------------------------------------------------------- data
    def training_sample(self, rgb: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        size = self.config.crop_size
        crop = random_flip(random_crop(ensure_min_size(rgb, size), size, rng), rng)
        lightness, ab = lab_to_model(_lab(crop.astype(np.float32) / 255.0))
        return {"L": lightness.numpy(), "ab": ab.numpy()}

    # ------------------------------------------------------------------------------------ training step
    def generator_output(self, generator: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
        return generator(batch["L"])

    def real_and_fake(self, batch: Mapping[str, Tensor], fake: Tensor) -> tuple[Tensor, Tensor]:
        lightness = batch["L"]
        return torch.cat([lightness, batch["ab"]], dim=1), torch.cat([lightness, fake], dim=1)

    def content_loss(self, batch: Mapping[str, Tensor], fake: Tensor) -> tuple[Tensor, Logs]:
        pixel = self.pixel_loss(fake, batch["ab"])
        return self.config.losses.pixel_weight * pixel, {"g_pixel": pixel.item()}

    # ---------------------------------------------------------------------------------------- inference
    def prepare(self, item: ImageRecord, options: ColorizeOptions, generator: nn.Module) -> Tensor:
        rgb = rgb_float(item)
        height, width = rgb.shape[:2]
        factor = min(1.0, options.render_size / max(height, width))
        if factor < 1.0:
            rgb = resize(rgb, (max(1, round(width * factor)), max(1, round(height * factor))))
        lightness, _ = lab_to_model(_lab(rgb))
        return lightness

    def run(self, generator: nn.Module, x: Tensor, options: ColorizeOptions) -> Tensor:
        return generator(x)

    def finish(self, y: Tensor, item: ImageRecord, options: ColorizeOptions) -> ImageRecord:
        lab = _lab(rgb_float(item))
        ab = F.interpolate(y[None] * AB_SCALE, size=lab.shape[-2:], mode="bilinear", align_corners=False)[0]
        rgb = lab_to_rgb(torch.cat([lab[:1], ab * options.strength]), clip=True)
        pixels = from_float(rgb.permute(1, 2, 0).numpy(), item.bit_depth)
        # A gray source's ICC profile does not describe RGB output.
        icc = item.icc_profile if not item.is_gray else None
        return item.replace(pixels=pixels, icc_profile=icc)
