"""Ray job entrypoint for training: ``ray job submit --working-dir . -- python jobs/train.py TASK --data …``.

Takes the same flags as ``pixelplexus train`` (``--help`` lists them). Works from a checkout where the
package is not installed: the repository's ``platform/`` folder is put on the path.
"""

import sys
from pathlib import Path

try:
    import pixelplexus  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from pixelplexus.training.command import main

if __name__ == "__main__":
    sys.exit(main())
