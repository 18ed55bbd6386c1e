"""Batch runs as the tests ask for them: a request for a tiny model, and an input folder written from bytes."""

from __future__ import annotations

from pathlib import Path

from pixelplexus.batch.run import BatchRequest
from pixelplexus.references import resolve_model


def request(weights, task, input, output, **kwargs) -> BatchRequest:
    """A request to run ``task`` with the tiny model ``weights[task]`` from ``input`` to ``output``."""
    options = {"enhance": {"tile": None}, "colorize": {"render_size": 32}}[task] | kwargs.pop("options", {})
    return BatchRequest(
        task=task,
        input=str(input),
        output=str(output),
        model=resolve_model(str(weights[task]), task),
        options=options,
        batch_size=4,
        **kwargs,
    )


def write_folder(root: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (relative key → bytes) under ``root``, making folders as needed."""
    for key, data in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
