"""Typed configuration: YAML or a dict → :class:`TaskConfig` → constructors.

Configuration flows one way. The edges (CLI, job entrypoints, the Serve app) read files and flags and
build a ``TaskConfig``; everything below them receives that object. Unknown keys are errors, so a typo in
a YAML file fails loudly instead of silently training with a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

TaskName = Literal["generate", "enhance", "colorize"]
TASK_NAMES: tuple[str, ...] = ("generate", "enhance", "colorize")


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
    reconstruction_weight: float = Field(1.0, ge=0)

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


class TaskConfig(_Strict):
    """Everything a task needs to build its networks and losses.

    ``crop_size`` is the training image size: the HR crop for enhance, the crop for colorize and the output
    resolution for generate. ``warmup_steps`` are generator-only steps with the pixel loss (SRResNet → SRGAN).
    ``augment`` is the DiffAugment policy used in front of the discriminator (generate only).
    """

    task: TaskName
    generator: NetworkSpec
    discriminator: NetworkSpec | None = None
    losses: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    crop_size: int = Field(96, ge=8)
    batch_size: int = Field(16, ge=1)
    warmup_steps: int = Field(0, ge=0)
    augment: str = ""

    def override(self, **changes: Any) -> TaskConfig:
        """A copy with top-level fields or dotted paths replaced, validated again (e.g. ``{"losses.r1_weight": 1}``)."""
        data = self.model_dump()
        for key, value in changes.items():
            node = data
            *parents, leaf = key.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"cannot set {key!r}: {part!r} is not a section of the config")
                node = node[part]
            node[leaf] = value
        return parse_config(data)


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
