"""Inference options: per task, the one declaration of what a caller may ask for.

Each task's options model (:class:`EnhanceOptions`, :class:`ColorizeOptions`, :class:`GenerateOptions`)
says its fields' names, types, defaults, limits and help texts (``description``). The batch command's
flags (``--tile-overlap`` from ``tile_overlap``) and the HTTP API's query parameters are derived from
them, and :func:`parse_options` checks what any caller gives. Free of torch, so building the command's
parser stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pixelplexus.config import TASK_NAMES
from pixelplexus.precision import Precision

MIN_TILE, MAX_TILE = 16, 4096


class InferenceOptions(BaseModel):
    """Per-call inference options; each task narrows this with its own fields.

    Each field's ``description`` is its help text on the command line and in the HTTP API's docs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    precision: Precision = Field(
        "auto",
        description="the network's arithmetic: fp32, bf16, or auto: bf16 where the processor has it natively "
        "(CPUs with AVX512-BF16 or AMX, GPUs with bfloat16), else fp32",
    )

    def passthrough_rule(self) -> Callable[[Any], str | None] | None:
        """The rule that says why an input is handed back untouched instead of run (e.g. "already in
        colour"), or None when every input runs. The batch pipeline calls it in its read workers, so it
        must pickle and import without torch (e.g. :class:`pixelplexus.metrics.AlreadyInColour`)."""
        return None

    def video_context(self) -> int:
        """Frames of each neighbouring segment a video segment is run with, for the task's
        ``smooth_frames`` (0: none; colorize's steadying of colour needs some). Torch-free, for the driver."""
        return 0


class OptionsError(ValueError):
    """Inference options that cannot be used (bad ``scale``, negative ``truncation``, …)."""


class GenerateOptions(InferenceOptions):
    """How ``generate`` maps seeds to images."""

    truncation: float | None = Field(
        None,
        gt=0.0,
        le=10.0,
        description="truncation trick: resample latent components beyond ±truncation (unset: plain normal latents)",
    )


class EnhanceOptions(InferenceOptions):
    """How ``enhance`` runs an image: the scale asked for, and the tiles large images are cut into."""

    scale: Literal[2, 3, 4] | None = Field(None, description="the model's scale (checked)")
    tile: int | None = Field(  # None, as 0: the whole image at once
        512, description="tile edge in input pixels for large images; 0: never tile"
    )
    tile_overlap: int = Field(32, ge=0, le=512, description="overlap of tiles in pixels")

    @field_validator("tile")
    @classmethod
    def _tile_in_range(cls, tile: int | None) -> int | None:
        if tile == 0:
            return None
        if tile is not None and not MIN_TILE <= tile <= MAX_TILE:
            raise ValueError(f"tile must be 0 (never tile) or {MIN_TILE}..{MAX_TILE}, got {tile}")
        return tile

    @model_validator(mode="after")
    def _tile_holds_overlap(self) -> EnhanceOptions:
        if self.tile is not None and self.tile < 2 * self.tile_overlap:
            raise ValueError(
                f"tile ({self.tile}) must be at least twice tile_overlap ({self.tile_overlap}); "
                "raise tile or lower tile_overlap"
            )
        return self


class ColorizeOptions(InferenceOptions):
    """How ``colorize`` runs an image, and which images it passes through untouched."""

    render_size: int | None = Field(
        None,
        ge=32,
        le=2048,
        description="longer side the network sees (default: the model's own, from its weights; else 256)",
    )
    strength: float = Field(1.0, ge=0.0, le=1.0, description="scale of the added colour, 0..1")
    skip_color: bool = Field(
        False, description="pass images already in colour through untouched (marked skipped in the manifest)"
    )

    def passthrough_rule(self) -> Callable[[Any], str | None] | None:
        from pixelplexus.metrics import AlreadyInColour

        return AlreadyInColour() if self.skip_color else None

    def video_context(self) -> int:
        from pixelplexus.temporal import CONTEXT

        return CONTEXT


OPTIONS: dict[str, type[InferenceOptions]] = {
    "generate": GenerateOptions,
    "enhance": EnhanceOptions,
    "colorize": ColorizeOptions,
}
assert tuple(OPTIONS) == TASK_NAMES


def parse_options(
    task: str, options: InferenceOptions | Mapping[str, Any] | None = None, **kwargs: Any
) -> InferenceOptions:
    """Validate ``task``'s inference options (a model, a mapping or keywords); :class:`OptionsError` says
    what is wrong with which field."""
    model = OPTIONS[task]
    if isinstance(options, model) and not kwargs:
        return options
    data = dict(options.model_dump() if isinstance(options, BaseModel) else options or {}, **kwargs)
    try:
        return model(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
        )
        raise OptionsError(f"{task}: {problems}") from None


def option_type(annotation: Any) -> tuple[type, tuple[Any, ...] | None]:
    """The plain type of an options field (``int | None`` → int) and its choices (a ``Literal``'s values),
    as the CLI flags and the HTTP query parameters derived from an options model need them."""
    args = [arg for arg in get_args(annotation) if arg is not type(None)] or [annotation]
    kind = args[0] if get_origin(annotation) in (Union, UnionType) else annotation
    if get_origin(kind) is Literal:
        choices = get_args(kind)
        return type(choices[0]), choices
    return kind, None
