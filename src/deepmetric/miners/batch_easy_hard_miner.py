"""``BatchEasyHardMiner``: one positive and one negative per anchor, each picked by strategy."""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import torch

from .. import _validation as V
from .._registry import MINERS
from .._types import PairIndices, Tensor
from ..functional import mining as F
from ..functional import tuples as T
from .base_tuple_miner import BaseTupleMiner


@MINERS.register
class BatchEasyHardMiner(BaseTupleMiner):
    """Per anchor, a positive and a negative chosen by ``pos_strategy`` / ``neg_strategy``.

    Xuan et al., "Improved Embeddings with Easy Positive Triplet Mining", WACV 2020,
    https://arxiv.org/abs/1904.04370 (easy positive, semi-hard negative: the defaults).

    For distances (mirrored for similarities):

    * positives: ``"hard"`` the farthest, ``"easy"`` the nearest, ``"semihard"`` the farthest
      that is still strictly nearer than the anchor's chosen negative, ``"all"`` every one;
    * negatives: ``"hard"`` the nearest, ``"easy"`` the farthest, ``"semihard"`` the nearest that
      is strictly farther than the anchor's chosen positive, ``"all"`` every one.

    Only pairs whose value lies in ``allowed_pos_range`` / ``allowed_neg_range`` (``(low, high)``,
    ends included) are candidates. Without ``"all"`` the output is ``(a, p, a, n)`` over the anchors
    that have both; with ``"all"`` on one side, that side lists every pair of its kind.

    Args:
        pos_strategy, neg_strategy: ``"hard"``, ``"semihard"``, ``"easy"`` or ``"all"``; not both
            ``"semihard"``, and ``"semihard"`` not with ``"all"``.
        allowed_pos_range, allowed_neg_range: ``(low, high)`` or None (no limit).
        **kwargs: ``distance`` (default ``LpDistance()``), ``collect_stats``.

    Stats: ``easiest_triplet``, ``hardest_triplet`` (of ``d_ap - d_an``, without ``"all"``),
    ``easiest_pos_pair``, ``hardest_pos_pair``, ``easiest_neg_pair``, ``hardest_neg_pair``.
    """

    HARD: ClassVar[str] = "hard"
    SEMIHARD: ClassVar[str] = "semihard"
    EASY: ClassVar[str] = "easy"
    ALL: ClassVar[str] = "all"
    all_batch_mining_strategies: ClassVar[list[str]] = [HARD, SEMIHARD, EASY, ALL]

    stats = (
        "easiest_triplet",
        "hardest_triplet",
        "easiest_pos_pair",
        "hardest_pos_pair",
        "easiest_neg_pair",
        "hardest_neg_pair",
    )

    def __init__(
        self,
        pos_strategy: str = EASY,
        neg_strategy: str = SEMIHARD,
        allowed_pos_range: tuple[float, float] | None = None,
        allowed_neg_range: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        V.check_choice(owner, "pos_strategy", pos_strategy, self.all_batch_mining_strategies)
        V.check_choice(owner, "neg_strategy", neg_strategy, self.all_batch_mining_strategies)
        if pos_strategy == neg_strategy == self.SEMIHARD:
            V.fail(owner, "at most one of pos_strategy/neg_strategy to be 'semihard'", "both")
        if {pos_strategy, neg_strategy} == {self.SEMIHARD, self.ALL}:
            V.fail(
                owner,
                "'semihard' not combined with 'all' (a semihard pick needs one pick on the other "
                "side)",
                f"pos_strategy={pos_strategy!r}, neg_strategy={neg_strategy!r}",
            )
        self.pos_strategy = pos_strategy
        self.neg_strategy = neg_strategy
        self.allowed_pos_range = _check_range(owner, "allowed_pos_range", allowed_pos_range)
        self.allowed_neg_range = _check_range(owner, "allowed_neg_range", allowed_neg_range)

    def mine(
        self, embeddings: Tensor, labels: Tensor, ref_emb: Tensor, ref_labels: Tensor
    ) -> PairIndices:
        mat = self.distance_matrix(embeddings, ref_emb)
        pos, neg = T.get_matches_and_diffs(labels, ref_labels)
        pairs, pos_values, neg_values = F.batch_easy_hard_select(
            mat,
            pos,
            neg,
            pos_strategy=self.pos_strategy,
            neg_strategy=self.neg_strategy,
            is_inverted=self.distance.is_inverted,
            allowed_pos_range=self.allowed_pos_range,
            allowed_neg_range=self.allowed_neg_range,
        )
        if self.collect_stats:
            self.set_stats(pos_values, neg_values)
        return pairs

    def set_stats(self, positive_dists: Tensor, negative_dists: Tensor) -> None:
        """Record the extreme selected values (PML's ``set_stats``)."""
        inv = self.distance.is_inverted
        nearest, farthest = (torch.max, torch.min) if inv else (torch.min, torch.max)
        has_pos, has_neg = len(positive_dists) > 0, len(negative_dists) > 0
        if has_pos and has_neg and self.ALL not in (self.pos_strategy, self.neg_strategy):
            gap = positive_dists - negative_dists
            self.record_stat("easiest_triplet", nearest(gap))
            self.record_stat("hardest_triplet", farthest(gap))
        if has_pos:
            self.record_stat("easiest_pos_pair", nearest(positive_dists))
            self.record_stat("hardest_pos_pair", farthest(positive_dists))
        if has_neg:
            self.record_stat("easiest_neg_pair", farthest(negative_dists))
            self.record_stat("hardest_neg_pair", nearest(negative_dists))


def _check_range(owner: str, name: str, value: Any) -> Any:
    """None, or a ``(low, high)`` pair of real numbers with ``low <= high``."""
    if value is None:
        return None
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    ):
        expected = f"`{name}` to be None or a (low, high) pair of numbers"
        V.fail(owner, expected, repr(value), exc=TypeError)
    if not float(value[0]) <= float(value[1]):
        V.fail(owner, f"`{name}` with low <= high", repr(value))
    return value  # kept as given, like PML
