"""``DynamicSoftMarginLoss``: weight each ``d_pos - d_neg`` by its running CDF."""

from __future__ import annotations

from typing import Any

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, LpDistance
from ..functional import dynamic_soft_margin as F
from ..functional import tuples as T
from ..functional._dtype import upcast
from ._reference_labels import check_ref_labels
from .base_metric_loss_function import BaseMetricLossFunction


def find_hard_negatives(dmat: Tensor) -> tuple[Tensor, Tensor]:
    """``(pos, neg)`` of a square distance matrix whose diagonal pairs match: ``pos = diag(dmat)``
    and ``neg[i]`` the smallest off-diagonal entry of row ``i`` and column ``i``.

    Unlike pytorch-metric-learning's function of the same name, ``dmat`` is left unchanged (PML
    fills its diagonal with ``inf`` in place).
    """
    if dmat.ndim != 2 or dmat.shape[0] != dmat.shape[1]:
        V.fail("find_hard_negatives", "a square `dmat` of shape (N, N)", str(tuple(dmat.shape)))
    return F.hardest_negatives(dmat)


@LOSSES.register
class DynamicSoftMarginLoss(BaseMetricLossFunction):
    """Dynamic soft margin loss (the running-histogram form of pytorch-metric-learning).

    Zhang & Rusinkiewicz, "Learning Local Descriptors With a CDF-Based Dynamic Soft Margin",
    ICCV 2019, https://openaccess.thecvf.com/content_ICCV_2019/papers/Zhang_Learning_Local_Descriptors_With_a_CDF-Based_Dynamic_Soft_Margin_ICCV_2019_paper.pdf.

    Each value ``x = d_pos - d_neg`` updates a soft histogram of ``num_bins`` bins of width
    ``2 |min_val| / num_bins`` from ``min_val`` (momentum ``momentum``; the first batch sets it);
    the loss is ``mean_x CDF(x) * x`` with the CDF of the updated histogram held constant::

        with labels:    every triplet (a, p, n): x = d_ap - d_an (or the miner's triplets)
        without labels: row i of embeddings and of ref_emb match: x_i = d_ii - min(off-diagonal
                        entries of row i and of column i)

    All triplets are walked block by block (never materialised); memory O(N M). The result is
    already reduced.

    State: ``hist_`` -- a registered buffer (in ``state_dict``, moved by ``.to()``), kept in
    float64 for float64 inputs and float32 otherwise. Values outside the histogram's range fall
    into the first / last bin (pytorch-metric-learning fails there with an index error).

    Args:
        min_val: lower end of the histogram (``x`` below it counts in the first bin); not 0.
        num_bins: number of bins (>= 1).
        momentum: weight of the current batch's counts in the running histogram.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (an ``LpDistance`` with ``p=2``
            and ``normalize_embeddings=True``; default ``LpDistance()``),
            ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    requires_labels_or_indices_tuple = False
    recordable = ("num_bins",)
    hist_: Tensor

    def __init__(
        self, min_val: float = -2.0, num_bins: int = 10, momentum: float = 0.01, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        if isinstance(num_bins, bool) or int(num_bins) != num_bins or int(num_bins) < 1:
            V.fail(owner, "`num_bins` to be an int >= 1", repr(num_bins))
        if min_val == 0:
            V.fail(owner, "`min_val` != 0 (the bin width is 2 |min_val| / num_bins)", "0")
        self.min_val = min_val
        self.num_bins = int(num_bins)
        self.delta = 2 * abs(min_val) / num_bins
        self.momentum = momentum
        self.register_buffer("hist_", torch.zeros(self.num_bins))

    def check_distance(self, distance: BaseDistance) -> None:
        ok = isinstance(distance, LpDistance) and distance.p == 2 and distance.normalize_embeddings
        if not ok:
            V.fail(
                type(self).__name__,
                "`distance` to be an LpDistance with p=2 and normalize_embeddings=True",
                repr(distance),
            )

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        owner = type(self).__name__
        if labels is None and indices_tuple is not None:
            V.fail(
                owner,
                "`labels` together with `indices_tuple` (without labels, row i of embeddings "
                "and of ref_emb are the matching pair and no tuple is used)",
                "indices_tuple without labels",
            )
        if labels is None and ref_labels is not None:
            V.fail(owner, "`labels` together with `ref_labels`", "ref_labels without labels")
        work = upcast(embeddings).dtype
        if work != torch.float64:
            work = torch.float32
        hist = self.hist_.to(device=embeddings.device, dtype=work)
        mat = self.distance(embeddings, None if ref_emb is embeddings else ref_emb)
        if labels is None:
            if mat.shape[0] <= 1 and mat.shape[1] <= 1:
                return self.zero_losses()  # a single pair: no negative
            x = F.matched_rows_margins(mat)
            return self._explicit(x, hist)
        if indices_tuple is not None:
            a, p, n = T.convert_to_triplets(indices_tuple, labels, ref_labels, t_per_anchor="all")
            if len(a) == 0:
                return self.zero_losses()
            return self._explicit(mat[a, p] - mat[a, n], hist)
        check_ref_labels(owner, embeddings, labels, ref_emb, ref_labels)
        pos, neg = T.get_matches_and_diffs(labels, ref_labels)
        if not bool(((pos.sum(1) > 0) & (neg.sum(1) > 0)).any()):
            return self.zero_losses()
        counts = F.all_triplets_soft_histogram(
            mat, pos, neg, min_val=self.min_val, delta=self.delta, num_bins=self.num_bins
        )
        cdf = self._update(hist, counts)
        loss = F.all_triplets_cdf_weighted_mean(
            mat, pos, neg, cdf, min_val=self.min_val, delta=self.delta
        )
        return {"loss": {"losses": loss, "indices": None, "reduction_type": "already_reduced"}}

    def _explicit(self, x: Tensor, hist: Tensor) -> LossDict:
        min_val, delta, num_bins = self.min_val, self.delta, self.num_bins
        counts = F.soft_histogram(x, min_val=min_val, delta=delta, num_bins=num_bins)
        cdf = self._update(hist, counts)
        loss = F.cdf_weighted_mean(x, cdf, min_val=min_val, delta=delta, num_bins=num_bins)
        return {"loss": {"losses": loss, "indices": None, "reduction_type": "already_reduced"}}

    def _update(self, hist: Tensor, counts: Tensor) -> Tensor:
        """Store the updated histogram; return its CDF."""
        new = F.update_histogram(hist, counts.to(hist.dtype), momentum=self.momentum)
        self.hist_ = new
        return torch.cumsum(new, 0)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        key = prefix + "hist_"
        saved = state_dict.get(key)
        if saved is None:  # pytorch-metric-learning keeps the histogram out of state_dict
            state_dict = {**state_dict, key: self.hist_}
        elif isinstance(saved, torch.Tensor):  # restore a float64 histogram as float64
            self.hist_ = self.hist_.to(saved.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
