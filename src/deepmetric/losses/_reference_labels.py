"""Shared check: which labels describe the reference rows when a separate ``ref_emb`` is given."""

from __future__ import annotations

from .. import _validation as V
from .._types import Tensor


def check_ref_labels(
    owner: str,
    embeddings: Tensor,
    labels: Tensor | None,
    ref_emb: Tensor,
    ref_labels: Tensor | None,
    *,
    required: bool = False,
) -> None:
    """Refuse a separate ``ref_emb`` without ``ref_labels`` when labels must describe it.

    PML then reuses the query ``labels`` for the reference rows, which only makes sense when both
    sets have the same length; otherwise (or with ``required``) this raises ``ValueError``.
    """
    if ref_emb is embeddings or ref_labels is not None or labels is None:
        return
    if required or ref_emb.shape[0] != embeddings.shape[0]:
        V.fail(
            owner,
            "`ref_labels` together with a separate `ref_emb` (labels of the reference rows)",
            f"ref_emb of {ref_emb.shape[0]} rows without ref_labels",
            "Pass ref_labels=... .",
        )
