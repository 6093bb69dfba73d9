"""Pair losses measured against a statistic of the whole positive (or negative) pair set.

* Intra-pair variance -- Yu & Tao, "Deep Metric Learning with Tuplet Margin Loss", ICCV 2019,
  https://openaccess.thecvf.com/content_ICCV_2019/papers/Yu_Deep_Metric_Learning_With_Tuplet_Margin_Loss_ICCV_2019_paper.pdf
  (eq. 6): with ``mu`` the mean similarity of a pair set, a positive pair costs
  ``[(1 - eps+) mu+ - s]_+^2`` and a negative pair ``[s - (1 + eps-) mu-]_+^2``, so each set
  is pulled towards its own mean. For distances the two forms swap (``[d - (1 + eps+) mu+]_+^2``
  for positives, ``[(1 - eps-) mu- - d]_+^2`` for negatives).
* Threshold-consistent margin -- Zhang et al., "Threshold-Consistent Margin Loss for Open-World
  Deep Metric Learning", ICLR 2024, https://arxiv.org/abs/2307.04047 (eq. 5)::

      TCM = l+ * mean_{pos, s <= m+}(m+ - s) + l- * mean_{neg, s >= m-}(s - m-)

  where an empty set contributes 0.
"""

from __future__ import annotations

import torch

from .._types import Tensor

__all__ = ["intra_pair_variance_terms", "threshold_consistent_margin"]


def intra_pair_variance_terms(values: Tensor, *, eps: float, pull_up: bool) -> Tensor:
    """Squared one-sided deviation of each pair value from the set mean.

    Args:
        values: ``Tensor[K]`` one pair set (not empty).
        eps: relative slack around the mean.
        pull_up: the pairs should not fall below the mean (positive similarities, negative
            distances): ``[(1 - eps) mean - v]_+^2``; else ``[v - (1 + eps) mean]_+^2``.

    Returns:
        ``Tensor[K]``; the mean is not detached (its gradient is part of the loss).
    """
    mean = values.mean()
    gap = (1 - eps) * mean - values if pull_up else values - (1 + eps) * mean
    return torch.relu(gap) ** 2


def threshold_consistent_margin(
    pos_sims: Tensor,
    neg_sims: Tensor,
    *,
    lambda_plus: float,
    lambda_minus: float,
    margin_plus: float,
    margin_minus: float,
) -> Tensor | None:
    """The TCM value from the similarities of the positive and negative pairs.

    Args:
        pos_sims: ``Tensor[P]`` cosine similarities of positive pairs.
        neg_sims: ``Tensor[Q]`` cosine similarities of negative pairs.

    Returns:
        0-dim tensor, or ``None`` when neither side has a violating pair (the loss is then the
        plain zero of the caller's convention).
    """
    total: Tensor | None = None
    low = pos_sims <= margin_plus
    if bool(low.any()):
        gap = torch.where(low, margin_plus - pos_sims, 0).sum() / low.sum()
        total = lambda_plus * gap
    high = neg_sims >= margin_minus
    if bool(high.any()):
        gap = torch.where(high, neg_sims - margin_minus, 0).sum() / high.sum()
        total = lambda_minus * gap if total is None else total + lambda_minus * gap
    return total
