"""Two-stream evaluation: dataset items are ``(anchor, posneg, label)``; anchors are the queries
and the posnegs the references."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .._types import Tensor
from .._validation import fail
from .global_embedding_space import GlobalEmbeddingSpaceTester


class GlobalTwoStreamEmbeddingSpaceTester(GlobalEmbeddingSpaceTester):
    """Embeds both streams of ``(anchor, posneg, label)`` items; each split is evaluated against
    itself only, with the anchor embeddings as queries and the posneg embeddings as references
    (``ref_includes_query`` is False). The stored embeddings of a split are
    ``cat([anchors, posnegs])`` with the labels repeated.

    Constructor arguments: see :class:`BaseTester`.
    """

    def _split_triple(self, batch: Any) -> tuple[Any, Any, Any]:
        got = self.data_and_label_getter(batch)
        if not isinstance(got, (list, tuple)) or len(got) != 3:
            fail(
                type(self).__name__,
                "each batch (after `data_and_label_getter`) to be (anchors, posnegs, labels)",
                f"{type(got).__name__}"
                + (f" of length {len(got)}" if isinstance(got, (list, tuple)) else ""),
            )
        return got[0], got[1], got[2]

    def compute_all_embeddings(  # type: ignore[override]
        self, dataloader: Any, trunk_model: Callable[..., Any], embedder_model: Callable[..., Any]
    ) -> tuple[Tensor, Tensor, Tensor]:
        anchors, posnegs, labels = [], [], []
        with torch.no_grad():
            for batch in dataloader:
                anchor, posneg, label = self._split_triple(batch)
                anchors.append(self.get_embeddings_for_eval(trunk_model, embedder_model, anchor))
                posnegs.append(self.get_embeddings_for_eval(trunk_model, embedder_model, posneg))
                labels.append(self._labels_2d(label).to(self.data_device))
        if not anchors:
            fail(type(self).__name__, "a non-empty dataset", "a dataset with 0 items")
        return torch.cat(anchors), torch.cat(posnegs), torch.cat(labels)

    def get_all_embeddings(  # type: ignore[override]
        self,
        dataset: Any,
        trunk_model: Callable[..., Any],
        embedder_model: Callable[..., Any] | None = None,
        collate_fn: Callable[..., Any] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(cat([anchor_emb, posneg_emb]) (2N, D), cat([labels, labels]) (2N, levels))``, CPU
        float32 tensors (sharded under ``torch.distributed``: on rank 0; ``(None, None)`` on the
        other ranks)."""
        if embedder_model is None:
            embedder_model = torch.nn.Identity()
        dataset, trunk_model, embedder_model = self.local_part(dataset, trunk_model, embedder_model)
        loader = self.get_eval_dataloader(dataset, collate_fn)
        gathered = self.gather_embeddings(
            *self.compute_all_embeddings(loader, trunk_model, embedder_model)
        )
        if gathered is None:
            return None, None  # type: ignore[return-value]  # not rank 0: nothing to evaluate
        anchors, posnegs, labels = gathered
        anchors = self.maybe_normalize(anchors).float().cpu()
        posnegs = self.maybe_normalize(posnegs).float().cpu()
        labels = labels.cpu()
        return torch.cat([anchors, posnegs]), torch.cat([labels, labels])

    def set_reference_and_query(
        self,
        embeddings_and_labels: Mapping[str, Any],
        query_split_name: str,
        reference_split_names: Sequence[str],
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if list(reference_split_names) != [query_split_name]:
            fail(
                type(self).__name__,
                f"split {query_split_name!r} evaluated against itself only "
                f"(reference splits [{query_split_name!r}])",
                f"reference splits {list(reference_split_names)!r}",
            )
        embeddings, labels = embeddings_and_labels[query_split_name]
        half = embeddings.shape[0] // 2
        return embeddings[:half], labels[:half], embeddings[half:], labels[half:]

    def ref_includes_query(
        self, query_split_name: str, reference_split_names: Sequence[str]
    ) -> bool:
        return False
