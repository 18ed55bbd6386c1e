"""The ``pixelplexus`` command. Thin: it parses flags and calls the package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from pixelplexus import __version__
from pixelplexus.config import TASK_NAMES


def _cmd_demo(args: argparse.Namespace) -> int:
    from pixelplexus.demo import describe, run_demo
    from pixelplexus.references import ModelReferenceError

    try:
        result = run_demo(args.out, size=args.size, models=dict(args.models), train_steps=args.train_steps)
    except (ModelReferenceError, ValueError) as exc:
        hint = " (the demo takes --model TASK=REF)" if isinstance(exc, ModelReferenceError) else ""
        print(f"pixelplexus demo: error: {exc}{hint}", file=sys.stderr)
        return 2
    print(describe(result))
    return 0


def _task_model(text: str) -> tuple[str, str]:
    """``TASK=REF`` (``--model`` of the demo) → (task, reference)."""
    task, sep, reference = text.partition("=")
    if not sep or task not in TASK_NAMES or not reference:
        raise argparse.ArgumentTypeError(
            f"expected TASK=REF, TASK one of {', '.join(TASK_NAMES)}; got {text!r}"
        )
    return task, reference


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


def _cmd_models_list(args: argparse.Namespace) -> int:
    from pixelplexus.references import bundled_models
    from pixelplexus.weights import WeightsError, read_info, weights_file

    entries = sorted(bundled_models().items())
    for given in args.paths:
        path = Path(given)
        found = sorted(path.rglob("*.safetensors")) if path.is_dir() else [path]
        entries += [(str(f), f) for f in found]
    status = 0
    for name, path in entries:
        try:
            info = read_info(weights_file(path, name))
        except (WeightsError, FileNotFoundError) as exc:
            print(f"pixelplexus models list: {exc}", file=sys.stderr)
            status = 2
            continue
        scale = f"x{info.scale}" if info.scale else "-"
        size = f"{path.stat().st_size / 2**20:5.1f} MiB"
        origin = info.extra.get("source", {}).get("format", "")
        print(f"{name:16s} {info.task:9s} {info.arch:20s} {scale:3s} {size} {origin}".rstrip())
        if info.extra.get("license"):
            print(f"{'':16s} license: {info.extra['license']}")
    return status


def _cmd_models_export(args: argparse.Namespace) -> int:
    from pixelplexus.community.importer import export_basicsr
    from pixelplexus.references import ModelReferenceError, export_model, resolve_model

    try:
        if args.format == "basicsr":
            resolved = resolve_model(args.reference, args.task)
            export_basicsr(resolved.load(), resolved.info, args.dest)
        else:
            resolved = export_model(args.reference, args.task, args.dest)
    except ModelReferenceError as exc:
        print(f"pixelplexus models export: {exc}", file=sys.stderr)
        return 2
    print(f"{args.dest}: {resolved.describe()}")
    return 0


def _cmd_models_blend(args: argparse.Namespace) -> int:
    """``models interpolate`` and ``models soup``: write a blend of trainings of one network, or say why not."""
    from pixelplexus.references import ModelReferenceError, average_models, interpolate_models

    try:
        if args.models_command == "interpolate":
            info = interpolate_models(args.first, args.second, args.task, args.weight, args.dest)
            what = f"{1 - args.weight:g} × {args.first} + {args.weight:g} × {args.second}"
        else:
            info = average_models(args.references, args.task, args.dest)
            what = f"the mean of {len(args.references)} models: {', '.join(args.references)}"
    except ModelReferenceError as exc:
        print(f"pixelplexus models {args.models_command}: {exc}; nothing was written", file=sys.stderr)
        return 2
    print(f"{args.dest}: {info.arch}{f' ×{info.scale}' if info.scale else ''}, {what}")
    return 0


def _cmd_models_import(args: argparse.Namespace) -> int:
    from pixelplexus.community.importer import import_weights
    from pixelplexus.weights import WeightsError

    try:
        info = import_weights(
            args.source,
            args.dest,
            task=args.task,
            scale=args.scale,
            name=args.name,
            license_text=args.license,
            border_pad=args.border_pad,
        )
    except WeightsError as exc:
        print(f"pixelplexus models import: {exc}; nothing was written", file=sys.stderr)
        return 2
    args_text = ", ".join(f"{k}={v}" for k, v in info.args.items())
    print(
        f"{args.dest}: {info.extra['name']}, {info.arch}({args_text}), x{info.scale}, from {info.extra['source']['format']}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelplexus",
        description="Train, batch-run and serve image GAN models (generate, enhance, colorize) on Ray.",
    )
    parser.add_argument("--version", action="version", version=f"pixelplexus {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the main jobs on embedded defaults: batch enhance/colorize, generate, train; writes a page",
        description="Archive copies of sample photos through the batch pipelines, a generated grid and a short "
        "training run, on a local Ray instance with an MLflow store in the output folder.",
    )
    demo.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument(
        "--size", type=int, default=256, help="edge of the sample photos in pixels (default: 256)"
    )
    demo.add_argument(
        "--model",
        dest="models",
        type=_task_model,
        action="append",
        default=[],
        metavar="TASK=REF",
        help="the model of a task: weights file, s3:// file, MLflow models:/ or runs:/ URI, or bundled name "
        "(repeatable; default: the bundled weights)",
    )
    demo.add_argument(
        "--train-steps", type=int, default=40, help="steps of the short training run (default: 40)"
    )
    demo.set_defaults(func=_cmd_demo)

    config = sub.add_parser("config", help="print a task's default configuration as YAML (a starting point)")
    config.add_argument("task", choices=TASK_NAMES)
    config.set_defaults(func=_cmd_config)

    archs = sub.add_parser("archs", help="list the network architectures")
    archs.set_defaults(func=_cmd_archs)

    models = sub.add_parser(
        "models",
        help="list models; import the community's weights; export any model's weights to a file; "
        "interpolate two trainings of one network or average several",
    )
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = models_sub.add_parser("list", help="the bundled models, and the weights files given")
    listing.add_argument("paths", nargs="*", metavar="PATH", help="weights files or folders to list as well")
    listing.set_defaults(func=_cmd_models_list)
    export = models_sub.add_parser(
        "export",
        help="check a model reference and write its weights file to DEST "
        "(e.g. models:/pixelplexus-enhance/3 → platform/pixelplexus/bundled/enhance-x4.safetensors)",
    )
    export.add_argument("task", choices=TASK_NAMES)
    export.add_argument(
        "reference", help="bundled name, weights file, s3://bucket/key or MLflow models:/ URI"
    )
    export.add_argument("dest", help="the weights file to write")
    export.add_argument(
        "--format",
        choices=("pixelplexus", "basicsr"),
        default="pixelplexus",
        help="pixelplexus: a safetensors weights file (default); basicsr: a .pth state dict "
        "({'params_ema': …}) that BasicSR, Real-ESRGAN and chaiNNer load",
    )
    export.set_defaults(func=_cmd_models_export)
    interpolate = models_sub.add_parser(
        "interpolate",
        help="blend two trainings of one network: (1 - W) x FIRST + W x SECOND (ESRGAN's network "
        "interpolation: a PSNR model and its GAN fine-tune give faithful-to-sharp in between)",
    )
    interpolate.add_argument("task", choices=TASK_NAMES)
    interpolate.add_argument("first", help="model reference (bundled name, weights file, s3://, MLflow URI)")
    interpolate.add_argument("second", help="model reference of the same network")
    interpolate.add_argument("dest", help="the weights file to write")
    interpolate.add_argument("--weight", type=float, required=True, help="SECOND's share, 0..1")
    interpolate.set_defaults(func=_cmd_models_blend)
    soup = models_sub.add_parser(
        "soup",
        help="average several trainings of one network started from the same weights (a model soup: "
        "often better than each, at the cost of one)",
    )
    soup.add_argument("task", choices=TASK_NAMES)
    soup.add_argument(
        "references", nargs="+", metavar="REFERENCE", help="two or more model references of the same network"
    )
    soup.add_argument("dest", help="the weights file to write (keeps the first reference's metadata)")
    soup.set_defaults(func=_cmd_models_blend)
    importing = models_sub.add_parser(
        "import",
        help="turn a Real-ESRGAN / BasicSR / ESRGAN checkpoint or an ncnn model into a weights file",
        description="Recognise RRDBNet, SRVGGNetCompact and MSRResNet weights (.pth/.pt loaded with "
        "weights_only=True, .safetensors, or an ncnn .param + .bin pair) and write a PixelPlexus weights "
        "file that every --model accepts. Nothing is written when the file is refused.",
    )
    importing.add_argument(
        "source", help="a .pth/.pt/.safetensors checkpoint, or an ncnn .param or .bin file"
    )
    importing.add_argument("dest", help="the weights file to write (.safetensors)")
    importing.add_argument("--task", choices=("enhance",), default="enhance", help="the model's task")
    importing.add_argument(
        "--scale", type=int, choices=(1, 2, 3, 4), help="the scale the model must have (default: as detected)"
    )
    importing.add_argument("--name", help="the model's name in listings (default: the source file's stem)")
    importing.add_argument("--license", help="license or attribution text stored with the weights")
    importing.add_argument(
        "--border-pad",
        type=int,
        default=10,
        help="input pixels mirrored at each border before the network runs, as Real-ESRGAN's runtimes do "
        "(default: 10; 0: none)",
    )
    importing.set_defaults(func=_cmd_models_import)

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


def console() -> None:
    """The ``pixelplexus`` executable: :func:`main`, then the exit. After a batch command that started a
    local Ray of its own, the process ends at once and leaves that instance to its watcher
    (:func:`pixelplexus.localray.exit_process`). In-process callers use :func:`main`, which never exits."""
    code = main()
    from pixelplexus import localray

    localray.exit_process(code)


if __name__ == "__main__":
    console()
