"""Training runs as the tests ask for them: a tiny config, images to train on, a run, and its final state."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image

from pixelplexus.config import TaskConfig, shipped_config
from pixelplexus.training.state import STATE_FILE
from pixelplexus.training.trainer import TrainJob, TrainResult, run_training
from support.corpus import bad_images, pattern

BAD = ("empty", "text_named_jpg", "truncated_png", "bomb_png_81_megapixels")


def tiny(task: str, **changes) -> TaskConfig:
    """The task's shipped tiny config (``pixelplexus/configs/<task>-tiny.yaml``), with ``changes`` applied."""
    config = shipped_config(f"{task}-tiny")
    return config.override(**changes) if changes else config


def image_files(count: int = 48, *, with_bad: bool = True) -> dict[str, bytes]:
    """Relative path → bytes: ``count`` photo-like PNG/JPEG images in nested folders, plus bad files."""
    files = {}
    for i in range(count):
        buffer = io.BytesIO()
        fmt = "PNG" if i % 2 else "JPEG"
        Image.fromarray(pattern(40 + 4 * (i % 3), 48, seed=i)).save(buffer, format=fmt)
        files[f"set{i % 2}/img{i:02d}.{'png' if i % 2 else 'JPG'}"] = buffer.getvalue()
    if with_bad:
        corpus = bad_images()
        for name in BAD:
            files[f"bad/{name}{corpus[name].extension}"] = corpus[name].data
    return files


def train(tmp_path: Path, config: TaskConfig, data, tracking_uri: str, **options) -> TrainResult:
    """A run of ``config`` on ``data`` on the current Ray (2 workers unless given), checkpoints under
    ``tmp_path / "ray"``, logged to the experiment "tests" of ``tracking_uri``."""
    job = TrainJob(
        config=config,
        data=str(data),
        workers=options.pop("workers", 2),
        tracking_uri=tracking_uri,
        experiment=options.pop("experiment", "tests"),
        storage=str(tmp_path / "ray"),
        **options,
    )
    return run_training(job)


def final_state(result: TrainResult | str | Path) -> dict:
    """The training state (step, networks, optimisers, EMA) of a run's final checkpoint, or of a checkpoint
    folder."""
    folder = result.checkpoint if isinstance(result, TrainResult) else result
    return torch.load(Path(folder) / STATE_FILE, weights_only=True)


class ConvDtypes:
    """The dtypes that ``network``'s convolutions produce, one per call (forward hooks): which arithmetic
    really ran."""

    def __init__(self, network: torch.nn.Module) -> None:
        self.seen: list[torch.dtype] = []
        for module in network.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.register_forward_hook(self._hook)

    def _hook(self, _module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
        self.seen.append(output.dtype)
