"""Per-pair loss terms for pair-based losses.

Values are distances (small = similar) unless ``is_inverted`` says they are similarities.
"""

from __future__ import annotations

import torch

from .._types import Tensor


def contrastive_pos_terms(pos_values: Tensor, *, pos_margin: float, is_inverted: bool) -> Tensor:
    """``[d - m_pos]_+`` for distances, ``[m_pos - s]_+`` for similarities.

    Hadsell, Chopra, LeCun, "Dimensionality Reduction by Learning an Invariant Mapping",
    CVPR 2006, http://yann.lecun.com/exdb/publis/pdf/hadsell-chopra-lecun-06.pdf (eq. 4).
    """
    excess = pos_margin - pos_values if is_inverted else pos_values - pos_margin
    return torch.relu(excess)


def contrastive_neg_terms(neg_values: Tensor, *, neg_margin: float, is_inverted: bool) -> Tensor:
    """``[m_neg - d]_+`` for distances, ``[s - m_neg]_+`` for similarities."""
    shortfall = neg_values - neg_margin if is_inverted else neg_margin - neg_values
    return torch.relu(shortfall)
