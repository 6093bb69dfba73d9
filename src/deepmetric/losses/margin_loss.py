"""``MarginLoss``: a learnable boundary ``beta`` between positive and negative distances."""

from __future__ import annotations

from typing import Any, Literal, cast

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, PairMasks, SubLoss, Tensor
from ..functional import margin_losses as F
from ..functional import triplet_losses as TL
from ..functional import tuples as T
from ..functional._dtype import upcast
from ..functional.reductions import IntervalMean
from ..reducers import BaseReducer, DivisorReducer
from ._reference_labels import check_ref_labels
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class MarginLoss(BaseMetricLossFunction):
    """Margin loss over triplets ``(a, p, n)``.

    Wu et al., "Sampling Matters in Deep Embedding Learning", ICCV 2017,
    https://arxiv.org/abs/1706.07567 (eq. 3)::

        pos = [d_ap - beta + margin]_+        neg = [beta - d_an + margin]_+

    (``[beta - s_ap + margin]_+`` and ``[s_an - beta + margin]_+`` for similarities). Sub-losses:
    ``"margin_loss"`` (``pos + neg`` per triplet, with ``divisor = #(pos > 0) + #(neg > 0)``) and
    ``"beta_reg_loss"`` (``nu * beta`` when ``learn_beta``; per triplet with the same divisor when
    ``beta`` is per class). The default :class:`DivisorReducer` returns ``sum / divisor``.

    Without a miner and with ``triplets_per_anchor="all"`` no triplet is built: the sums and the
    divisor are exact closed forms over the ``N x M`` pairs (each ``(a, p)`` pair appears once per
    negative of ``a``) with the default reducer, and the interval kernel of
    :mod:`~deepmetric.functional.triplet_losses` serves Mean/Sum/AvgNonZero/Threshold reducers;
    memory stays O(N M). Other reducers receive explicit triplets. The same holds for
    :class:`~deepmetric._types.PairMasks` (CrossBatchMemory's all-pairs form).

    Args:
        margin: half-width of the band around ``beta``.
        nu: weight of the ``beta`` regulariser (only with ``learn_beta``).
        beta: initial boundary.
        triplets_per_anchor: ``"all"`` or the number of random triplets per anchor.
        learn_beta: make ``beta`` an ``nn.Parameter``.
        num_classes: one ``beta`` per class (indexed by the anchor's label; labels then are
            required).
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (default ``LpDistance()``; any
            distance), ``embedding_regularizer``, ``embedding_reg_weight``.
    """

    supports_pair_masks = True
    recordable = ("margin", "nu", "beta")
    beta: Tensor

    def __init__(
        self,
        margin: float = 0.2,
        nu: float = 0,
        beta: float = 1.2,
        triplets_per_anchor: int | Literal["all"] = "all",
        learn_beta: bool = False,
        num_classes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        if triplets_per_anchor != "all" and not (
            isinstance(triplets_per_anchor, int)
            and not isinstance(triplets_per_anchor, bool)
            and triplets_per_anchor > 0
        ):
            V.fail(
                owner,
                "`triplets_per_anchor` to be 'all' or a positive int",
                repr(triplets_per_anchor),
            )
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0
        ):
            V.fail(owner, "`num_classes` to be None or an int >= 0", repr(num_classes))
        self.margin = margin
        self.nu = nu
        self.learn_beta = learn_beta
        self.triplets_per_anchor = triplets_per_anchor
        self.num_classes = num_classes
        self.initialize_beta(beta, num_classes)

    def initialize_beta(self, beta: float, num_classes: int | None) -> None:
        """``beta`` as ``Tensor[1]`` or ``Tensor[num_classes]`` (``num_classes`` 0/None: one);
        an ``nn.Parameter`` with ``learn_beta``, else a non-persistent buffer (moves with
        ``.to()``, absent from ``state_dict`` as in PML)."""
        value = torch.tensor([float(beta)])
        if num_classes:
            value = torch.ones(num_classes) * value
        self.__dict__.pop("beta", None)  # the recordable placeholder
        if self.learn_beta:
            self.beta = torch.nn.Parameter(value)
        else:
            self.register_buffer("beta", value, persistent=False)

    def get_default_reducer(self) -> BaseReducer:
        return DivisorReducer()

    def _sub_loss_names(self) -> list[str]:
        return ["margin_loss", "beta_reg_loss"]

    # ------------------------------------------------------------------------------ compute
    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        owner = type(self).__name__
        per_class = len(self.beta) > 1
        if per_class:
            self._check_class_labels(owner, labels)
        if indices_tuple is None:
            check_ref_labels(owner, embeddings, labels, ref_emb, ref_labels)
        masks = indices_tuple if isinstance(indices_tuple, PairMasks) else None
        if masks is None and indices_tuple is None and self.triplets_per_anchor == "all":
            # validation guarantees labels whenever there is no indices_tuple
            masks = PairMasks(*T.get_matches_and_diffs(cast(Tensor, labels), ref_labels))
        if masks is not None:  # every triplet of the masks
            fast = self._all_triplets(embeddings, labels, ref_emb, masks, per_class)
            if fast is not None:
                return fast
            triplets = T.triplets_from_masks(masks.pos, masks.neg)
        else:
            triplets = T.convert_to_triplets(
                indices_tuple, labels, ref_labels, t_per_anchor=self.triplets_per_anchor
            )
        a, p, n = triplets
        if len(a) == 0:
            return self.zero_losses()
        beta = self._beta_like(embeddings, cast(Tensor, labels)[a] if per_class else None)
        mat = self._distance_matrix(embeddings, ref_emb)
        pos_loss, neg_loss = F.margin_triplet_terms(
            mat[a, p], mat[a, n], beta, margin=self.margin, is_inverted=self.distance.is_inverted
        )
        divisor = (pos_loss > 0).sum() + (neg_loss > 0).sum()
        margin_loss: SubLoss = {
            "losses": pos_loss + neg_loss,
            "indices": triplets,
            "reduction_type": "triplet",
            "divisor": divisor,
        }
        return {"margin_loss": margin_loss, "beta_reg_loss": self._beta_reg(beta, a, divisor)}

    def _all_triplets(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        ref_emb: Tensor,
        masks: PairMasks,
        per_class: bool,
    ) -> LossDict | None:
        """Every triplet without building them; None when the reducers need explicit terms."""
        margin_reducer = self.reducer_for("margin_loss")
        if margin_reducer is None:
            return None
        per_triplet_reg = self.learn_beta and per_class
        divisor_form = type(margin_reducer) is DivisorReducer and (
            not per_triplet_reg or type(self.reducer_for("beta_reg_loss")) is DivisorReducer
        )
        spec = None if divisor_form or per_triplet_reg else margin_reducer.interval_form()
        if not divisor_form and spec is None:
            return None
        pos, neg = masks.pos, masks.neg
        if not bool(((pos.sum(1) > 0) & (neg.sum(1) > 0)).any()):
            return self.zero_losses()
        beta = self._beta_like(embeddings, cast(Tensor, labels)[:, None] if per_class else None)
        mat = self._distance_matrix(embeddings, ref_emb)
        margin, inverted = self.margin, self.distance.is_inverted
        if divisor_form:
            per_anchor, divisor, counts = F.margin_all_triplets_sums(
                mat, pos, neg, beta, margin=margin, is_inverted=inverted
            )
            anchors = torch.arange(len(per_anchor), device=per_anchor.device)
            margin_loss: SubLoss = {
                "losses": per_anchor,
                "indices": anchors,
                "reduction_type": "element",
                "divisor": divisor,
            }
            if per_triplet_reg:
                reg: SubLoss = {
                    "losses": upcast(beta[:, 0]) * self.nu * counts.to(per_anchor.dtype),
                    "indices": anchors,
                    "reduction_type": "element",
                    "divisor": divisor,
                }
            else:
                reg = self._beta_reg(beta, anchors, divisor)
            return {"margin_loss": margin_loss, "beta_reg_loss": reg}
        # interval reducers: the triplet kernel on x = pos on positives, -neg on negatives
        # (relu(x_ap - x_an) = pos_ap + neg_an, both >= 0)
        spec = cast(IntervalMean, spec)
        pos_terms, neg_terms = F.margin_pair_matrix(
            mat, pos, neg, beta, margin=margin, is_inverted=inverted
        )
        x = pos_terms - neg_terms  # [N, M]
        value = TL.all_triplets_margin_loss(
            x, pos, neg, margin=0.0, is_inverted=False, reduction=spec
        )
        detached = x.detach()

        def count(low: float | None, high: float | None) -> Tensor:
            return TL.count_triplets_in(
                detached, pos, neg, margin=0.0, is_inverted=False, low=low, high=high
            )

        interval: Any = {
            "losses": value,
            "indices": None,
            "reduction_type": "already_reduced",
            "interval_counter": count,
        }
        return {"margin_loss": interval, "beta_reg_loss": self._beta_reg(beta, None, None)}

    # ------------------------------------------------------------------------------ helpers
    def _check_class_labels(self, owner: str, labels: Tensor | None) -> None:
        if labels is None:
            V.fail(owner, "`labels` with a per-class beta (num_classes is set)", "None")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(self.beta)):
            V.fail(
                owner,
                f"labels in [0, num_classes={len(self.beta)}) to index the per-class beta",
                f"labels in [{int(labels.min())}, {int(labels.max())}]",
            )

    def _beta_like(self, embeddings: Tensor, class_index: Tensor | None) -> Tensor:
        """``beta`` on the embeddings' device and dtype (differentiable), per class if indexed."""
        beta = self.beta.to(device=embeddings.device, dtype=embeddings.dtype)
        return beta if class_index is None else beta[class_index.to(embeddings.device)]

    def _beta_reg(self, beta: Tensor, anchors: Tensor | None, divisor: Tensor | None) -> SubLoss:
        if not self.learn_beta:
            return self.zero_loss()
        if len(self.beta) == 1:
            return {"losses": beta * self.nu, "indices": None, "reduction_type": "already_reduced"}
        # per-class beta with explicit triplets: one term per triplet, by its anchor
        return {
            "losses": beta * self.nu,
            "indices": anchors,
            "reduction_type": "element",
            "divisor": cast(Tensor, divisor),
        }

    def _distance_matrix(self, embeddings: Tensor, ref_emb: Tensor) -> Tensor:
        return self.distance(embeddings, None if ref_emb is embeddings else ref_emb)
