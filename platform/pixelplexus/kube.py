"""``pixelplexus k8s render [--check]``: the KubeRay manifests' ``serveConfigV2`` from ``serve/config.yaml``.

``serve/config.yaml`` is the one source of truth for the Serve application. The RayService in
``k8s/base/rayservice.yaml`` embeds it as ``serveConfigV2`` (a YAML string, which kustomize cannot patch
field by field), and the prod-gpu overlay embeds a variant with every model deployment on a GPU. This module
writes both blocks from the Serve config, so the committed manifests show what is deployed, and ``--check``
(run by the tests) fails when they have drifted from it. Only the ``serveConfigV2: |`` block of each file is
rewritten; the rest of the file, comments included, is left as written.

This is repository tooling: it works on a checkout, named by ``--root``. Without it, the checkout this
package is imported from (an editable install, ``make install``'s), whatever the current directory; an
installed wheel has no checkout and asks for ``--root``.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import Any

import yaml

SERVE_CONFIG = Path("serve/config.yaml")  # paths relative to the checkout's root
SERVE_PORT = 8000  # the port KubeRay's serve Service targets (the head container's port named "serve")
MANIFESTS = {  # file → whether its Serve config puts the model deployments on GPUs
    Path("k8s/base/rayservice.yaml"): False,
    Path("k8s/overlays/prod-gpu/rayservice-gpu.yaml"): True,
}
_BLOCK = re.compile(r"^(?P<indent> *)serveConfigV2: \|[-+]?\n", re.MULTILINE)


def serve_config(root: Path, *, gpus: bool) -> dict[str, Any]:
    """The Serve config of a RayService: ``serve/config.yaml`` listening on every interface of the pod."""
    from pixelplexus.serving.deploy import deployment, load_serve_config, with_http
    from pixelplexus.tasks import TASKS

    config = with_http(load_serve_config(root / SERVE_CONFIG), host="0.0.0.0", port=SERVE_PORT)
    if gpus:
        for task in TASKS:
            deployment(config, task).setdefault("ray_actor_options", {})["num_gpus"] = 1
    return config


def embed(manifest: str, config: dict[str, Any], *, name: str = "manifest") -> str:
    """``manifest`` with its one ``serveConfigV2: |`` block replaced by ``config`` as YAML."""
    matches = list(_BLOCK.finditer(manifest))
    if len(matches) != 1:
        raise ValueError(f"{name}: expected one 'serveConfigV2: |' block, found {len(matches)}")
    match = matches[0]
    inner = match["indent"] + "  "
    lines = manifest[match.end() :].splitlines(keepends=True)
    end = 0  # the block: the following lines that are blank or indented deeper than the key
    for i, line in enumerate(lines):
        if line.startswith(inner):
            end = i + 1
        elif line.strip():
            break
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=110)
    block = "".join(inner + line if line.strip() else line for line in text.splitlines(keepends=True))
    return manifest[: match.end()] + block + "".join(lines[end:])


def render(root: Path) -> dict[Path, tuple[str, str]]:
    """Each manifest (relative path) → (its current text, its text rendered from the Serve config)."""
    result = {}
    for path, gpus in MANIFESTS.items():
        current = (root / path).read_text(encoding="utf-8")
        result[path] = (current, embed(current, serve_config(root, gpus=gpus), name=str(path)))
    return result


def package_checkout() -> Path | None:
    """The checkout this package is imported from (``platform/pixelplexus/`` in it), if it is one."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / SERVE_CONFIG).is_file() and (root / "k8s").is_dir() else None


def _cmd_render(args: argparse.Namespace) -> int:
    root = Path(args.root) if args.root is not None else package_checkout()
    if root is None:
        print(
            "pixelplexus k8s render: this pixelplexus is not imported from a checkout; "
            "give the checkout with --root",
            file=sys.stderr,
        )
        return 2
    if not (root / SERVE_CONFIG).is_file():
        print(
            f"pixelplexus k8s render: {root / SERVE_CONFIG} not found (give the checkout with --root)",
            file=sys.stderr,
        )
        return 2
    try:
        rendered = render(root)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"pixelplexus k8s render: {exc}", file=sys.stderr)
        return 2
    stale = {path: texts for path, texts in rendered.items() if texts[0] != texts[1]}
    if args.check:
        for path, (current, new) in stale.items():
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    str(path),
                    f"{path} (rendered)",
                )
            )
        if stale:
            print(
                f"pixelplexus k8s render: {', '.join(map(str, stale))} out of date with {SERVE_CONFIG}; "
                "run `pixelplexus k8s render` (make k8s)",
                file=sys.stderr,
            )
            return 1
        print(f"k8s/ is up to date with {SERVE_CONFIG}")
        return 0
    for path, (_, new) in stale.items():
        (root / path).write_text(new, encoding="utf-8")
        print(f"wrote {path}")
    if not stale:
        print(f"k8s/ is up to date with {SERVE_CONFIG}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``pixelplexus k8s render``."""
    k8s = sub.add_parser("k8s", help="KubeRay manifests (k8s/): render the RayService's Serve config")
    commands = k8s.add_subparsers(dest="k8s_command", metavar="COMMAND", required=True)
    render_parser = commands.add_parser(
        "render",
        help=f"write the RayService's serveConfigV2 from {SERVE_CONFIG}",
        description=f"Write the serveConfigV2 blocks of {', '.join(map(str, MANIFESTS))} from {SERVE_CONFIG}.",
    )
    render_parser.add_argument(
        "--root", help="the repository checkout (default: the one this pixelplexus is imported from)"
    )
    render_parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 with a diff when k8s/ is out of date"
    )
    render_parser.set_defaults(func=_cmd_render)
