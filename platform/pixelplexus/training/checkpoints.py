"""Checkpoint folders in a run: written by the workers and reported to Ray Train, fetched to resume from.

What a folder holds (``state.pt``, the generators, ``config.json``) is written and read by
:class:`~pixelplexus.training.state.RunState`; this module moves such folders between the workers, Ray
Train's storage, MLflow and the command line (``pixelplexus train --resume``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixelplexus.training.state import RunState

if TYPE_CHECKING:
    from pixelplexus.training.reporting import Reporter


def save_checkpoint(state: RunState, run_id: str, rank: int, world: int, reporter: Reporter | None) -> None:
    """All ranks: gather RNG states; rank 0 writes and logs the checkpoint; all report to Ray Train."""
    import ray.train
    import torch.distributed as dist

    rng_states = [state.rng_state()]
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, rng_states[0])
        rng_states = gathered
    step = state.position.step
    metrics = {"step": step, "epoch": state.position.epoch}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            folder = state.save(Path(tmp) / f"step-{step:07d}", rng_states, run_id=run_id)
            if reporter is not None:
                metrics.update(reporter.evaluate_if_due(step))
                reporter.checkpoint(folder)
            checkpoint = ray.train.Checkpoint.from_directory(str(folder))
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"step-{step:07d}")


def fetch_checkpoint(uri: str) -> Path:
    """A local copy of the checkpoint folder at ``uri`` (local path, ``s3://…`` or an MLflow URI)."""
    from pixelplexus.io.files import MLFLOW_SCHEMES, localize, scheme_of

    if scheme_of(uri) in MLFLOW_SCHEMES or scheme_of(uri) in ("", "file"):
        folder = localize(uri)
    else:
        import ray.train

        folder = Path(ray.train.Checkpoint(path=uri).to_directory())
    if (folder / "state.pt").is_file():
        return folder
    if folder.name == "state.pt":
        return folder.parent
    raise FileNotFoundError(f"{uri} is not a PixelPlexus checkpoint (no state.pt)")
