"""generate: a few-shot GAN that makes new images from noise (FastGAN, Liu et al. 2021).

Training: hinge loss, DiffAugment (Zhao et al. 2020) on everything the discriminator sees, and FastGAN's
self-supervised reconstruction loss on real images when the discriminator has decoders. Inference maps a
seed to a latent (optionally with the truncation trick of Brock et al. 2019: components beyond
``truncation`` are resampled) and the latent to an image; :meth:`GenerateTask.interpolate` walks between
two seeds along the great circle (slerp); :meth:`GenerateTask.truncation_sweep` and
:meth:`GenerateTask.sample_sheets` make the pictures that show a generator (sample grid, truncation sweep,
latent walks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from pixelplexus.augment import diff_augment
from pixelplexus.config import ConfigError, GenerateSection, LossConfig, NetworkSpec, OptimConfig, TaskConfig
from pixelplexus.io.images import ImageRecord
from pixelplexus.metrics import sliced_wasserstein_distance
from pixelplexus.options import GenerateOptions
from pixelplexus.tasks.base import Evaluation, Logs, Task, unwrap
from pixelplexus.transforms import center_crop, random_crop, random_flip, resize_short_side, to_chw
from pixelplexus.visual import image_grid

TRUNCATION_SWEEP: tuple[float | None, ...] = (None, 2.0, 1.0, 0.5, 0.25, 0.1)  # then z = 0, the limit


def latent(seed: int, z_dim: int, truncation: float | None = None) -> Tensor:
    """The latent of ``seed``: standard normal, truncated to ±``truncation`` by resampling."""
    generator = torch.Generator().manual_seed(int(seed))
    z = torch.randn(z_dim, generator=generator)
    if truncation is not None:
        outside = z.abs() > truncation
        while outside.any():
            z[outside] = torch.randn(int(outside.sum()), generator=generator)
            outside = z.abs() > truncation
    return z


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between latents ``a`` and ``b`` (linear when they are parallel)."""
    cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


@dataclass(frozen=True)
class LatentWalk:
    """An item of generate: the point ``t`` (0..1) on the slerp path from ``start``'s latent to ``end``'s."""

    start: int
    end: int
    t: float


