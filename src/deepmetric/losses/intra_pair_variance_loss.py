"""``IntraPairVarianceLoss``: keep each pair set close to its own mean similarity."""

from __future__ import annotations

from typing import Any

from .._registry import LOSSES
from .._types import LossDict, PairIndices, SubLoss, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import pair_set_losses as F
from ..functional import tuples as T
from .generic_pair_loss import GenericPairLoss


@LOSSES.register
class IntraPairVarianceLoss(GenericPairLoss):
    """Intra-pair variance loss over positive and negative pairs.

    Yu & Tao, "Deep Metric Learning with Tuplet Margin Loss", ICCV 2019,
    https://openaccess.thecvf.com/content_ICCV_2019/papers/Yu_Deep_Metric_Learning_With_Tuplet_Margin_Loss_ICCV_2019_paper.pdf
    (eq. 6). With ``mu+`` / ``mu-`` the mean similarity of the positive / negative pairs::

        pos_loss = [(1 - pos_eps) mu+ - s_ap]_+^2        neg_loss = [s_an - (1 + neg_eps) mu-]_+^2

    For a distance (not inverted) the roles flip: ``[d_ap - (1 + pos_eps) mu+]_+^2`` and
    ``[(1 - neg_eps) mu- - d_an]_+^2``. Sub-losses ``"pos_loss"`` (``"pos_pair"``) and
    ``"neg_loss"`` (``"neg_pair"``), each reduced on its own (default mean) and summed.

    Args:
        pos_eps: relative slack below the positive mean.
        neg_eps: relative slack above the negative mean.
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (default ``CosineSimilarity()``;
            any distance), ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    recordable = ("pos_eps", "neg_eps")

    def __init__(self, pos_eps: float = 0.01, neg_eps: float = 0.01, **kwargs: Any) -> None:
        super().__init__(mat_based_loss=False, **kwargs)
        self.pos_eps = pos_eps
        self.neg_eps = neg_eps

    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

    def _sub_loss_names(self) -> list[str]:
        return ["pos_loss", "neg_loss"]

    def _compute_loss(
        self, pos_pairs: Tensor, neg_pairs: Tensor, indices_tuple: PairIndices
    ) -> LossDict:
        inverted = self.distance.is_inverted
        pos_loss: Tensor | int = 0
        neg_loss: Tensor | int = 0
        if len(pos_pairs) > 0:
            pos_loss = F.intra_pair_variance_terms(pos_pairs, eps=self.pos_eps, pull_up=inverted)
        if len(neg_pairs) > 0:
            neg_loss = F.intra_pair_variance_terms(
                neg_pairs, eps=self.neg_eps, pull_up=not inverted
            )
        pos: SubLoss = {
            "losses": pos_loss,
            "indices": T.pos_pairs_from_tuple(indices_tuple),
            "reduction_type": "pos_pair",
        }
        neg: SubLoss = {
            "losses": neg_loss,
            "indices": T.neg_pairs_from_tuple(indices_tuple),
            "reduction_type": "neg_pair",
        }
        return {"pos_loss": pos, "neg_loss": neg}
