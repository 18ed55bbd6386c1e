"""``pixelplexus serve``: run the Serve application locally until interrupted."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pixelplexus.localray import LocalRay

LOCAL_CPUS = 4  # logical CPUs of the local Ray instance, at least
STOP_WITHIN_S = 11.0  # Serve and Ray shut down within this after SIGINT/SIGTERM, or are stopped hard


def _model_override(text: str) -> tuple[str, str]:
    from pixelplexus.config import TASK_NAMES

    task, sep, reference = text.partition("=")
    if not sep or task not in TASK_NAMES or not reference:
        raise argparse.ArgumentTypeError(
            f"expected TASK=REF with TASK one of {', '.join(TASK_NAMES)}, e.g. enhance=weights.safetensors; "
            f"got {text!r}"
        )
    return task, reference


def _cmd_serve(args: argparse.Namespace) -> int:
    from pixelplexus.references import ModelReferenceError
    from pixelplexus.serving.deploy import check_models, deploy, load_serve_config, with_http, with_models

    try:
        config = load_serve_config(args.config)
    except (OSError, ValueError) as exc:
        print(f"pixelplexus serve: cannot use --config {args.config}: {exc}", file=sys.stderr)
        return 2
    config = with_models(with_http(config, host=args.host, port=args.port), dict(args.model))
    try:
        models = check_models(config)  # before Ray starts: a bad reference is one clear message
    except ModelReferenceError as exc:
        print(f"pixelplexus serve: {exc}\ngive each task a model with --model TASK=REF", file=sys.stderr)
        return 2

    from ray import serve

    from pixelplexus import localray

    # A Ray instance of its own. The default replicas ask for 4 logical CPUs (two ingress replicas at 0.5, one
    # per model at 1); logical CPUs only schedule (the replicas share the cores), so a small machine still
    # runs the whole application.
    local = localray.start(
        address="local", num_cpus=max(os.cpu_count() or 1, LOCAL_CPUS), include_dashboard=False
    )
    _stop_on_signals(local)  # after ray.init, which installs handlers of its own
    try:
        if local is not None:
            print(f"ray: a local instance, logs in {local.session_dir}/logs", flush=True)
        deploy(config)
        for task, model in models.items():
            print(f"{task:9s} {model.reference} (version {model.version})")
        print(
            f"serving on http://{args.host}:{args.port} (a page to try it at /, API docs at /docs); Ctrl-C stops",
            flush=True,
        )
        while True:
            time.sleep(3600)
    except RuntimeError as exc:  # the application did not start; Serve's reason
        print(f"pixelplexus serve: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pixelplexus serve: stopping", flush=True)
    finally:
        if local is not None:
            local.stop(first=serve.shutdown, within=STOP_WITHIN_S)
        else:
            serve.shutdown()
    return 0


def _stop_on_signals(local: LocalRay | None) -> None:
    """SIGINT and SIGTERM stop the service (through ``KeyboardInterrupt``), a second one at once.

    Set explicitly: a script's background job (``pixelplexus serve &``) starts with SIGINT ignored, which
    Python keeps, and Ray's own SIGTERM handler exits without stopping Serve.
    """

    def first(signum, frame):
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, again)
        raise KeyboardInterrupt

    def again(signum, frame):
        if local is not None:
            local.force_exit(128 + signum, f"{signal.Signals(signum).name} while stopping")
        os._exit(128 + signum)

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, first)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``serve`` on the ``pixelplexus`` parser."""
    serve = sub.add_parser(
        "serve",
        help="run the HTTP service (Ray Serve) locally until interrupted",
        description="Deploy the Serve application (enhance, colorize, generate over HTTP) on a local Ray "
        "instance and block until interrupted. Without --config the embedded defaults and the bundled "
        "models are used.",
    )
    serve.add_argument("--config", help="a Ray Serve config file, e.g. serve/config.yaml")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    serve.add_argument(
        "--model",
        action="append",
        default=[],
        type=_model_override,
        metavar="TASK=REF",
        help="serve this model for a task (a weights file, s3:// or MLflow models:/ URI, bundled name); "
        "repeatable",
    )
    serve.set_defaults(func=_cmd_serve)