class GenerateTask(Task):
    name = "generate"
    Options = GenerateOptions

    def __init__(self, config=None):
        super().__init__(config)
        resolution = self.config.generator.args.get("resolution")
        if resolution is not None and resolution != self.config.crop_size:
            raise ConfigError(
                f"generate: crop_size ({self.config.crop_size}) must equal the generator's resolution ({resolution})"
            )

    @classmethod
    def default_config(cls) -> TaskConfig:
        return TaskConfig(
            task="generate",
            generator=NetworkSpec(
                arch="fastgan_generator", args={"z_dim": 256, "ngf": 64, "resolution": 256}
            ),
            discriminator=NetworkSpec(arch="fastgan_discriminator", args={"ndf": 64, "resolution": 256}),
            losses=LossConfig(pixel="l1", adversarial="hinge"),
            optim=OptimConfig(lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)),
            crop_size=256,
            batch_size=8,
            generate=GenerateSection(augment="color,translation,cutout", reconstruction_weight=1.0),
        )

    # --------------------------------------------------------------------------------------------- data
    def training_sample(self, rgb: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        size = self.config.crop_size
        image = random_flip(random_crop(resize_short_side(rgb, size), size, rng), rng)
        return {"image": to_chw(image) / 127.5 - 1.0}

    # ------------------------------------------------------------------------------------ training step
    def generator_output(self, generator: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
        real = batch["image"]
        z = torch.randn(real.shape[0], unwrap(generator).z_dim, device=real.device)
        return generator(z)

    def real_and_fake(self, batch: Mapping[str, Tensor], fake: Tensor) -> tuple[Tensor, Tensor]:
        policy = self.config.generate.augment
        return diff_augment(batch["image"], policy), diff_augment(fake, policy)

    def discriminate_real(self, discriminator: nn.Module, real: Tensor) -> tuple[Tensor, Tensor, Logs]:
        weight = self.config.generate.reconstruction_weight
        if not getattr(unwrap(discriminator), "has_decoder", False) or weight == 0:
            return super().discriminate_real(discriminator, real)
        logits, pairs = discriminator(real, return_aux=True)
        recon = sum(self.pixel_loss(rec, target) for rec, target in pairs)
        return logits, weight * recon, {"d_recon": recon.item()}

    # ---------------------------------------------------------------------------------------- inference
    def prepare(
        self, item: int | LatentWalk | Tensor, options: GenerateOptions, generator: nn.Module
    ) -> Tensor:
        """A seed (int), a point between two seeds (:class:`LatentWalk`) or an explicit latent → the latent."""
        if isinstance(item, Tensor):
            return item.float()
        z_dim = unwrap(generator).z_dim
        if isinstance(item, LatentWalk):
            a, b = (latent(s, z_dim, options.truncation) for s in (item.start, item.end))
            return slerp(a, b, item.t)
        return latent(item, z_dim, options.truncation)

    def finish(self, y: Tensor, item: int | Tensor, options: GenerateOptions) -> ImageRecord:
        pixels = ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return ImageRecord(pixels=pixels, alpha=None, format="PNG", icc_profile=None, source_mode="RGB")

    def interpolate(
        self,
        generator: nn.Module,
        seed_a: int,
        seed_b: int,
        steps: int = 8,
        options: GenerateOptions | Mapping | None = None,
    ) -> list[ImageRecord]:
        """``steps`` images along the slerp path from ``seed_a`` to ``seed_b`` (both ends included)."""
        walk = [LatentWalk(seed_a, seed_b, t) for t in np.linspace(0.0, 1.0, steps).tolist()]
        return self.predict(generator, walk, self.parse_options(options))

    def truncation_sweep(
        self,
        generator: nn.Module,
        seeds: Sequence[int],
        truncations: Sequence[float | None] = TRUNCATION_SWEEP,
    ) -> list[list[ImageRecord]]:
        """One row per seed: its image at each truncation (None = plain latent), then at the limit z = 0
        that truncation tends to (the same for every seed): variety traded for typicality, left to right."""
        columns = [self.predict(generator, list(seeds), {"truncation": t}) for t in truncations]
        limit = self.predict(generator, [torch.zeros(unwrap(generator).z_dim)])[0]
        return [[column[i] for column in columns] + [limit] for i in range(len(seeds))]

    def sample_sheets(
        self,
        generator: nn.Module,
        *,
        rows: int = 8,
        columns: int = 8,
        sweep_seeds: int = 8,
        walks: int = 4,
        walk_steps: int = 10,
        pad: int = 2,
    ) -> dict[str, np.ndarray]:
        """The pictures that show a generator (the model card's, the demo's), as H×W×3 images:

        ``samples``: seeds ``0 … rows·columns − 1``, row by row; ``truncation``: :meth:`truncation_sweep` of
        seeds ``0 … sweep_seeds − 1``; ``interpolation``: ``walks`` slerp walks (:meth:`interpolate`) of
        ``walk_steps`` images, from seed 2k to seed 2k + 1.
        """
        samples = self.predict(generator, list(range(rows * columns)))
        sweep = self.truncation_sweep(generator, range(sweep_seeds))
        walk_rows = [self.interpolate(generator, 2 * k, 2 * k + 1, walk_steps) for k in range(walks)]

        def sheet(grid: Sequence[Sequence[ImageRecord]]) -> np.ndarray:
            return image_grid([[record.pixels for record in row] for row in grid], pad=pad)

        return {
            "samples": sheet([samples[r * columns : (r + 1) * columns] for r in range(rows)]),
            "truncation": sheet(sweep),
            "interpolation": sheet(walk_rows),
        }

    # --------------------------------------------------------------------------------------- validation
    def real_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Real images as ``evaluate`` compares them: short side resized to the resolution, centre-cropped."""
        size = self.config.crop_size
        return np.stack([center_crop(resize_short_side(rgb, size), size) for rgb in images])

    def evaluate(self, generator: nn.Module, images: Sequence[np.ndarray]) -> Evaluation:
        """Multi-scale SWD between images from fixed seeds and the real images (resized and centre-cropped
        to the resolution); the same seeds every time, so the curve over training compares like with like."""
        real = self.real_images(images)
        count = max(len(real), 16)
        fixed = self.predict(generator, list(range(count)), {"precision": "fp32"}, batch_size=64)
        fake = np.stack([record.pixels for record in fixed])
        metrics = sliced_wasserstein_distance(real, fake, patches_per_image=64)
        shown = min(4, len(real))
        rows = [[real[i] for i in range(shown)], [fake[i] for i in range(shown)]]
        return Evaluation(metrics, rows, ("real", "generated"))
