"""``BaseReducer``: turns one sub-loss (unreduced terms + what they index) into a scalar."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from .._types import REDUCTION_TYPES, LossDict, ReductionType, SubLoss, Tensor
from ..functional.reductions import IntervalMean
from ..records import ModuleWithRecords

#: ``count(low, high)`` -> number of loss terms strictly inside (low, high); for kernels that
#: reduce on the fly and never build the terms (see :meth:`BaseReducer.interval_form`).
IntervalCounter = Callable[[float | None, float | None], Tensor]


def zero_loss(embeddings: Tensor) -> Tensor:
    """A 0 attached to the graph, in the embeddings' dtype, so ``.backward()`` always works."""
    return torch.sum(embeddings * 0)


def is_zero_loss(losses: Any) -> bool:
    """The loss-dict convention for "nothing to reduce" is a plain number 0, not a tensor."""
    return not isinstance(losses, torch.Tensor) and losses == 0


class BaseReducer(ModuleWithRecords):
    """Reduces a single-entry loss dict to a 0-dim tensor.

    A custom reducer implements :meth:`element_reduction`; pair and triplet reductions default to
    it with the anchor indices, and ``already_reduced`` terms pass through.
    """

    stats: ClassVar[tuple[str, ...]] = ("losses_size",)

    def __init__(self, collect_stats: bool | None = None) -> None:
        super().__init__(collect_stats=collect_stats)

    def forward(self, loss_dict: LossDict, embeddings: Tensor, labels: Tensor | None) -> Tensor:
        self.reset_stats()
        if len(loss_dict) != 1:
            raise ValueError(
                f"{type(self).__name__}: expected a loss dict with exactly one entry, got "
                f"{sorted(loss_dict)}. Use MultipleReducers for several sub-losses."
            )
        (sub_loss,) = loss_dict.values()
        if "interval_counter" in sub_loss:
            # A kernel already applied this reducer's interval_form(); only the stats remain.
            self.record_interval_stats(sub_loss["interval_counter"])
            return sub_loss["losses"]  # type: ignore[return-value]
        losses, indices, reduction_type, extra = self.unpack_loss_info(sub_loss)
        return self.reduce_the_loss(losses, indices, reduction_type, extra, embeddings, labels)

    def reduce_the_loss(
        self,
        losses: Any,
        loss_indices: Any,
        reduction_type: ReductionType,
        kwargs: dict[str, Any],
        embeddings: Tensor,
        labels: Tensor | None,
    ) -> Tensor:
        self.set_losses_size_stat(losses)
        if is_zero_loss(losses):
            return zero_loss(embeddings)
        reduce = self.get_reduction_func(reduction_type)  # validates reduction_type first
        self.assert_sizes(losses, loss_indices, reduction_type)
        return reduce(losses, loss_indices, embeddings, labels, **kwargs)

    def get_reduction_func(self, reduction_type: ReductionType) -> Callable[..., Tensor]:
        if reduction_type not in REDUCTION_TYPES:
            raise ValueError(
                f"{type(self).__name__}: expected reduction_type in {list(REDUCTION_TYPES)}, "
                f"got {reduction_type!r}."
            )
        return getattr(self, f"{reduction_type}_reduction")

    def already_reduced_reduction(
        self, losses: Tensor, loss_indices: Any, embeddings: Tensor, labels: Tensor | None
    ) -> Tensor:
        return losses

    def element_reduction(
        self,
        losses: Tensor,
        loss_indices: Tensor,
        embeddings: Tensor,
        labels: Tensor | None,
        **kwargs: Any,
    ) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement element_reduction.")

    def pos_pair_reduction(
        self,
        losses: Tensor,
        loss_indices: tuple[Tensor, ...],
        embeddings: Tensor,
        labels: Tensor | None,
        **kwargs: Any,
    ) -> Tensor:
        return self.element_reduction(losses, loss_indices[0], embeddings, labels, **kwargs)

    def neg_pair_reduction(
        self,
        losses: Tensor,
        loss_indices: tuple[Tensor, ...],
        embeddings: Tensor,
        labels: Tensor | None,
        **kwargs: Any,
    ) -> Tensor:
        return self.element_reduction(losses, loss_indices[0], embeddings, labels, **kwargs)

    def triplet_reduction(
        self,
        losses: Tensor,
        loss_indices: tuple[Tensor, ...],
        embeddings: Tensor,
        labels: Tensor | None,
        **kwargs: Any,
    ) -> Tensor:
        return self.element_reduction(losses, loss_indices[0], embeddings, labels, **kwargs)

    def interval_form(self) -> IntervalMean | None:
        """This reducer as "mean/sum of the terms inside (low, high)", or None if it is not one.

        Kernels that can count and sum terms inside an interval reduce without building them.
        Subclasses that override a ``*_reduction`` must override this too (None is always safe).
        """
        return None

    def record_interval_stats(self, count: IntervalCounter) -> None:
        """Set the stats :meth:`reduce_the_loss` would have set, from a term counter."""
        if self.collect_stats:
            self.record_stat("losses_size", count(None, None))

    def unpack_loss_info(self, sub_loss: SubLoss) -> tuple[Any, Any, ReductionType, dict[str, Any]]:
        """``(losses, indices, reduction_type, extra keyword arguments for the reduction)``."""
        return sub_loss["losses"], sub_loss["indices"], sub_loss["reduction_type"], {}

    def set_losses_size_stat(self, losses: Any) -> None:
        if self.collect_stats:
            size = len(losses) if isinstance(losses, torch.Tensor) and losses.ndim > 0 else 1
            self.record_stat("losses_size", size)

    def assert_sizes(self, losses: Any, loss_indices: Any, reduction_type: ReductionType) -> None:
        """Check that ``losses`` and ``loss_indices`` agree with ``reduction_type``."""
        owner = type(self).__name__
        if reduction_type == "already_reduced":
            if isinstance(losses, torch.Tensor) and losses.numel() != 1:
                raise ValueError(
                    f"{owner}: expected an already_reduced loss with one element, "
                    f"got shape {tuple(losses.shape)}."
                )
            return
        if not isinstance(losses, torch.Tensor):
            raise TypeError(
                f"{owner}: expected `losses` to be a tensor, got {type(losses).__name__}."
            )
        expected_len = {"element": 1, "pos_pair": 2, "neg_pair": 2, "triplet": 3}[reduction_type]
        if reduction_type == "element":
            indices: tuple[Any, ...] = (loss_indices,)
        elif isinstance(loss_indices, (tuple, list)):
            indices = tuple(loss_indices)
        else:
            raise TypeError(
                f"{owner}: expected a tuple of {expected_len} index tensors for "
                f"{reduction_type!r} losses, got {type(loss_indices).__name__}."
            )
        if not all(isinstance(i, torch.Tensor) for i in indices):
            raise TypeError(
                f"{owner}: expected index tensor(s) for {reduction_type!r} losses, "
                f"got {[type(i).__name__ for i in indices]}."
            )
        if len(indices) != expected_len or any(len(i) != len(losses) for i in indices):
            raise ValueError(
                f"{owner}: expected {expected_len} index tensor(s) of length {len(losses)} for "
                f"{reduction_type!r} losses, got lengths {[len(i) for i in indices]}."
            )
