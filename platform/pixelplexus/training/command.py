"""``pixelplexus train TASK --data …``: flags → :class:`TrainJob` → :func:`run_training`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from pixelplexus.config import (
    TASK_NAMES,
    ConfigError,
    TaskConfig,
    load_config,
    shipped_config,
    shipped_config_names,
)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("task", choices=TASK_NAMES, help="which model to train")
    parser.add_argument("--data", required=True, help="training images: a local folder or s3://bucket/prefix")
    parser.add_argument(
        "--config",
        help="task config: a YAML file (see jobs/configs/) or the name of one shipped with the package "
        f"({', '.join(shipped_config_names())}); default: the task's built-in config, sized for GPUs",
    )
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers (default: 1)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per worker (default: 0)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per worker (default: 1)")
    parser.add_argument("--max-steps", type=int, help="override train.max_steps")
    parser.add_argument(
        "--resume",
        metavar="RUN_ID|CHECKPOINT_URI",
        help="continue an MLflow run, or start from a checkpoint folder",
    )
    parser.add_argument(
        "--experiment", default="pixelplexus", help="MLflow experiment (default: pixelplexus)"
    )
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db)"
    )
    parser.add_argument("--val-data", help="validation images (default: the first training images)")
    parser.add_argument(
        "--storage", help="Ray Train checkpoint storage, shared on clusters (default: ./ray_results)"
    )
    parser.add_argument(
        "--max-failures", type=int, default=3, help="worker failures to recover from (default: 3)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value by dotted path, e.g. --set train.log_every=10 (repeatable; YAML values)",
    )
    return parser


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``pixelplexus train``."""
    parser = sub.add_parser(
        "train",
        help="train a model with Ray Train; checkpoints and the model go to MLflow",
        description="Distributed GAN training on Ray Train with checkpoints and a registered model in MLflow.",
    )
    add_arguments(parser).set_defaults(func=run)


def parse_overrides(items: Sequence[str]) -> dict[str, object]:
    """``--set KEY=VALUE`` flags → ``{dotted key: YAML value}`` for :meth:`TaskConfig.override`."""
    changes = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        changes[key.strip()] = yaml.safe_load(value)
    return changes


def build_config(args: argparse.Namespace) -> TaskConfig:
    """The task config from ``--config`` (or the checkpoint being resumed, or the task default) and flags."""
    from pixelplexus.tasks import TASKS

    if args.config and not Path(args.config).exists() and args.config in shipped_config_names():
        config = shipped_config(args.config)
    elif args.config:
        if not Path(args.config).exists():
            raise ConfigError(
                f"config file not found: {args.config} (nor is it the name of a shipped config: "
                f"{', '.join(shipped_config_names())})"
            )
        config = load_config(args.config)
    elif args.resume:
        config = _resumed_config(args)
    else:
        config = TASKS[args.task].default_config()
    if config.task != args.task:
        raise ConfigError(f"the config is for {config.task!r}, not {args.task!r}")
    changes = parse_overrides(args.overrides)
    if args.max_steps is not None:
        changes["train.max_steps"] = args.max_steps
    return config.override(**changes) if changes else config


def _resumed_config(args: argparse.Namespace) -> TaskConfig:
    from pixelplexus.training.checkpoints import fetch_checkpoint
    from pixelplexus.training.state import checkpoint_config
    from pixelplexus.training.tracking import default_tracking_uri
    from pixelplexus.training.trainer import resolve_resume

    uri, _ = resolve_resume(args.resume, args.tracking_uri or default_tracking_uri())
    return checkpoint_config(fetch_checkpoint(uri))


def run(args: argparse.Namespace) -> int:
    from pixelplexus.training.trainer import TrainingDataError, TrainJob, run_training

    try:
        config = build_config(args)
        if config.train.init_backbone:  # a missing file or package is an error now, not in every worker later
            from pixelplexus.references import backbone_file

            backbone_file(config.train.init_backbone)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"pixelplexus train: {exc}", file=sys.stderr)
        return 2
    job = TrainJob(
        config=config,
        data=args.data,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=args.cpus_per_worker,
        resume=args.resume,
        experiment=args.experiment,
        tracking_uri=args.tracking_uri,
        val_data=args.val_data,
        storage=args.storage,
        max_failures=args.max_failures,
    )
    try:
        result = run_training(job)
    except TrainingDataError as exc:
        print(f"pixelplexus train: {exc}", file=sys.stderr)
        return 2
    print(f"model: {result.model_uri}\nrun:   {result.run_id}\nmetrics: {result.metrics}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``jobs/train.py`` entry point: the same flags as ``pixelplexus train``."""
    parser = add_arguments(argparse.ArgumentParser(prog="jobs/train.py", description=__doc__))
    return run(parser.parse_args(argv))
