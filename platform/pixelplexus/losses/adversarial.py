"""Adversarial losses on discriminator logits, and the R1 gradient penalty.

Kinds (``KINDS``):

* ``"nsgan"`` — the non-saturating GAN of Goodfellow et al. 2014 in softplus form (as in StyleGAN2):
  D: ``softplus(−D(x)) + softplus(D(G(z)))``; G: ``softplus(−D(G(z)))``.
* ``"hinge"`` — Lim & Ye 2017 / Miyato et al. 2018 (SNGAN), used by FastGAN:
  D: ``relu(1 − D(x)) + relu(1 + D(G(z)))``; G: ``−D(G(z))``.
* ``"lsgan"`` — least squares GAN, Mao et al. 2017, targets a = 0, b = c = 1:
  D: ``½(D(x) − 1)² + ½D(G(z))²``; G: ``½(D(G(z)) − 1)²``.
* ``"ragan"`` — relativistic average GAN (Jolicoeur-Martineau 2019) as in ESRGAN (Wang et al. 2018),
  BCE-with-logits form with ``D_Ra(a, b) = σ(C(a) − E[C(b)])``. Both players see both sides:
  D: ``½(BCE(C(x_r) − E C(x_f), 1) + BCE(C(x_f) − E C(x_r), 0))``,
  G: ``½(BCE(C(x_r) − E C(x_f), 0) + BCE(C(x_f) − E C(x_r), 1))``.
  The ½ average is ESRGAN's released code (the paper writes the sum), so its adversarial weight 5e-3
  carries over.

Each term is a mean over the batch (and over any spatial logits, e.g. PatchGAN or U-Net discriminators).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

KINDS: tuple[str, ...] = ("nsgan", "hinge", "lsgan", "ragan")


class AdversarialLoss:
    """The two players' losses of one GAN formulation; see the module docstring for the formulas.

    Args:
        kind: one of :data:`KINDS`.

    Stateless: holds only ``kind``, so one instance can serve any number of calls.
    """

    def __init__(self, kind: str):
        if kind not in KINDS:
            raise ValueError(
                f"unknown adversarial loss {kind!r}; use one of {', '.join(KINDS)} "
                "(or set losses.adversarial: none to train without a discriminator)"
            )
        self.kind = kind

    def __repr__(self) -> str:
        return f"AdversarialLoss({self.kind!r})"

    def discriminator(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """The discriminator's loss: low when ``real_logits`` are high and ``fake_logits`` low."""
        if self.kind == "nsgan":
            return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        if self.kind == "hinge":
            return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
        if self.kind == "lsgan":
            return 0.5 * ((real_logits - 1.0) ** 2).mean() + 0.5 * (fake_logits**2).mean()
        return 0.5 * (
            _bce(real_logits - fake_logits.mean(), True) + _bce(fake_logits - real_logits.mean(), False)
        )

    def generator(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        """The generator's loss: low when ``fake_logits`` are high.

        ``real_logits`` (the discriminator on real images of the same batch) are needed by ``"ragan"`` only;
        they are detached here, so the generator step never updates the discriminator.
        """
        if self.kind == "nsgan":
            return F.softplus(-fake_logits).mean()
        if self.kind == "hinge":
            return -fake_logits.mean()
        if self.kind == "lsgan":
            return 0.5 * ((fake_logits - 1.0) ** 2).mean()
        if real_logits is None:
            raise ValueError(
                "AdversarialLoss('ragan').generator needs real_logits: pass the discriminator's logits on the "
                "real images of the batch, generator(fake_logits, real_logits)"
            )
        real_logits = real_logits.detach()
        return 0.5 * (
            _bce(real_logits - fake_logits.mean(), False) + _bce(fake_logits - real_logits.mean(), True)
        )


def _bce(logits: Tensor, target_is_real: bool) -> Tensor:
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def r1_penalty(real_logits: Tensor, real_images: Tensor) -> Tensor:
    """R1 gradient penalty (Mescheder et al. 2018, "Which training methods for GANs actually converge?").

    ``E_x ||∇_x D(x)||²`` on real images: the squared gradient norm per sample, averaged over the batch.
    The paper's weight is γ/2; multiply by it yourself. Built with ``create_graph=True`` so it can be
    back-propagated into the discriminator.

    Usage: ``real = real.detach().requires_grad_(True); logits = D(real); r1_penalty(logits, real)``.
    A discriminator whose output does not depend on its input gives 0.
    """
    if not real_images.requires_grad:
        raise ValueError(
            "r1_penalty: real_images does not require grad; call real_images.requires_grad_(True) before "
            "the discriminator's forward pass and pass that same tensor here"
        )
    if not real_logits.requires_grad:
        raise ValueError(
            "r1_penalty: real_logits carry no autograd graph; compute them from real_images with gradients "
            "enabled (not under torch.no_grad() or after .detach())"
        )
    (grad,) = torch.autograd.grad(
        outputs=real_logits.sum(), inputs=real_images, create_graph=True, allow_unused=True
    )
    if grad is None:
        return real_images.new_zeros(())
    return grad.pow(2).reshape(grad.shape[0], -1).sum(dim=1).mean()
