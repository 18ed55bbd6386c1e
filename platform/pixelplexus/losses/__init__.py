"""Training losses: pixel, adversarial (+ R1), VGG perceptual and EnhanceNet texture.

``losses.adversarial.KINDS`` and ``losses.pixel.KINDS`` are re-exported as ``ADVERSARIAL_KINDS`` and
``PIXEL_KINDS``.
"""

from pixelplexus.losses.adversarial import KINDS as ADVERSARIAL_KINDS
from pixelplexus.losses.adversarial import AdversarialLoss, r1_penalty
from pixelplexus.losses.perceptual import (
    TEXTURE_LAYER_WEIGHTS,
    PerceptualLoss,
    TextureLoss,
    load_vgg19,
    patch_gram,
)
from pixelplexus.losses.pixel import KINDS as PIXEL_KINDS
from pixelplexus.losses.pixel import PixelLoss

__all__ = [
    "ADVERSARIAL_KINDS",
    "PIXEL_KINDS",
    "TEXTURE_LAYER_WEIGHTS",
    "AdversarialLoss",
    "PerceptualLoss",
    "PixelLoss",
    "TextureLoss",
    "load_vgg19",
    "patch_gram",
    "r1_penalty",
]
