"""Ray job entrypoint for batch enhance / colorize: the ``pixelplexus enhance|colorize`` flags, unchanged.

    ray job submit --working-dir . -- python jobs/batch.py enhance s3://archive/scans s3://archive/x4 \
        --model models:/pixelplexus-enhance@champion --gpus-per-worker 1 --batch-size 16

Keys are checked and writes stay inside OUTPUT; ``--follow-symlinks`` reads links out of INPUT; a lease on
OUTPUT makes a second job on it stop with exit 2 unless ``--force`` (see ``jobs/README.md``, "Batch").

Inside a Ray job, ``ray.init()`` joins the job's cluster. Where pixelplexus is not installed (a plain
checkout), the repository's ``platform/`` folder is put on the path of this driver and, through
``PYTHONPATH``, of the workers of a cluster that this driver starts; for a submitted job add
``--runtime-env-json '{"env_vars": {"PYTHONPATH": "platform"}}'`` (workers run in the working dir).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

try:
    import pixelplexus  # noqa: F401
except ImportError:
    PLATFORM = str(Path(__file__).resolve().parent.parent / "platform")
    sys.path.insert(0, PLATFORM)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [PLATFORM, os.environ.get("PYTHONPATH")]))

from pixelplexus.batch.command import BATCH_TASKS
from pixelplexus.cli import build_parser


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BATCH_TASKS:
        print(
            f"usage: python jobs/batch.py {'|'.join(BATCH_TASKS)} INPUT OUTPUT [flags] (see --help)",
            file=sys.stderr,
        )
        return 2
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    from pixelplexus import localray

    localray.exit_process(main(sys.argv[1:]))  # a local Ray of its own is left to its watcher at the end
