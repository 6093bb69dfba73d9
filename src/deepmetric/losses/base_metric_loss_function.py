"""``BaseMetricLossFunction``: the template every loss follows.

``forward`` validates the inputs, calls ``compute_loss`` (which returns unreduced terms in a loss
dict), adds regularizer terms and hands the dict to the reducer.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch

from .. import _validation as V
from .._types import IndicesTuple, LossDict, PairMasks, SubLoss, Tensor
from ..distances import BaseDistance, LpDistance, attach_distance
from ..records import ModuleWithRecords
from ..reducers import BaseReducer, DoNothingReducer, MeanReducer, MultipleReducers
from .mixins import EmbeddingRegularizerMixin


class BaseMetricLossFunction(EmbeddingRegularizerMixin, ModuleWithRecords):
    """Base of all metric losses: ``loss(embeddings, labels=None, indices_tuple=None,
    ref_emb=None, ref_labels=None) -> Tensor`` (0-dim; the loss dict with ``DoNothingReducer``).

    Subclasses implement :meth:`compute_loss` and declare what they accept with the class flags.

    Args:
        collect_stats: record stats (``None`` reads :mod:`deepmetric.config`).
        reducer: how terms become a scalar (default :meth:`get_default_reducer`); deep-copied.
        distance: a distance instance, class or name (default :meth:`get_default_distance`).
        embedding_regularizer: a regularizer applied to the embeddings, added to the loss.
        embedding_reg_weight: the weight of that term.
    """

    distance: BaseDistance
    reducer: BaseReducer

    #: Labels are needed even when an ``indices_tuple`` is given.
    requires_labels: ClassVar[bool] = False
    #: With neither labels nor ``indices_tuple`` the loss cannot tell pairs apart.
    requires_labels_or_indices_tuple: ClassVar[bool] = True
    supports_labels: ClassVar[bool] = True
    supports_indices_tuple: ClassVar[bool] = True
    supports_ref_emb: ClassVar[bool] = True
    #: ``compute_loss`` also accepts ``indices_tuple`` as :class:`~deepmetric._types.PairMasks`
    #: (all pairs as boolean masks; CrossBatchMemory passes them to skip building index tuples).
    supports_pair_masks: ClassVar[bool] = False

    def __init__(
        self,
        *,
        collect_stats: bool | None = None,
        reducer: BaseReducer | None = None,
        distance: BaseDistance | type | str | None = None,
        embedding_regularizer: torch.nn.Module | None = None,
        embedding_reg_weight: float = 1,
    ) -> None:
        super().__init__(collect_stats=collect_stats)
        attach_distance(self, distance)
        self.embedding_regularizer = embedding_regularizer
        self.embedding_reg_weight = embedding_reg_weight
        if embedding_regularizer is not None:
            self.add_to_recordable_attributes(name="embedding_reg_weight")
        self.set_reducer(reducer)

    # ----------------------------------------------------------------- extension points
    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        raise NotImplementedError

    def get_default_reducer(self) -> BaseReducer:
        return MeanReducer()

    def get_default_distance(self) -> BaseDistance:
        return LpDistance(p=2)

    def check_distance(self, distance: BaseDistance) -> None:
        """Raise if this loss cannot work with ``distance`` (default: any distance)."""

    def _sub_loss_names(self) -> list[str]:
        return ["loss"]

    # ----------------------------------------------------------------- forward template
    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor | None = None,
        indices_tuple: IndicesTuple | None = None,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Any:
        self.reset_stats()
        labels, ref_emb, ref_labels = self._validate(
            embeddings, labels, indices_tuple, ref_emb, ref_labels
        )
        loss_dict = self.compute_loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)
        self.add_embedding_regularization_to_loss_dict(loss_dict, embeddings)
        return self.reducer(loss_dict, embeddings, labels)

    def _validate(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor | None,
        ref_labels: Tensor | None,
    ) -> tuple[Tensor | None, Tensor, Tensor | None]:
        """Check the inputs; return labels on the embeddings' device and the reference set
        (the very same objects when no reference was given: identity marks self-pairs)."""
        owner = type(self).__name__
        V.check_embeddings(owner, embeddings)
        n = embeddings.shape[0]
        if labels is not None:
            V.check_labels(owner, labels, n)
            labels = labels.to(embeddings.device)
        self._check_capabilities(owner, embeddings, labels, indices_tuple, ref_emb, ref_labels)
        if ref_emb is None:
            if ref_labels is not None:
                V.fail(owner, "`ref_labels` only together with `ref_emb`", "ref_labels alone")
            ref_emb, ref_labels = embeddings, labels
        else:
            V.check_embeddings(owner, ref_emb, "ref_emb")
            V.check_same_dim(owner, embeddings, ref_emb)
            if ref_labels is not None:
                V.check_labels(owner, ref_labels, ref_emb.shape[0], "ref_labels", of="M")
                ref_labels = ref_labels.to(ref_emb.device)
        if indices_tuple is not None:
            V.check_indices_tuple(owner, indices_tuple, n, ref_emb.shape[0])
        return labels, ref_emb, ref_labels

    def _check_capabilities(
        self,
        owner: str,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor | None,
        ref_labels: Tensor | None,
    ) -> None:
        if self.requires_labels:
            V.labels_required(labels, owner=owner)
        if self.requires_labels_or_indices_tuple:
            V.labels_or_indices_tuple_required(labels, indices_tuple, owner=owner)
        if not self.supports_labels:
            V.labels_not_supported(labels, ref_labels, owner=owner)
        if not self.supports_indices_tuple:
            V.indices_tuple_not_supported(indices_tuple, owner=owner)
        if isinstance(indices_tuple, PairMasks) and not self.supports_pair_masks:
            expected = "an indices_tuple (a, p, n) or (a1, p, a2, n) (PairMasks not supported here)"
            V.fail(owner, expected, "PairMasks", exc=TypeError)
        # PML accepts the query set passed again explicitly as the reference (same objects)
        separate_ref = (ref_emb is not None and ref_emb is not embeddings) or (
            ref_labels is not None and ref_labels is not labels
        )
        if not self.supports_ref_emb and separate_ref:
            V.fail(owner, "no `ref_emb`/`ref_labels` (not supported here)", "a reference set")

    # ----------------------------------------------------------------- loss dict helpers
    def zero_loss(self) -> SubLoss:
        return {"losses": 0, "indices": None, "reduction_type": "already_reduced"}

    def zero_losses(self) -> LossDict:
        return {name: self.zero_loss() for name in self.sub_loss_names()}

    def sub_loss_names(self) -> list[str]:
        return self._sub_loss_names() + self.all_regularization_loss_names()

    def all_regularization_loss_names(self) -> list[str]:
        names = []
        if getattr(self, "weight_regularizer", None) is not None:
            names.append("weight_reg_loss")
        if getattr(self, "embedding_regularizer", None) is not None:
            names.append("embedding_reg_loss")
        return names

    # ----------------------------------------------------------------- reducer
    def set_reducer(self, reducer: BaseReducer | None) -> None:
        """Store the reducer as PML does: ``MultipleReducers``/``DoNothingReducer`` as given,
        otherwise a deep copy, wrapped in ``MultipleReducers`` when there are several sub-losses."""
        if reducer is not None and not isinstance(reducer, BaseReducer):
            raise TypeError(
                f"{type(self).__name__}: expected `reducer` to be a BaseReducer, "
                f"got {type(reducer).__name__}."
            )
        if isinstance(reducer, (MultipleReducers, DoNothingReducer)):
            self.reducer = reducer
            return
        names = self.sub_loss_names()

        def make() -> BaseReducer:
            return self.get_default_reducer() if reducer is None else copy.deepcopy(reducer)

        self.reducer = make() if len(names) == 1 else MultipleReducers({n: make() for n in names})

    def reducer_for(self, sub_loss_name: str) -> BaseReducer | None:
        """The reducer that will reduce ``sub_loss_name`` (None with ``DoNothingReducer``)."""
        if isinstance(self.reducer, DoNothingReducer):
            return None
        if isinstance(self.reducer, MultipleReducers):
            return self.reducer._reducer_for(sub_loss_name)
        return self.reducer

    # ----------------------------------------------------------------- learnable parameters
    def trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """``[(name, parameter)]`` that need an optimizer: every parameter with ``requires_grad``,
        including those of the distance and the regularizers (``[("W", ...)]`` for ArcFace)."""
        return [(name, p) for name, p in self.named_parameters() if p.requires_grad]

    def has_trainable_parameters(self) -> bool:
        """Whether the loss learns parameters (class vectors, proxies) that must be given to an
        optimizer; if they are not, they never train."""
        return any(p.requires_grad for p in self.parameters())
