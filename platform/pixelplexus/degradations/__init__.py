"""Real-ESRGAN's high-order degradation model (Wang et al., ICCVW 2021, "Real-ESRGAN: Training Real-World
Blind Super-Resolution with Pure Synthetic Data"), batched in torch: :func:`degrade_batch` turns HR crops
into LR inputs on the training device. ``kernels`` (random blur and sinc kernels), ``jpeg`` (JPEG in torch)
and ``pipeline`` (resize, noise and the two rounds) hold the stages; settings:
:class:`pixelplexus.config.HighOrderDegradationConfig`.
"""

from pixelplexus.degradations.jpeg import jpeg
from pixelplexus.degradations.kernels import blur, final_sinc_kernels, random_kernels, sinc_kernels
from pixelplexus.degradations.pipeline import add_noise, degrade_batch, random_jpeg, resize

__all__ = [
    "add_noise",
    "blur",
    "degrade_batch",
    "final_sinc_kernels",
    "jpeg",
    "random_jpeg",
    "random_kernels",
    "resize",
    "sinc_kernels",
]
