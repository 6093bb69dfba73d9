"""Tests for ``deepmetric.functional.triplet_losses``.

The reference is a float64 Python loop over every triplet, written from the definition:
``v = d_ap - d_an + margin`` (``s_an - s_ap + margin`` for similarities), swap replaces the
anchor-negative value by the closer of it and ``mat[p, n]``, ``L = relu(v)`` or ``softplus(v)``,
then the mean (or sum) of the terms with ``low < L < high``.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from deepmetric.functional.reductions import IntervalMean, interval_reduce
from deepmetric.functional.triplet_losses import (
    all_triplets_margin_loss,
    count_triplets_in,
    triplet_margin_terms,
)

REDUCTIONS = {
    "mean": IntervalMean(None, None, True),
    "sum": IntervalMean(None, None, False),
    "avg_nonzero": IntervalMean(0.0, None, True),
    "threshold": IntervalMean(0.01, 0.3, True),
    "threshold_neg_low": IntervalMean(-1.0, 0.2, True),
}
MARGIN = 0.2


# ---------------------------------------------------------------------------------------------
# helpers


def make_problem(
    *,
    inverted: bool,
    separate_ref: bool,
    n: int = 12,
    m: int = 9,
    n_classes: int = 3,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``mat: Tensor[N, M]`` (3 x distance or cosine similarity of unit vectors) and label masks.

    Without a separate reference set ``M = N`` and self pairs are removed from ``pos``; with one
    ``M < N`` (so ``mat[p, n]`` of the swap is a valid index, as PML requires).
    """
    g = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(n, 5, generator=g, dtype=torch.float64), dim=1)
    q_labels = torch.randint(0, n_classes, (n,), generator=g)
    if separate_ref:
        r = torch.nn.functional.normalize(
            torch.randn(m, 5, generator=g, dtype=torch.float64), dim=1
        )
        r_labels = torch.randint(0, n_classes, (m,), generator=g)
    else:
        r, r_labels = q, q_labels
    # scaled by 3 so that v spreads over about [-5, 5]: every interval (softplus too) keeps terms
    mat = 3.0 * (q @ r.T if inverted else torch.cdist(q, r))
    same = q_labels[:, None] == r_labels[None, :]
    pos = same.clone()
    if not separate_ref:
        pos.fill_diagonal_(False)
    return mat.to(dtype), pos, ~same


def reference_loss(
    mat: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    *,
    margin: float,
    is_inverted: bool,
    swap: bool,
    smooth_loss: bool,
    reduction: IntervalMean,
) -> tuple[float, int]:
    """Loop over all ``(a, p, n)`` in float64; returns (reduced loss, number of kept terms)."""
    x = mat.double().tolist()
    pos_l, neg_l = pos.tolist(), neg.tolist()
    n_rows, n_cols = mat.shape
    kept: list[float] = []
    for a in range(n_rows):
        for p in range(n_cols):
            if not pos_l[a][p]:
                continue
            for n in range(n_cols):
                if not neg_l[a][n]:
                    continue
                ap, an = x[a][p], x[a][n]
                if swap:
                    pn = x[p][n]
                    an = max(an, pn) if is_inverted else min(an, pn)
                v = (an - ap if is_inverted else ap - an) + margin
                loss = max(v, 0.0) + math.log1p(math.exp(-abs(v))) if smooth_loss else max(v, 0.0)
                if reduction.low is not None and not loss > reduction.low:
                    continue
                if reduction.high is not None and not loss < reduction.high:
                    continue
                kept.append(loss)
    if not kept:
        return 0.0, 0
    total = math.fsum(kept)
    return (total / len(kept) if reduction.divide else total), len(kept)


