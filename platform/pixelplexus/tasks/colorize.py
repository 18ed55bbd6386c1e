"""colorize: pix2pix (Isola et al. 2017) in Lab space — predict ab from L.

Training: a U-Net maps normalised L (1 channel) to ab (2 channels); a conditional 70×70 PatchGAN judges
(L, ab) pairs; the generator loss is adversarial + λ·L1 on ab with λ = ``losses.pixel_weight`` (100).
Inference runs the network on L at ``render_size`` (longer side), upsamples ab to full resolution and
merges it with the image's own full-resolution L, so the lightness of the original is kept: where the
predicted colour lies outside sRGB, its chroma is reduced until it fits (clipping RGB instead would change
L). What is left is the rounding of the output to 8 or 16 bits (|ΔL| < 0.2 at 8 bits).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelplexus.color import AB_SCALE, lab_to_model, lab_to_rgb, rgb_to_lab
from pixelplexus.config import LossConfig, NetworkSpec, OptimConfig, TaskConfig
from pixelplexus.io.images import ImageRecord
from pixelplexus.metrics import colorfulness, psnr
from pixelplexus.options import ColorizeOptions
from pixelplexus.tasks.base import Evaluation, Logs, Task, rgb_float
from pixelplexus.transforms import (
    center_crop,
    ensure_min_size,
    from_float,
    random_crop,
    random_flip,
    resize,
    to_chw,
)

COLOR_THRESHOLD = 15.0
"""Colourfulness (Hasler & Süsstrunk) from which an image counts as already in colour: "nearly gray" ends
about there. Uniformly tinted scans (sepia, cyanotype) score higher and count as colour too."""


def _lab(rgb: np.ndarray) -> Tensor:
    """H×W×3 float RGB in [0, 1] → 3×H×W Lab tensor."""
    return rgb_to_lab(torch.from_numpy(to_chw(rgb)))


def has_color(record: ImageRecord, threshold: float = COLOR_THRESHOLD, *, size: int = 256) -> bool:
    """Whether an image is already in colour: its colourfulness, on a thumbnail of at most ``size`` px."""
    if record.is_gray:
        return False
    rgb = rgb_float(record)
    height, width = rgb.shape[:2]
    factor = size / max(height, width)
    if factor < 1.0:
        rgb = resize(rgb, (max(1, round(width * factor)), max(1, round(height * factor))))
    return colorfulness(rgb * 255.0) >= threshold


def _rgb_keeping_lightness(lab: Tensor, steps: int = 8) -> Tensor:
    """3×H×W Lab → sRGB in [0, 1] with L kept: out-of-gamut pixels get their ab scaled down until they fit.

    The scale is found by bisection between 0 (gray of the same L, always in gamut) and 1, per pixel and
    only for the pixels that need it; ``steps`` halvings leave at most 1/2**steps of the chroma unused.
    """
    rgb = lab_to_rgb(lab, clip=False)
    outside = ((rgb < 0) | (rgb > 1)).any(dim=0)
    if outside.any():
        lightness, ab = lab[0][outside], lab[1:, outside]
        low, high = torch.zeros_like(lightness), torch.ones_like(lightness)

        def rgb_at(scale: Tensor) -> Tensor:  # 3×N
            return lab_to_rgb(torch.stack([lightness, ab[0] * scale, ab[1] * scale])[:, None], clip=False)[
                :, 0
            ]

        for _ in range(steps):
            middle = (low + high) / 2
            candidate = rgb_at(middle)
            fits = ((candidate >= -1e-6) & (candidate <= 1 + 1e-6)).all(dim=0)
            low, high = torch.where(fits, middle, low), torch.where(fits, high, middle)
        rgb[:, outside] = rgb_at(low)
    return rgb.clamp_(0.0, 1.0)


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
    def passthrough(self, item: ImageRecord, options: ColorizeOptions) -> str | None:
        return "already in colour" if options.skip_color and has_color(item) else None

    def prepare(self, item: ImageRecord, options: ColorizeOptions, generator: nn.Module) -> Tensor:
        rgb = rgb_float(item)
        height, width = rgb.shape[:2]
        factor = min(1.0, options.render_size / max(height, width))
        if factor < 1.0:
            rgb = resize(rgb, (max(1, round(width * factor)), max(1, round(height * factor))))
        lightness, _ = lab_to_model(_lab(rgb))
        return lightness

    def finish(self, y: Tensor, item: ImageRecord, options: ColorizeOptions) -> ImageRecord:
        lab = _lab(rgb_float(item))
        ab = F.interpolate(y[None] * AB_SCALE, size=lab.shape[-2:], mode="bilinear", align_corners=False)[0]
        rgb = _rgb_keeping_lightness(torch.cat([lab[:1], ab * options.strength]))
        pixels = from_float(rgb.permute(1, 2, 0).numpy(), item.bit_depth)
        # A gray source's ICC profile does not describe RGB output.
        icc = item.icc_profile if not item.is_gray else None
        return item.replace(pixels=pixels, icc_profile=icc)

    # --------------------------------------------------------------------------------------- validation
    def evaluate(self, generator: nn.Module, images: Sequence[np.ndarray]) -> Evaluation:
        """PSNR on RGB against the real colours, beside the gray baseline (ab = 0), and colourfulness
        relative to the real image's (1 = as colourful as the truth)."""
        scores = {"psnr_rgb": [], "psnr_gray_baseline": [], "colorfulness_ratio": []}
        rows = []
        size = self.config.train.eval_size
        for rgb in images:
            real = center_crop(rgb, size)
            record = ImageRecord(real)
            options = self.parse_options(render_size=max(32, max(real.shape[:2])))
            out = self.predict(generator, [record], options)[0].pixels
            gray = self.finish(torch.zeros(2, 1, 1), record, options).pixels  # ab = 0: the image's own L
            scores["psnr_rgb"].append(psnr(out, real))
            scores["psnr_gray_baseline"].append(psnr(gray, real))
            scores["colorfulness_ratio"].append(colorfulness(out) / max(colorfulness(real), 1e-6))
            rows.append([gray, out, real])
        metrics = {name: float(np.mean(values)) for name, values in scores.items()}
        return Evaluation(metrics, rows, ("input (L)", "output", "real"))
