"""colorize: predict ab from L in Lab space, by regression (pix2pix) or by classification (Zhang et al.).

Two heads, chosen by the config's ``colorize.head`` (:class:`pixelplexus.config.ColorizeSection`):

* ``regress`` (pix2pix, Isola et al. 2017; the default): a U-Net maps normalised L (1 channel) to ab
  (2 channels, tanh); a conditional 70×70 PatchGAN judges (L, ab) pairs; the generator loss is
  adversarial + λ·L1 on ab with λ = ``losses.pixel_weight`` (100). L1 averages the plausible colours of a
  pixel, which on a small model and little data ends as one brownish tint.
* ``classify`` (Zhang, Isola & Efros 2016, "Colorful Image Colorization"): the U-Net's ``out_ch`` logits
  score the in-gamut ab bins (:func:`pixelplexus.color.ab_bins`) at half resolution (``output: logits``;
  inference upsamples ab as it does for ``regress`` from ``render_size``); the loss is cross-entropy against
  soft-encoded targets (the 5 nearest bins, Gaussian σ = 5), each pixel weighted by class rebalancing
  (the inverse of the bins' smoothed empirical prior mixed with uniform, λ = 0.5), times
  ``losses.pixel_weight``; ab is the annealed mean (T = 0.38) of the predicted distribution, with the
  rebalancing divided back out to the power ``prior_correction`` (0: not at all) and stretched about the
  training photos' mean colour by ``chroma_gain`` (1: not at all). The prior is counted on
  the training targets as they come (cumulative from the first step; a resumed run counts again). An
  adversarial term, when configured, judges the decoded ab as for ``regress``. A weights file of this
  head carries the bins, the prior, the mean colour and the decoding in its metadata (``extra.colorize``,
  ``extra.ab_bins``, ``extra.ab_prior``, ``extra.ab_mean``).

Validation (:meth:`ColorizeTask.evaluate`) scores PSNR beside the gray baseline (ab = 0) and a constant
tint (the training targets' mean ab on every pixel), balanced hue accuracy and chroma spread
(:mod:`pixelplexus.metrics`).

Inference runs the network on L at ``render_size`` (longer side) — and at each of the model's smaller
``render_scales``, averaging the decoded ab —, upsamples ab to full resolution (bilinear, or ``guided`` by
L: :mod:`pixelplexus.guided_filter`) and merges it with the image's own full-resolution L, so the
lightness of the original is kept: where the predicted colour lies outside sRGB, its chroma is reduced
until it fits (clipping RGB instead would change L). What is left is the rounding of the output to 8 or
16 bits (|ΔL| < 0.2 at 8 bits).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelplexus.color import AB_SCALE, ab_bins, lab_to_model, lab_to_rgb, rgb_to_lab
from pixelplexus.config import (
    ColorizeSection,
    ConfigError,
    LossConfig,
    NetworkSpec,
    OptimConfig,
    TaskConfig,
)
from pixelplexus.guided_filter import guided_upsample
from pixelplexus.io.images import ImageRecord
from pixelplexus.metrics import balanced_hue_accuracy, chroma_spread, colorfulness, psnr
from pixelplexus.options import ColorizeOptions
from pixelplexus.tasks.base import Evaluation, Logs, Task
from pixelplexus.temporal import smooth_chroma
from pixelplexus.transforms import (
    ensure_min_size,
    fit_within,
    from_float,
    random_crop,
    random_flip,
    resize,
    resize_short_side,
    rgb_float,
    to_chw,
)
from pixelplexus.weights import WeightsInfo

DEFAULT_RENDER_SIZE = 256
"""The longer side a colorize network sees when neither the caller nor the model names one."""


def _lab(rgb: np.ndarray) -> Tensor:
    """H×W×3 float RGB in [0, 1] → 3×H×W Lab tensor."""
    return rgb_to_lab(torch.from_numpy(to_chw(rgb)))


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


def mean_ab(images: Sequence[np.ndarray]) -> tuple[float, float]:
    """The mean a, b (CIE Lab) over all pixels of H×W×3 uint8 RGB images: the constant tint baseline."""
    total, count = torch.zeros(2, dtype=torch.float64), 0
    for rgb in images:
        ab = _lab(np.asarray(rgb, dtype=np.float32) / 255.0)[1:].double()
        total += ab.sum(dim=(1, 2))
        count += ab[0].numel()
    return (float(total[0] / count), float(total[1] / count)) if count else (0.0, 0.0)


def prior_shares(counts: Tensor) -> list[float]:
    """Bin counts → the shares a weights file stores as its prior (``extra.ab_prior``), 4 significant digits."""
    return [float(f"{share:.4g}") for share in (counts / counts.sum()).tolist()]


class ColorizeTask(Task):
    name = "colorize"
    Options = ColorizeOptions
    head: ColorizeSection = ColorizeSection()
    bins: Tensor | None = None  # Q×2 ab centres of the classes (head "classify")

    def __init__(self, config: TaskConfig | Mapping[str, Any] | None = None):
        super().__init__(config)
        self._use_head(self.config.colorize or ColorizeSection(), None)
        self._ab_sum = torch.zeros(2, dtype=torch.float64)  # the training targets seen so far
        self._bin_counts: Tensor | None = None
        self._ab_mean: tuple[float, float] | None = None  # the training photos' mean ab, as a file carries it

    @classmethod
    def for_inference(cls, info: WeightsInfo) -> ColorizeTask:
        task = super().for_inference(info)
        stored = info.extra.get("ab_bins")
        task._use_head(ColorizeSection(**info.extra.get("colorize", {})), stored)
        task._bin_counts = None
        task.load_prior(info)
        return task

    def load_prior(self, info: WeightsInfo) -> None:
        """Take the prior of the ab bins (``extra.ab_prior``, the shares training counted) and the mean ab of
        the training photos (``extra.ab_mean``) that the weights ``info`` describes carry, which
        ``prior_correction`` and ``chroma_gain`` decode with; refuse either without what it needs."""
        prior, mean = info.extra.get("ab_prior"), info.extra.get("ab_mean")
        if prior is not None and self.bins is not None and len(prior) == len(self.bins):
            self._bin_counts = torch.tensor(prior, dtype=torch.float64)
        elif self.head.prior_correction > 0:
            raise ConfigError(
                f"colorize.prior_correction {self.head.prior_correction:g} needs the prior the model was trained "
                f"on (extra.ab_prior, one share per ab bin), which this weights file does not carry"
            )
        if mean is not None and len(mean) == 2:
            self._ab_mean = (float(mean[0]), float(mean[1]))
        elif self.head.chroma_gain != 1 and self.bins is not None:
            raise ConfigError(
                f"colorize.chroma_gain {self.head.chroma_gain:g} needs the mean colour of the photos the model "
                f"was trained on (extra.ab_mean: a, b), which this weights file does not carry"
            )

    def _use_head(self, head: ColorizeSection, stored_bins: Sequence[Sequence[float]] | None) -> None:
        self.head = head
        if head.head == "regress":
            self.bins = None
            return
        self.bins = ab_bins(head.bin_size) if stored_bins is None else torch.tensor(stored_bins).float()
        args = self.generator_spec.args
        if args.get("out_ch") != len(self.bins) or args.get("output") != "logits":
            raise ConfigError(
                f"colorize.head 'classify' with bin_size {head.bin_size:g} scores {len(self.bins)} ab bins: "
                f"the generator needs out_ch: {len(self.bins)} and output: logits (it has out_ch: "
                f"{args.get('out_ch')}, output: {args.get('output', 'tanh')})"
            )

    def weights_info(self, generator: nn.Module, *, run_id: str | None = None, **extra: Any) -> WeightsInfo:
        extra = {**extra, "colorize": self.head.model_dump()}  # the head, its decoding, its render size
        if self.bins is not None:
            extra["ab_bins"] = self.bins.tolist()
        if self.bins is not None and self._bin_counts is not None:  # the prior it learnt under
            extra["ab_prior"] = prior_shares(self._bin_counts)
        mean = self.training_mean_ab()
        if self.bins is not None and mean is not None:  # the centre of chroma_gain
            extra["ab_mean"] = [round(mean[0], 3), round(mean[1], 3)]
        return super().weights_info(generator, run_id=run_id, **extra)

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
        size, scene = self.config.crop_size, self.head.scene_scale
        if scene is None:  # texture: a crop at the photo's own resolution
            crop = random_crop(ensure_min_size(rgb, size), size, rng)
        else:  # the scene: a window of most of the photo, shrunk to the size the network runs at
            photo = resize_short_side(rgb, round(scene * size))
            window = int(rng.integers(size, min(photo.shape[:2]) + 1))
            crop = random_crop(photo, window, rng)
            crop = crop if window == size else resize(crop, (size, size), "box")
        crop = random_flip(crop, rng)
        lightness, ab = lab_to_model(_lab(crop.astype(np.float32) / 255.0))
        return {"L": lightness.numpy(), "ab": ab.numpy()}

    # ------------------------------------------------------------------------------------ training step
    def generator_output(self, generator: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
        return generator(batch["L"])

    def real_and_fake(self, batch: Mapping[str, Tensor], fake: Tensor) -> tuple[Tensor, Tensor]:
        lightness = batch["L"]
        ab = self.decode(fake)
        if ab.shape[-2:] != lightness.shape[-2:]:  # classify scores at half resolution
            ab = F.interpolate(ab, size=lightness.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([lightness, batch["ab"]], dim=1), torch.cat([lightness, ab], dim=1)

    def content_loss(self, batch: Mapping[str, Tensor], fake: Tensor) -> tuple[Tensor, Logs]:
        target = batch["ab"]
        self._ab_sum += target.detach().double().sum(dim=(0, 2, 3)).cpu() * AB_SCALE
        self._pixels_seen = getattr(self, "_pixels_seen", 0) + target[:, 0].numel()
        if self.bins is None:
            pixel = self.pixel_loss(fake, target)
        else:
            pixel = self.rebalanced_cross_entropy(fake, target)
        return self.config.losses.pixel_weight * pixel, {"g_pixel": pixel.item()}

    def rebalanced_cross_entropy(self, logits: Tensor, target: Tensor) -> Tensor:
        """Zhang et al.'s loss: cross-entropy of N×Q×H×W ``logits`` against the soft-encoded N×2×H×W
        ``target`` (model units; averaged down to the logits' size when they are smaller), each pixel
        weighted by the rebalancing weight of its nearest bin."""
        head, bins = self.head, self.bins.to(target.device)
        if target.shape[-2:] != logits.shape[-2:]:
            target = F.adaptive_avg_pool2d(target, logits.shape[-2:])
        ab = (target * AB_SCALE).permute(0, 2, 3, 1).reshape(-1, 2)  # pixels × 2
        distance, nearest = torch.cdist(ab, bins).topk(head.neighbours, dim=1, largest=False)
        soft = torch.softmax(-(distance**2) / (2 * head.sigma**2), dim=1)  # pixels × k
        counts = torch.bincount(nearest[:, 0], minlength=len(bins)).double().cpu()
        self._bin_counts = counts if self._bin_counts is None else self._bin_counts + counts
        weights = self.rebalancing_weights().to(target.device)[nearest[:, 0]]
        log_p = torch.log_softmax(logits, dim=1).permute(0, 2, 3, 1).reshape(-1, len(bins))
        per_pixel = -(soft * log_p.gather(1, nearest)).sum(dim=1)
        return (weights * per_pixel).mean()

    def rebalancing_weights(self) -> Tensor:
        """Per bin: ``1 / ((1 − λ)·p̃ + λ/Q)``, normalised so that their mean under p̃ is 1, where p̃ is the
        bins' empirical prior (counted so far) smoothed with a Gaussian of σ = ``colorize.sigma`` in ab."""
        head, bins = self.head, self.bins.double()
        counts = (
            self._bin_counts if self._bin_counts is not None else torch.ones(len(bins), dtype=torch.float64)
        )
        kernel = torch.exp(-(torch.cdist(bins, bins) ** 2) / (2 * head.sigma**2))
        prior = kernel @ (counts / counts.sum())
        prior = prior / prior.sum()
        weights = 1.0 / ((1 - head.rebalance) * prior + head.rebalance / len(bins))
        return (weights / (prior * weights).sum()).float()

    def decode(self, y: Tensor) -> Tensor:
        """The generator's N×C×H×W output → ab in model units (N×2×H×W): as it is for ``regress``; for
        ``classify`` the annealed mean ``m = Σ_q softmax((logits − α·log w) / T)_q · bin_q``, with w the
        rebalancing weights and α the ``prior_correction``, stretched about the training photos' mean ab c
        by the ``chroma_gain`` g: ``c + g·(m − c)``."""
        if self.bins is None:
            return y
        logits = y.float()
        if self.head.prior_correction:
            logits = logits - self._prior_shift().to(logits.device).view(1, -1, 1, 1)
        probs = torch.softmax(logits / self.head.temperature, dim=1)
        ab = torch.einsum("nqhw,qc->nchw", probs, self.bins.to(y.device) / AB_SCALE)
        if self.head.chroma_gain != 1:
            mean = self.training_mean_ab() or (0.0, 0.0)  # (0, 0): before the first step
            centre = torch.tensor(mean, dtype=ab.dtype, device=ab.device).view(1, 2, 1, 1) / AB_SCALE
            ab = centre + self.head.chroma_gain * (ab - centre)
        return ab

    def _prior_shift(self) -> Tensor:
        """``α·log w`` for the counts as they are: computed once per set of counts (training replaces the
        tensor at every step; inference never), not at every decode."""
        cached = getattr(self, "_shift_for", None)
        if cached is None or cached[0] is not self._bin_counts:
            self._shift_for = (
                self._bin_counts,
                self.head.prior_correction * self.rebalancing_weights().log(),
            )
        return self._shift_for[1]

    def count_prior(
        self, images: Sequence[np.ndarray], *, views: int = 4, stride: int = 4, seed: int = 0
    ) -> Tensor:
        """Count the ab bins of ``views`` training views of each image (:meth:`training_sample`, averaged
        down by ``stride`` as the loss sees them at the network's output size) as the prior of the weights
        files this task writes — what training counts as it goes, for a model made without it (a soup)."""
        rng = np.random.default_rng(seed)
        counts = torch.zeros(len(self.bins), dtype=torch.float64)
        for rgb in images:
            for _ in range(views):
                ab = torch.from_numpy(self.training_sample(np.asarray(rgb), rng)["ab"])[None]
                ab = F.avg_pool2d(ab, stride) if stride > 1 else ab
                nearest = torch.cdist(ab[0].reshape(2, -1).T * AB_SCALE, self.bins).argmin(dim=1)
                counts += torch.bincount(nearest, minlength=len(self.bins)).double()
        self._bin_counts = counts
        return counts

    def training_mean_ab(self) -> tuple[float, float] | None:
        """The mean ab of the training photos (the constant tint, the centre of ``chroma_gain``): as the
        weights file carries it (``extra.ab_mean``), else of the training targets seen so far, or None
        before training."""
        seen = getattr(self, "_pixels_seen", 0)
        if self._ab_mean is not None or not seen:
            return self._ab_mean
        return float(self._ab_sum[0] / seen), float(self._ab_sum[1] / seen)

    # ---------------------------------------------------------------------------------------- inference
    def render_size(self, options: ColorizeOptions) -> int:
        """The longer side the network sees: the caller's ``render_size``, else the model's, else 256."""
        return options.render_size or self.head.render_size or DEFAULT_RENDER_SIZE

    def prepare(self, item: ImageRecord, options: ColorizeOptions, generator: nn.Module) -> Tensor:
        rgb = fit_within(rgb_float(item), self.render_size(options))
        lightness, _ = lab_to_model(_lab(rgb))
        return lightness

    def run(self, generator: nn.Module, x: Tensor, options: ColorizeOptions) -> Tensor:
        """The decoded ab of the N×1×H×W lightness ``x``, averaged over the model's ``render_scales`` (each
        scale's map upsampled bilinearly to the full scale's; scales under 32 px on the short side are left
        out, the full scale never)."""
        ab = self.decode(generator(x))
        scales = [s for s in self.head.render_scales[1:] if min(x.shape[-2:]) * s >= 32]
        for scale in scales:
            size = [max(1, round(side * scale)) for side in x.shape[-2:]]
            smaller = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            other = self.decode(generator(smaller))
            ab = ab + F.interpolate(other, size=ab.shape[-2:], mode="bilinear", align_corners=False)
        return ab / (1 + len(scales))

    def finish(self, y: Tensor, item: ImageRecord, options: ColorizeOptions) -> ImageRecord:
        lab = _lab(rgb_float(item))
        low = y[None].float() * AB_SCALE
        if self.head.upsample == "guided" and y.shape[-2:] != lab.shape[-2:]:
            ab = guided_upsample(lab[None, :1] / 100.0, low)[0]
        else:
            ab = F.interpolate(low, size=lab.shape[-2:], mode="bilinear", align_corners=False)[0]
        rgb = _rgb_keeping_lightness(torch.cat([lab[:1], ab * options.strength]))
        pixels = from_float(rgb.permute(1, 2, 0).numpy(), item.bit_depth)
        # A gray source's ICC profile does not describe RGB output.
        icc = item.icc_profile if not item.is_gray else None
        return item.replace(pixels=pixels, icc_profile=icc)

    def smooth_frames(self, frames: np.ndarray, context: tuple[int, int] = (0, 0)) -> np.ndarray:
        """Video: colour steadied over time where the picture holds still (:mod:`pixelplexus.temporal`),
        against per-frame flicker; luma untouched."""
        return smooth_chroma(frames, context=context)

    # --------------------------------------------------------------------------------------- validation
    def evaluate(
        self,
        generator: nn.Module,
        images: Sequence[np.ndarray],
        *,
        tint: Sequence[float] | None = None,
    ) -> Evaluation:
        """Score the colours of whole ``images`` (shrunk to ``train.eval_size`` on their longer side) against
        their truth, beside two baselines: gray
        (ab = 0, the image's own L) and a constant tint (``tint``, default the mean ab of the training
        targets seen so far; left out when there is none).

        Metrics: ``psnr_rgb`` and ``psnr_over_gray`` (mean gain over ``psnr_gray_baseline``), balanced
        ``hue_accuracy`` and ``chroma_spread`` (pooled over the images), ``colorfulness_ratio`` (1 = as
        colourful as the truth); the baselines' as ``*_gray`` / ``*_tint``.
        """
        tint = tint if tint is not None else self.training_mean_ab()
        outputs: dict[str, list[np.ndarray]] = {"model": [], "gray": [], "tint": []}
        truths, rows = [], []
        size = self.config.train.eval_size
        for rgb in images:
            real = fit_within(np.asarray(rgb), size)
            record = ImageRecord(real)
            # as the model runs by default; a model that names no render size sees the image as it is
            options = self.parse_options(
                render_size=self.head.render_size or max(32, max(real.shape[:2])), precision="fp32"
            )
            outputs["model"].append(self.predict(generator, [record], options)[0].pixels)
            outputs["gray"].append(self.finish(torch.zeros(2, 1, 1), record, options).pixels)
            if tint is not None:
                constant = torch.tensor(tint, dtype=torch.float32).view(2, 1, 1) / AB_SCALE
                outputs["tint"].append(self.finish(constant, record, options).pixels)
            truths.append(real)
            rows.append([outputs["gray"][-1], outputs["model"][-1], real])
        metrics: dict[str, float] = {}
        for name, predictions in outputs.items():
            if not predictions:
                continue
            suffix = "" if name == "model" else f"_{name}"
            psnrs = [psnr(out, real) for out, real in zip(predictions, truths)]
            metrics[f"psnr_rgb{suffix}" if name == "model" else f"psnr_{name}_baseline"] = float(
                np.mean(psnrs)
            )
            metrics[f"hue_accuracy{suffix}"] = balanced_hue_accuracy(predictions, truths)
            metrics[f"chroma_spread{suffix}"] = chroma_spread(predictions, truths)
        gains = [
            psnr(out, real) - psnr(gray, real)
            for out, gray, real in zip(outputs["model"], outputs["gray"], truths)
        ]
        metrics["psnr_over_gray"] = float(np.mean(gains))
        metrics["colorfulness_ratio"] = float(
            np.mean(
                [
                    colorfulness(out) / max(colorfulness(real), 1e-6)
                    for out, real in zip(outputs["model"], truths)
                ]
            )
        )
        return Evaluation(metrics, rows, ("input (L)", "output", "real"))