def all_triplets(pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Explicit ``(a, p, n)`` of every triplet (small inputs only)."""
    return torch.where(pos[:, :, None] & neg[:, None, :])


def explicit_loss(mat: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, reduction, **kw):
    """The autograd path: explicit terms + ``interval_reduce``."""
    a, p, n = all_triplets(pos, neg)
    return interval_reduce(triplet_margin_terms(mat, a, p, n, **kw), reduction)


# ---------------------------------------------------------------------------------------------
# values and gradients against the loop reference and the explicit autograd path


@pytest.mark.parametrize("separate_ref", [False, True], ids=["self", "ref"])
@pytest.mark.parametrize("reduction", REDUCTIONS.values(), ids=REDUCTIONS.keys())
@pytest.mark.parametrize("is_inverted", [False, True], ids=["dist", "sim"])
@pytest.mark.parametrize("swap", [False, True], ids=["noswap", "swap"])
@pytest.mark.parametrize("smooth_loss", [False, True], ids=["relu", "softplus"])
def test_matches_reference_and_autograd(smooth_loss, swap, is_inverted, reduction, separate_ref):
    mat, pos, neg = make_problem(inverted=is_inverted, separate_ref=separate_ref)
    kw = dict(margin=MARGIN, is_inverted=is_inverted, swap=swap, smooth_loss=smooth_loss)
    expected, n_kept = reference_loss(mat, pos, neg, reduction=reduction, **kw)
    assert n_kept > 0  # the setup exercises the interval

    mat_k = mat.clone().requires_grad_()
    # a tiny block bound forces several blocks on the blockwise path
    loss = all_triplets_margin_loss(
        mat_k, pos, neg, reduction=reduction, max_block_elements=50, **kw
    )
    assert loss.shape == () and loss.dtype == torch.float64
    torch.testing.assert_close(loss.item(), expected, rtol=1e-7, atol=1e-12)

    mat_e = mat.clone().requires_grad_()
    explicit = explicit_loss(mat_e, pos, neg, reduction, **kw)
    torch.testing.assert_close(explicit.item(), expected, rtol=1e-7, atol=1e-12)
    (grad_k,) = torch.autograd.grad(loss, mat_k)
    (grad_e,) = torch.autograd.grad(explicit, mat_e)
    torch.testing.assert_close(grad_k, grad_e, rtol=1e-7, atol=1e-12)

    count = count_triplets_in(
        mat, pos, neg, low=reduction.low, high=reduction.high, max_block_elements=50, **kw
    )
    assert count.dtype == torch.int64 and int(count) == n_kept


@pytest.mark.parametrize("swap", [False, True], ids=["noswap", "swap"])
@pytest.mark.parametrize("smooth_loss", [False, True], ids=["relu", "softplus"])
def test_block_size_does_not_change_result(smooth_loss, swap):
    mat, pos, neg = make_problem(inverted=False, separate_ref=False, n=24, n_classes=4)
    kw = dict(margin=MARGIN, is_inverted=False, swap=swap, smooth_loss=smooth_loss)
    results = []
    for block in (1, 100, 1 << 23):
        m = mat.clone().requires_grad_()
        loss = all_triplets_margin_loss(
            m, pos, neg, reduction=REDUCTIONS["avg_nonzero"], max_block_elements=block, **kw
        )
        results.append((loss.detach(), torch.autograd.grad(loss, m)[0]))
    for loss, grad in results[1:]:
        torch.testing.assert_close(loss, results[0][0], rtol=1e-12, atol=0)
        torch.testing.assert_close(grad, results[0][1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS.values(), ids=REDUCTIONS.keys())
@pytest.mark.parametrize("is_inverted", [False, True], ids=["dist", "sim"])
@pytest.mark.parametrize(("smooth_loss", "swap"), [(False, False), (False, True), (True, True)])
def test_exact_ties(smooth_loss, swap, is_inverted, reduction):
    """Values on a 1/16 grid, margin 0.25: many v = 0, v on a threshold, d_an = d_pn exactly.

    Strictness (``low < L < high``), relu's zero derivative at 0 and the half/half split of
    ``min``/``max`` ties must match the explicit autograd path.
    """
    g = torch.Generator().manual_seed(11)
    n = 12
    mat = torch.randint(0, 12, (n, n), generator=g).double() / 16  # exact in float64
    labels = torch.randint(0, 3, (n,), generator=g)
    same = labels[:, None] == labels[None, :]
    pos, neg = same & ~torch.eye(n, dtype=torch.bool), ~same
    kw = dict(margin=0.25, is_inverted=is_inverted, swap=swap, smooth_loss=smooth_loss)
    spec = IntervalMean(reduction.low, reduction.high, reduction.divide)
    if spec.low == 0.01 and spec.high == 0.3:  # put the thresholds on the grid
        spec = IntervalMean(0.0625, 0.3125, True)

    m_k = mat.clone().requires_grad_()
    loss = all_triplets_margin_loss(m_k, pos, neg, reduction=spec, **kw)
    m_e = mat.clone().requires_grad_()
    explicit = explicit_loss(m_e, pos, neg, spec, **kw)
    torch.testing.assert_close(loss, explicit, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(
        torch.autograd.grad(loss, m_k)[0], torch.autograd.grad(explicit, m_e)[0]
    )
    a, p, n_ = all_triplets(pos, neg)
    n_kept = int(spec.keep_mask(triplet_margin_terms(mat, a, p, n_, **kw)).sum())
    count = count_triplets_in(mat, pos, neg, low=spec.low, high=spec.high, **kw)
    assert int(count) == n_kept


def test_triplet_margin_terms_explicit_values():
    mat = torch.tensor([[0.0, 0.3, 0.9], [0.3, 0.0, 0.2], [0.9, 0.2, 0.0]], dtype=torch.float64)
    a, p, n = torch.tensor([0, 0]), torch.tensor([1, 1]), torch.tensor([2, 2])
    # v = d_ap - d_an + m = 0.3 - 0.9 + 0.7 = 0.1; swap: min(0.9, d_pn=0.2) -> 0.3 - 0.2 + 0.7 = 0.8
    out = triplet_margin_terms(mat, a, p, n, margin=0.7, is_inverted=False)
    torch.testing.assert_close(out, torch.tensor([0.1, 0.1], dtype=torch.float64))
    out = triplet_margin_terms(mat, a, p, n, margin=0.7, is_inverted=False, swap=True)
    torch.testing.assert_close(out, torch.tensor([0.8, 0.8], dtype=torch.float64))
    out = triplet_margin_terms(mat, a, p, n, margin=0.7, is_inverted=False, smooth_loss=True)
    torch.testing.assert_close(out, torch.nn.functional.softplus(torch.full((2,), 0.1).double()))
    # similarities: v = s_an - s_ap + m = 0.9 - 0.3 - 0.5 = 0.1; swap uses max(s_an, s_pn)
    out = triplet_margin_terms(mat, a, p, n, margin=-0.5, is_inverted=True)
    torch.testing.assert_close(out, torch.tensor([0.1, 0.1], dtype=torch.float64))
    none = triplet_margin_terms(mat, a[:0], p[:0], n[:0], margin=0.1, is_inverted=False)
    assert none.shape == (0,)


# ---------------------------------------------------------------------------------------------
# gradcheck of the custom Function (float64, small inputs, away from kinks and thresholds)

GRADCHECK_CASES = [
    (smooth, swap, inv, red)
    for smooth, swap, inv in itertools.product([False, True], repeat=3)
    for red in ("mean", "sum", "avg_nonzero", "threshold")
]


@pytest.mark.parametrize(("smooth_loss", "swap", "is_inverted", "reduction"), GRADCHECK_CASES)
def test_gradcheck(smooth_loss, swap, is_inverted, reduction):
    mat, pos, neg = make_problem(inverted=is_inverted, separate_ref=False, n=7, seed=3)
    spec = REDUCTIONS[reduction]
    kw = dict(margin=MARGIN, is_inverted=is_inverted, swap=swap, smooth_loss=smooth_loss)

    def fn(m: torch.Tensor) -> torch.Tensor:
        return all_triplets_margin_loss(m, pos, neg, reduction=spec, max_block_elements=20, **kw)

    assert torch.autograd.gradcheck(fn, (mat.clone().requires_grad_(),), eps=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# dtypes

DTYPE_TOL = {
    torch.float16: 1e-3,
    torch.bfloat16: 1e-2,
    torch.float32: 1e-5,
    torch.float64: 1e-7,
}


@pytest.mark.parametrize("smooth_loss", [False, True], ids=["relu", "softplus"])
@pytest.mark.parametrize("reduction", ["mean", "avg_nonzero", "threshold"])
@pytest.mark.parametrize("dtype", DTYPE_TOL.keys(), ids=str)
def test_dtypes(dtype, reduction, smooth_loss):
    mat, pos, neg = make_problem(inverted=False, separate_ref=False, n=16, dtype=dtype, seed=1)
    spec = REDUCTIONS[reduction]
    kw = dict(margin=MARGIN, is_inverted=False, swap=False, smooth_loss=smooth_loss)
    tol = DTYPE_TOL[dtype]
    # the reference sees exactly the (rounded) values the kernel sees
    expected, _ = reference_loss(mat, pos, neg, reduction=spec, **kw)

    m = mat.clone().requires_grad_()
    loss = all_triplets_margin_loss(m, pos, neg, reduction=spec, **kw)
    assert loss.dtype == dtype
    torch.testing.assert_close(loss.double().item(), expected, rtol=tol, atol=tol * 1e-3)
    (grad,) = torch.autograd.grad(loss, m)
    assert grad.dtype == dtype

    m64 = mat.double().requires_grad_()
    (grad64,) = torch.autograd.grad(explicit_loss(m64, pos, neg, spec, **kw), m64)
    scale = grad64.abs().max().item()
    torch.testing.assert_close(grad.double(), grad64, rtol=tol, atol=tol * scale)


# ---------------------------------------------------------------------------------------------
# degenerate inputs: zero loss, zero (but defined) gradient


def _degenerate_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]]:
    g = torch.Generator().manual_seed(5)
    emb = torch.nn.functional.normalize(torch.randn(6, 3, generator=g, dtype=torch.float64), dim=1)
    mat = torch.cdist(emb, emb)
    eye = torch.eye(6, dtype=torch.bool)

    def masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        same = labels[:, None] == labels[None, :]
        return same & ~eye, ~same

    distinct = masks(torch.arange(6))
    one_class = masks(torch.zeros(6, dtype=torch.long))
    two_class = masks(torch.tensor([0, 0, 0, 1, 1, 1]))
    empty = torch.zeros(0, 0, dtype=torch.bool)
    return {
        "no_positives": (mat, *distinct, MARGIN),
        "no_negatives": (mat, *one_class, MARGIN),
        "nothing_kept": (mat, *two_class, -10.0),  # every v < 0
        "empty": (torch.zeros(0, 0, dtype=torch.float64), empty, empty, MARGIN),
    }


DEGENERATE_CASES = [
    (case, smooth, swap, red)
    for case in ("no_positives", "no_negatives", "nothing_kept", "empty")
    for smooth, swap in itertools.product([False, True], repeat=2)
    for red in ("mean", "sum", "avg_nonzero", "threshold")
    if not (case == "nothing_kept" and smooth)  # softplus terms are never zero
]


@pytest.mark.parametrize(("case", "smooth_loss", "swap", "reduction"), DEGENERATE_CASES)
def test_degenerate_inputs_give_zero(case, smooth_loss, swap, reduction):
    mat, pos, neg, margin = _degenerate_cases()[case]
    spec = REDUCTIONS[reduction]
    m = mat.clone().requires_grad_()
    kw = dict(margin=margin, is_inverted=False, swap=swap, smooth_loss=smooth_loss)
    loss = all_triplets_margin_loss(m, pos, neg, reduction=spec, **kw)
    assert loss.shape == () and loss.dtype == mat.dtype and loss.item() == 0.0
    loss.backward()
    assert m.grad is not None and torch.count_nonzero(m.grad) == 0
    count = int(count_triplets_in(mat, pos, neg, low=spec.low, high=spec.high, **kw))
    if case == "nothing_kept" and spec.low is None:  # the all-zero terms are kept, adding 0
        assert count == all_triplets(pos, neg)[0].numel() > 0
    else:
        assert count == 0


@pytest.mark.parametrize("smooth_loss", [False, True], ids=["relu", "softplus"])
@pytest.mark.parametrize(
    "spec", [IntervalMean(None, 0.0), IntervalMean(-1.0, -0.5), IntervalMean(0.3, 0.1)]
)
def test_empty_intervals(spec, smooth_loss):
    mat, pos, neg = make_problem(inverted=False, separate_ref=False)
    m = mat.clone().requires_grad_()
    kw = dict(margin=MARGIN, is_inverted=False, smooth_loss=smooth_loss)
    loss = all_triplets_margin_loss(m, pos, neg, reduction=spec, **kw)
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(m.grad) == 0
    assert int(count_triplets_in(mat, pos, neg, low=spec.low, high=spec.high, **kw)) == 0


def test_no_grad_input_returns_plain_value():
    mat, pos, neg = make_problem(inverted=True, separate_ref=False)
    loss = all_triplets_margin_loss(
        mat, pos, neg, margin=MARGIN, is_inverted=True, reduction=REDUCTIONS["mean"]
    )
    assert not loss.requires_grad and loss.item() > 0


# ---------------------------------------------------------------------------------------------
# memory: no tensor anywhere near the N * P * M triplets is created


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an aten op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize(
    ("n", "smooth_loss", "swap", "block"),
    [(2048, False, False, 1 << 23), (512, True, True, 1 << 16)],
    ids=["sorted_relu_2048", "blockwise_512"],
)
def test_memory_stays_quadratic(n, smooth_loss, swap, block):
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(n, 16, generator=g), dim=1)
    labels = torch.arange(n) % 32
    mat = torch.cdist(emb, emb).requires_grad_()
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(n, dtype=torch.bool)
    neg = ~same
    n_triplets = int((pos.sum(1) * neg.sum(1)).sum())  # 2048 -> ~2.6e8 triplets
    with _LargestTensor() as probe:
        loss = all_triplets_margin_loss(
            mat,
            pos,
            neg,
            margin=0.05,
            is_inverted=False,
            swap=swap,
            smooth_loss=smooth_loss,
            reduction=REDUCTIONS["avg_nonzero"],
            max_block_elements=block,
        )
        loss.backward()
    assert mat.grad is not None and torch.isfinite(mat.grad).all()
    bound = max(block, n * (n + 1))  # one block, or an N x (M + 1) prefix-sum matrix
    assert probe.largest <= bound
    assert probe.largest * 10 < n_triplets
