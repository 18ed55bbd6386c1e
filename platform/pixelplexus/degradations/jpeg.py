"""JPEG compression in torch, batched with a quality per image (the DiffJPEG approach of Shin & Song, 2017,
that Real-ESRGAN, Wang et al. ICCVW 2021, uses to degrade training batches on the GPU), following baseline
libjpeg: RGB → YCbCr (JFIF), 4:2:0 chroma subsampling (2 × 2 mean), the 8 × 8 DCT, the standard tables
(ITU T.81 Annex K) scaled by quality as libjpeg does, rounding to integers, then the inverse with "fancy"
(triangle) chroma upsampling. Rounding is real (this is for data, not for gradients).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8,) * 4,
)
_RGB_TO_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
_YCBCR_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))


def quantisation_tables(quality: Tensor, base: tuple[tuple[int, ...], ...]) -> Tensor:
    """N × 8 × 8 tables for integer qualities 1..100, scaled as libjpeg's ``jpeg_quality_scaling``."""
    q = quality.round().clamp(1, 100).to(torch.float32)
    scale = torch.where(q < 50, torch.floor(5000 / q), 200 - 2 * q).view(-1, 1, 1)
    table = torch.tensor(base, dtype=torch.float32, device=quality.device)
    return torch.floor((table * scale + 50) / 100).clamp(1, 255)


def _dct_matrix(device: torch.device) -> Tensor:
    k = torch.arange(8, dtype=torch.float32, device=device).view(-1, 1)
    n = torch.arange(8, dtype=torch.float32, device=device).view(1, -1)
    matrix = torch.cos(math.pi * (2 * n + 1) * k / 16) * math.sqrt(2 / 8)
    matrix[0] = math.sqrt(1 / 8)
    return matrix


def _code_plane(plane: Tensor, tables: Tensor) -> Tensor:
    """One component (N × H × W, H and W multiples of 8, levels 0..255) through DCT → quantise → inverse."""
    n, h, w = plane.shape
    blocks = (plane - 128).view(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)
    dct = _dct_matrix(plane.device)
    coefficients = dct @ blocks @ dct.T
    table = tables.view(n, 1, 1, 8, 8)
    coefficients = torch.round(coefficients / table) * table
    blocks = dct.T @ coefficients @ dct
    return (blocks.permute(0, 1, 3, 2, 4).reshape(n, h, w) + 128).round().clamp(0, 255)


def jpeg(images: Tensor, quality: Tensor) -> Tensor:
    """Each image of a batch (N × 3 × H × W RGB in [0, 1]) compressed and decoded at its own quality
    (N integers, 1..100); returns the decoded images in [0, 1], on 8-bit levels."""
    h, w = images.shape[-2:]
    pad_h, pad_w = -h % 16, -w % 16  # whole 16 × 16 MCUs, edges repeated as libjpeg does
    x = (images.clamp(0, 1) * 255).round()
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    to_ycbcr = torch.tensor(_RGB_TO_YCBCR, dtype=x.dtype, device=x.device)
    ycbcr = torch.einsum("ij,njhw->nihw", to_ycbcr, x)
    ycbcr[:, 1:] += 128
    ycbcr = ycbcr.round().clamp(0, 255)
    chroma = F.avg_pool2d(ycbcr[:, 1:], 2).round()
    luma = _code_plane(ycbcr[:, 0], quantisation_tables(quality, LUMA_TABLE))
    chroma_tables = quantisation_tables(quality, CHROMA_TABLE)
    cb = _code_plane(chroma[:, 0], chroma_tables)
    cr = _code_plane(chroma[:, 1], chroma_tables)
    chroma = F.interpolate(torch.stack([cb, cr], 1), scale_factor=2, mode="bilinear", align_corners=False)
    ycbcr = torch.cat([luma.unsqueeze(1), chroma.round() - 128], 1)
    to_rgb = torch.tensor(_YCBCR_TO_RGB, dtype=x.dtype, device=x.device)
    rgb = torch.einsum("ij,njhw->nihw", to_rgb, ycbcr).round().clamp(0, 255)
    return (rgb[..., :h, :w] / 255).to(images.dtype)
