"""Training pairs for ``enhance.pairs`` distilled from a teacher model: ``pixelplexus.distillation`` does the work.

    python jobs/distill_pairs.py ../shared/data/train/T91 ../shared/data/train/BSD200 \
        --out pairs-x4plus --teacher realesrgan-x4plus.safetensors --copies 2

Works from a checkout where the package is not installed: the repository's ``platform/`` folder is put on the path.
"""

import sys
from pathlib import Path

try:
    import pixelplexus  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from pixelplexus.distillation import main

if __name__ == "__main__":
    sys.exit(main())
