"""Network architectures, one per file, and a plain dict from config name to class.

Enhance (super-resolution): ``srresnet``, ``msrresnet``, ``rrdbnet``, ``compact`` generators;
``vgg_discriminator``, ``unet_discriminator``. Colorize: ``pix2pix_unet``, ``effnet_unet`` (an ImageNet-pretrained encoder), ``patchgan``. Generate (few-shot GAN):
``fastgan_generator``, ``fastgan_discriminator``, ``dcgan_generator``, ``dcgan_discriminator``.
"""

from __future__ import annotations

import inspect

from torch import nn

from .compact_arch import CompactSR
from .dcgan_arch import DCGANDiscriminator, DCGANGenerator
from .effnet_unet_arch import EffNetUNet
from .fastgan_arch import FastGANDiscriminator, FastGANGenerator
from .msrresnet_arch import MSRResNet
from .patchgan_arch import PatchGANDiscriminator
from .pix2pix_unet_arch import Pix2PixUNet
from .rrdbnet_arch import RRDBNet
from .srresnet_arch import SRResNet
from .unet_discriminator_arch import UNetDiscriminatorSN
from .vgg_discriminator_arch import VGGStyleDiscriminator

ARCHS: dict[str, type[nn.Module]] = {
    "srresnet": SRResNet,
    "msrresnet": MSRResNet,
    "rrdbnet": RRDBNet,
    "compact": CompactSR,
    "vgg_discriminator": VGGStyleDiscriminator,
    "unet_discriminator": UNetDiscriminatorSN,
    "pix2pix_unet": Pix2PixUNet,
    "patchgan": PatchGANDiscriminator,
    "effnet_unet": EffNetUNet,
    "fastgan_generator": FastGANGenerator,
    "fastgan_discriminator": FastGANDiscriminator,
    "dcgan_generator": DCGANGenerator,
    "dcgan_discriminator": DCGANDiscriminator,
}


def build_network(arch: str, **args: object) -> nn.Module:
    """Build the network registered as ``arch`` in ARCHS with keyword arguments ``args``.

    Raises ValueError for an unknown ``arch`` (naming the known ones) or a bad argument value, and TypeError
    for an argument the class does not take (naming the ones it does) or of the wrong type.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHS)}")
    cls = ARCHS[arch]
    signature = inspect.signature(cls)
    unknown = sorted(set(args) - set(signature.parameters))
    if unknown:
        raise TypeError(
            f"arch {arch!r} ({cls.__name__}) does not take {', '.join(unknown)}; "
            f"its arguments are {cls.__name__}{signature}"
        )
    return cls(**args)


__all__ = [
    "ARCHS",
    "CompactSR",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "EffNetUNet",
    "FastGANDiscriminator",
    "FastGANGenerator",
    "MSRResNet",
    "PatchGANDiscriminator",
    "Pix2PixUNet",
    "RRDBNet",
    "SRResNet",
    "UNetDiscriminatorSN",
    "VGGStyleDiscriminator",
    "build_network",
]
