"""The ``pixelplexus`` command. Thin: it parses flags and calls the package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import yaml

from pixelplexus import __version__


def _cmd_demo(args: argparse.Namespace) -> int:
    from pixelplexus.demo import run_demo

    result = run_demo(args.out, size=args.size)
    print(f"outputs: {result.out_dir.resolve()}\npage:    {result.page.resolve()}")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from pixelplexus.tasks import TASKS

    config = TASKS[args.task].default_config()
    yaml.safe_dump(config.model_dump(mode="json"), sys.stdout, sort_keys=False)
    return 0


def _cmd_archs(args: argparse.Namespace) -> int:
    from pixelplexus.archs import ARCHS

    for name, cls in ARCHS.items():
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name:24s} {summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelplexus",
        description="Train, batch-run and serve image GAN models (generate, enhance, colorize) on Ray.",
    )
    parser.add_argument("--version", action="version", version=f"pixelplexus {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="enhance, colorize and generate sample photos offline; writes a page")
    demo.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument(
        "--size", type=int, default=256, help="edge of the sample photos in pixels (default: 256)"
    )
    demo.set_defaults(func=_cmd_demo)

    config = sub.add_parser("config", help="print a task's default configuration as YAML (a starting point)")
    config.add_argument("task", choices=("generate", "enhance", "colorize"))
    config.set_defaults(func=_cmd_config)

    archs = sub.add_parser("archs", help="list the network architectures")
    archs.set_defaults(func=_cmd_archs)

    # Each layer registers its own commands; their modules import Ray and torch only when a command runs.
    from pixelplexus.batch.command import add_parsers as add_batch
    from pixelplexus.kube import add_parsers as add_k8s
    from pixelplexus.serving.command import add_parsers as add_serving
    from pixelplexus.training.command import add_parsers as add_training

    add_training(sub)
    add_batch(sub)
    add_serving(sub)
    add_k8s(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
