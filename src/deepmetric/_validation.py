"""Input checks for public entry points, with one message shape.

Messages say what was expected, what was received and, when known, the fix:
``"TripletMarginLoss: expected `labels` of shape (N,) with N=256, got (255,)."``
Kernels behind these checks trust their input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import torch

from ._types import PairMasks, Tensor


def fail(
    owner: str, expected: str, got: str, fix: str | None = None, exc: type[Exception] = ValueError
) -> NoReturn:
    """Raise ``exc`` with the house message shape."""
    message = f"{owner}: expected {expected}, got {got}."
    if fix:
        message += f" {fix}"
    raise exc(message)


def _shape(t: Tensor) -> str:
    return str(tuple(t.shape))


def check_tensor(owner: str, value: Any, name: str) -> Tensor:
    if not isinstance(value, torch.Tensor):
        fail(owner, f"`{name}` to be a torch.Tensor", type(value).__name__, exc=TypeError)
    return value


def check_embeddings(owner: str, embeddings: Any, name: str = "embeddings") -> Tensor:
    """A non-empty, finite, floating-point tensor of shape (N, D)."""
    emb = check_tensor(owner, embeddings, name)
    if emb.ndim != 2:
        fail(owner, f"`{name}` of shape (N, D)", f"a {emb.ndim}-D tensor of shape {_shape(emb)}")
    if not emb.is_floating_point():
        fail(owner, f"floating-point `{name}`", str(emb.dtype), "Cast with .float().", TypeError)
    if emb.shape[0] == 0:
        fail(owner, f"a non-empty `{name}` batch", f"shape {_shape(emb)}")
    if not bool(torch.isfinite(emb).all()):
        fail(owner, f"finite `{name}`", "NaN or inf values", "Check the model's output.")
    return emb


def check_labels(owner: str, labels: Any, n: int, name: str = "labels", of: str = "N") -> Tensor:
    """Integer class labels of shape (n,)."""
    lab = check_tensor(owner, labels, name)
    if lab.ndim != 1 or lab.shape[0] != n:
        fail(owner, f"`{name}` of shape ({of},) with {of}={n}", _shape(lab))
    if lab.is_floating_point() or lab.is_complex():
        fail(
            owner,
            f"integer `{name}`",
            str(lab.dtype),
            "Float labels collide above 2**24; pass class ids with .long().",
            TypeError,
        )
    return lab


def check_same_dim(owner: str, emb: Tensor, ref: Tensor) -> None:
    if emb.shape[1] != ref.shape[1]:
        fail(owner, f"`ref_emb` of dimension D={emb.shape[1]}", f"shape {_shape(ref)}")


def check_indices_tuple(owner: str, indices: Any, n_anchors: int, n_refs: int) -> None:
    """An ``(a, p, n)`` or ``(a1, p, a2, n)`` tuple of 1-D integer tensors, in range (or
    :class:`PairMasks` of shape (n_anchors, n_refs))."""
    if isinstance(indices, PairMasks):
        for name in ("pos", "neg"):
            mask = check_tensor(owner, getattr(indices, name), f"PairMasks.{name}")
            if mask.dtype != torch.bool or tuple(mask.shape) != (n_anchors, n_refs):
                expected = f"PairMasks.{name} of dtype bool, shape (N, M)=({n_anchors}, {n_refs})"
                fail(owner, expected, f"{mask.dtype} {_shape(mask)}")
        return
    if not isinstance(indices, (tuple, list)) or len(indices) not in (3, 4):
        got = (
            f"length {len(indices)}"
            if isinstance(indices, (tuple, list))
            else type(indices).__name__
        )
        fail(
            owner, "`indices_tuple` of 3 (a, p, n) or 4 (a1, p, a2, n) tensors", got, exc=TypeError
        )
    for i, t in enumerate(indices):
        check_tensor(owner, t, f"indices_tuple[{i}]")
        if t.ndim != 1 or t.is_floating_point():
            fail(owner, f"indices_tuple[{i}] to be a 1-D integer tensor", f"{t.dtype} {_shape(t)}")
        bound = n_anchors if (i == 0 or (len(indices) == 4 and i == 2)) else n_refs
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= bound):
            fail(
                owner,
                f"indices_tuple[{i}] within [0, {bound})",
                f"[{int(t.min())}, {int(t.max())}]",
            )
    groups = [indices] if len(indices) == 3 else [indices[:2], indices[2:]]
    for group in groups:
        if len({len(t) for t in group}) > 1:
            fail(
                owner, "index tensors of equal length within a tuple", str([len(t) for t in group])
            )


def check_choice(owner: str, name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        fail(owner, f"`{name}` to be one of {list(choices)}", repr(value))


# ------------------------------------------------------------------ PML ``c_f`` guards
# Each takes the caller's name as ``owner`` (keyword) so messages say which component refused.
def check_shapes(embeddings: Tensor, labels: Tensor | None, *, owner: str = "deepmetric") -> None:
    """``labels`` (when given) must be a 1-D tensor with one entry per embedding row."""
    if labels is None:
        return
    lab = check_tensor(owner, labels, "labels")
    n = len(embeddings)
    if lab.ndim != 1 or lab.shape[0] != n:
        fail(owner, f"`labels` of shape (N,) with N={n} (one per embedding)", _shape(lab))


def labels_required(labels: Tensor | None, *, owner: str = "deepmetric") -> None:
    if labels is None:
        fail(owner, "`labels` (this component needs class labels)", "None")


def labels_or_indices_tuple_required(
    labels: Tensor | None, indices_tuple: Any, *, owner: str = "deepmetric"
) -> None:
    if labels is None and indices_tuple is None:
        fail(owner, "`labels` or `indices_tuple`", "neither", "Pass labels, or a miner's output.")


def ref_not_supported(
    embeddings: Tensor,
    labels: Tensor | None,
    ref_emb: Tensor | None,
    ref_labels: Tensor | None,
    *,
    owner: str = "deepmetric",
) -> None:
    """Refuse a reference set other than the query set itself (compared by identity)."""
    if ref_emb is not embeddings or ref_labels is not labels:
        fail(owner, "no `ref_emb`/`ref_labels` (not supported here)", "a separate reference set")


def indices_tuple_not_supported(indices_tuple: Any, *, owner: str = "deepmetric") -> None:
    if indices_tuple is not None:
        fail(owner, "no `indices_tuple` (not supported here)", "an indices_tuple")


def labels_not_supported(
    labels: Tensor | None, ref_labels: Tensor | None, *, owner: str = "deepmetric"
) -> None:
    if labels is not None or ref_labels is not None:
        fail(owner, "no `labels`/`ref_labels` (not supported here)", "labels")


def assert_distance_type(obj: Any, distance_type: Any = None, **attr_equalities: Any) -> None:
    """Raise ``ValueError`` unless ``obj.distance`` is a ``distance_type`` (a class or a tuple
    of classes) and has the attribute values ``attr_equalities`` (e.g. ``power=1``)."""
    owner = type(obj).__name__
    distance = getattr(obj, "distance", None)
    if distance_type is not None:
        types = (
            tuple(distance_type) if isinstance(distance_type, (list, tuple)) else (distance_type,)
        )
        if not isinstance(distance, types):
            names = " or ".join(t.__name__ for t in types)
            fail(owner, f"a distance of type {names}", type(distance).__name__)
    for attr, value in attr_equalities.items():
        got = getattr(distance, attr, None)
        if got != value:
            fail(owner, f"distance.{attr} == {value!r}", repr(got))
