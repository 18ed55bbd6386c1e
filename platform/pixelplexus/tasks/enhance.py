"""enhance: single-image super-resolution ×2/×3/×4.

Training pairs are HR crops and their bicubic-downscaled LR (the standard SR protocol), or archive-like
LR made per sample on the CPU (``enhance.degradation``) or batched on the training device by Real-ESRGAN's
high-order model (``enhance.high_order``, in :meth:`EnhanceTask.device_batch`). Losses: pixel
(L1/MSE/Charbonnier), VGG perceptual (Ledig et al. 2017), EnhanceNet patch-wise texture (Sajjadi et al.
2017) and adversarial (SRGAN's, or ESRGAN's relativistic average). Inference works in RGB [0, 1]; gray
images come back gray, 16-bit images 16-bit, and alpha is upscaled alongside. A weights file may ask for
``border_pad`` input pixels to be mirrored at the borders before the network runs (imported Real-ESRGAN
models: 10, as their own runtimes do); the output is cropped back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelplexus.config import ConfigError, LossConfig, NetworkSpec, OptimConfig, TaskConfig
from pixelplexus.degradations import degrade_batch
from pixelplexus.io.images import ImageRecord
from pixelplexus.metrics import NIQE_BLOCK, load_niqe_params, niqe, psnr, ssim
from pixelplexus.options import EnhanceOptions, OptionsError
from pixelplexus.tasks.base import Evaluation, Logs, Task, unwrap
from pixelplexus.tiling import tiled_forward
from pixelplexus.transforms import (
    archive_copy,
    center_crop,
    degrade,
    ensure_min_size,
    from_float,
    random_crop,
    random_crop_pair,
    random_flip,
    random_flips,
    resize,
    rgb_float,
    to_chw,
)
from pixelplexus.weights import WeightsInfo


class EnhanceTask(Task):
    name = "enhance"
    Options = EnhanceOptions
    border_pad: int = 0  # input pixels mirrored at each border before the network runs

    @classmethod
    def for_inference(cls, info: WeightsInfo) -> EnhanceTask:
        task = super().for_inference(info)
        task.border_pad = int(info.extra.get("border_pad", 0))
        return task

    def __init__(self, config=None):
        super().__init__(config)
        if self.config.crop_size % self.scale:
            raise ConfigError(
                f"enhance: crop_size {self.config.crop_size} is not a multiple of the scale {self.scale}"
            )

    @classmethod
    def default_config(cls) -> TaskConfig:
        return TaskConfig(
            task="enhance",
            generator=NetworkSpec(arch="compact", args={"num_feat": 64, "num_conv": 16, "upscale": 4}),
            discriminator=NetworkSpec(arch="unet_discriminator", args={"num_feat": 64}),
            losses=LossConfig(pixel="l1", adversarial="none"),
            optim=OptimConfig(lr_g=2e-4, lr_d=1e-4, betas=(0.9, 0.99)),
            crop_size=96,
            batch_size=16,
        )

    @property
    def scale(self) -> int:
        """The generator's output scale (of the training config, or of the weights file's metadata): its
        ``upscale``, or ``out_scale`` where a network resizes its ×upscale result (imported ncnn models)."""
        args = self.generator_spec.args
        return int(args.get("out_scale") or args.get("upscale", 4))

    # --------------------------------------------------------------------------------------------- data
    def training_sample(
        self, rgb: np.ndarray, rng: np.random.Generator, lr: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """An HR crop and its LR: the prepared partner's crop (``enhance.pairs``), else made from the HR."""
        size = self.config.crop_size
        if lr is not None:
            hr, lr = random_flips(list(random_crop_pair(rgb, lr, size, self.scale, rng)), rng, rotate=True)
            return {"lr": to_chw(lr) / 255.0, "hr": to_chw(hr) / 255.0}
        hr = random_flip(random_crop(ensure_min_size(rgb, size), size, rng), rng, rotate=True)
        degradation = self.config.enhance.degradation
        if self.config.enhance.high_order is not None:
            return {"hr": to_chw(hr) / 255.0}  # the LR input is made on the device: device_batch
        if degradation.active:
            lr = degrade(hr, self.scale, degradation, rng)
        else:
            lr = resize(hr, (size // self.scale, size // self.scale))
        return {"lr": to_chw(lr) / 255.0, "hr": to_chw(hr) / 255.0}

    def device_batch(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        high_order = self.config.enhance.high_order
        if high_order is not None and "lr" not in batch:
            batch = {**batch, "lr": degrade_batch(batch["hr"], self.scale, high_order, generator)}
        return super().device_batch(batch, generator)

    # ------------------------------------------------------------------------------------ training step
    def generator_output(self, generator: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
        return generator(batch["lr"])

    def real_and_fake(self, batch: Mapping[str, Tensor], fake: Tensor) -> tuple[Tensor, Tensor]:
        return batch["hr"], fake

    def content_loss(self, batch: Mapping[str, Tensor], fake: Tensor) -> tuple[Tensor, Logs]:
        losses, hr = self.config.losses, batch["hr"]
        pixel = self.pixel_loss(fake, hr)
        loss, logs = losses.pixel_weight * pixel, {"g_pixel": pixel.item()}
        if self.perceptual is not None or self.texture is not None:
            vgg = (self.perceptual or self.texture).vgg
            feats_sr = vgg(fake)
            with torch.no_grad():
                feats_hr = vgg(hr)
            if self.perceptual is not None:
                perceptual = self.perceptual.from_features(feats_sr, feats_hr)
                loss = loss + losses.perceptual_weight * perceptual
                logs["g_perceptual"] = perceptual.item()
            if self.texture is not None:
                texture = self.texture.from_features(feats_sr, feats_hr)
                loss = loss + losses.texture_weight * texture
                logs["g_texture"] = texture.item()
        return loss, logs

    # ---------------------------------------------------------------------------------------- inference
    def check_options(self, options: EnhanceOptions) -> None:
        if options.scale is not None and options.scale != self.scale:
            raise OptionsError(
                f"enhance: scale={options.scale} is not available: the model upscales ×{self.scale}"
            )

    def prepare(self, item: ImageRecord, options: EnhanceOptions, generator: nn.Module) -> Tensor:
        return torch.from_numpy(to_chw(rgb_float(item)))

    def run(self, generator: nn.Module, x: Tensor, options: EnhanceOptions) -> Tensor:
        pad = min(self.border_pad, x.shape[-2] - 1, x.shape[-1] - 1)  # reflection needs pad < size
        if pad > 0:
            x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        if options.tile:
            multiple = getattr(unwrap(generator), "input_multiple", 1)  # a pixel-unshuffling RRDBNet's factor
            y = tiled_forward(
                generator,
                x,
                tile=options.tile,
                overlap=options.tile_overlap,
                scale=self.scale,
                multiple=multiple,
            )
        else:
            y = generator(x)
        if pad > 0:
            crop = pad * self.scale
            y = y[..., crop:-crop, crop:-crop]
        return y.clamp_(0.0, 1.0)

    def finish(self, y: Tensor, item: ImageRecord, options: EnhanceOptions) -> ImageRecord:
        pixels = y.permute(1, 2, 0).numpy()
        if item.is_gray:
            pixels = pixels.mean(axis=-1, keepdims=True)
        height, width = pixels.shape[:2]
        alpha = None if item.alpha is None else resize(item.alpha, (width, height))
        return item.replace(pixels=from_float(pixels, item.bit_depth), alpha=alpha)

    # --------------------------------------------------------------------------------------- validation
    def evaluate(self, generator: nn.Module, images: Sequence[np.ndarray]) -> Evaluation:
        """Scores on bicubic-LR inputs and on archive-like ones, the crops' borders cut by the scale.

        Bicubic LR (the SR papers' protocol): ``psnr_y``, ``ssim_y`` (BT.601 Y) and ``psnr_rgb``. Archive
        copies (:func:`pixelplexus.transforms.archive_copy`: blur, downscale, noise, JPEG, seeded by the
        image's index): ``psnr_y_archive`` beside ``psnr_y_archive_bicubic`` (the copy upscaled bicubically),
        and ``niqe_archive`` (lower = more natural), only when the NIQE pristine model is found and the
        crops hold two 96² blocks: a per-crop NIQE, comparable between steps, not with whole-image tables.
        """
        try:
            niqe_params = load_niqe_params()
        except FileNotFoundError:
            niqe_params = None
        scale, rows = self.scale, []
        whole = self.parse_options(tile=0, precision="fp32")  # the whole image, as training scores it
        scores = {"psnr_y": [], "ssim_y": [], "psnr_rgb": []}
        scores |= {"psnr_y_archive": [], "psnr_y_archive_bicubic": [], "niqe_archive": []}
        for index, rgb in enumerate(images):
            hr = center_crop(rgb, self.config.train.eval_size, multiple=scale)
            lr = resize(hr, (hr.shape[1] // scale, hr.shape[0] // scale))
            sr = self.predict(generator, [ImageRecord(lr)], whole)[0].pixels
            scores["psnr_y"].append(psnr(sr, hr, crop_border=scale, y_channel=True))
            scores["ssim_y"].append(ssim(sr, hr, crop_border=scale, y_channel=True))
            scores["psnr_rgb"].append(psnr(sr, hr, crop_border=scale))
            archive = archive_copy(hr, scale, seed=index)
            restored = self.predict(generator, [ImageRecord(archive)], whole)[0].pixels
            bicubic = resize(archive, (hr.shape[1], hr.shape[0]))
            scores["psnr_y_archive"].append(psnr(restored, hr, crop_border=scale, y_channel=True))
            scores["psnr_y_archive_bicubic"].append(psnr(bicubic, hr, crop_border=scale, y_channel=True))
            blocks = np.prod([(side - 2 * scale) // NIQE_BLOCK for side in hr.shape[:2]])
            if niqe_params is not None and blocks >= 2:
                scores["niqe_archive"].append(niqe(restored, crop_border=scale, params=niqe_params))
            rows.append([lr, sr, hr, archive, restored])
        metrics = {name: float(np.mean(values)) for name, values in scores.items() if values}
        columns = ("input (LR)", "output", "real (HR)", "archive input", "archive output")
        return Evaluation(metrics, rows, columns)
