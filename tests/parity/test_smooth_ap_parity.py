"""SmoothAPLoss against PML 2.9.0: values and gradients (float64, rel 1e-6), loss dicts, miner
weights, reducers, regularizer, errors -- and the documented deviations.

PML 2.9.0 does not read which sample has which label: it only checks that all C classes have the
same size m and then scores consecutive blocks of C samples as the classes. That is the loss of
the labels only when the batch is sorted into class blocks and C == m, so value parity is tested
on such batches; ``test_pml_groups_consecutive_blocks_of_num_classes`` pins down what PML
computes otherwise (deepmetric follows the labels).
"""

from __future__ import annotations

import math

import pytest
import torch

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import distances as pml_distances  # noqa: E402
from pytorch_metric_learning import losses as pml_losses  # noqa: E402
from pytorch_metric_learning import miners as pml_miners  # noqa: E402
from pytorch_metric_learning import reducers as pml_reducers  # noqa: E402
from pytorch_metric_learning import regularizers as pml_regs  # noqa: E402

from deepmetric import distances, reducers, regularizers  # noqa: E402
from deepmetric.functional import smooth_ap as F  # noqa: E402
from deepmetric.losses.smooth_ap_loss import SmoothAPLoss  # noqa: E402

pytestmark = pytest.mark.parity

LIBS = {
    "ours": (SmoothAPLoss, distances, reducers, regularizers),
    "pml": (pml_losses.SmoothAPLoss, pml_distances, pml_reducers, pml_regs),
}


def _build(lib, distance=False, reducer=None, regularizer=False, **kwargs):
    loss_class, dist_mod, red_mod, reg_mod = LIBS[lib]
    if distance:
        kwargs["distance"] = dist_mod.CosineSimilarity()
    if reducer is not None:
        kwargs["reducer"] = getattr(red_mod, reducer)()
    if regularizer:
        kwargs["embedding_regularizer"] = reg_mod.LpRegularizer()
    return loss_class(**kwargs)


def _run(loss_fn, x, *args, **kwargs):
    e = x.clone().requires_grad_()
    out = loss_fn(e, *args, **kwargs)
    out.backward()
    return out.detach(), e.grad


def _compare(x, *args, rtol=1e-6, build=None, **kwargs):
    build = build or {}
    ours = _run(_build("ours", **build), x, *args, **kwargs)
    theirs = _run(_build("pml", **build), x, *args, **kwargs)
    assert ours[0].dtype == x.dtype
    torch.testing.assert_close(ours[0], theirs[0].to(x.dtype), rtol=rtol, atol=1e-12)
    # PML's loss passes through float32, so its gradient carries float32 rounding relative to
    # the largest entry: compare with rtol plus rtol * max|grad|
    scale = float(theirs[1].abs().max())
    torch.testing.assert_close(ours[1], theirs[1], rtol=rtol, atol=rtol * scale + 1e-15)
    return ours[0]


def _square_batch(c=4, d=8):
    """C classes of C samples, sorted into blocks: the layout PML scores by the labels."""
    return torch.randn(c * c, d, dtype=torch.float64), torch.arange(c).repeat_interleave(c)


@pytest.mark.parametrize(
    "build",
    [
        {},
        {"temperature": 0.05},
        {"temperature": 0.5},
        {"temperature": 2.0, "distance": True},
        {"reducer": "SumReducer"},
        {"reducer": "AvgNonZeroReducer", "temperature": 0.1},
        {"regularizer": True, "temperature": 0.1},
    ],
)
@pytest.mark.parametrize("c", [3, 5])
def test_values_and_gradients(build, c):
    x, y = _square_batch(c)
    assert _compare(x, y, build=build).item() > 1e-3  # not a trivially zero case


def test_realistic_size():
    x, y = _square_batch(8, d=32)
    _compare(x, y, build={"temperature": 0.02})


def test_loss_dict():
    x, y = _square_batch(4)
    ours = _build("ours", reducer="DoNothingReducer", temperature=0.1)(x, y)
    theirs = _build("pml", reducer="DoNothingReducer", temperature=0.1)(x, y)
    assert list(ours) == list(theirs) == ["ap_loss"]
    a, b = ours["ap_loss"], theirs["ap_loss"]
    assert a["reduction_type"] == b["reduction_type"] == "element"
    assert torch.equal(a["indices"], b["indices"])
    torch.testing.assert_close(a["losses"], b["losses"].double(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(
    "miner", ["MultiSimilarityMiner", "TripletMarginMiner", "BatchHardMiner", "PairMarginMiner"]
)
def test_with_miner_tuple(miner):
    x, y = _square_batch(4)
    kwargs = {"margin": 0.3} if miner == "TripletMarginMiner" else {}
    tuple_ = getattr(pml_miners, miner)(**kwargs)(x, y)
    assert len(tuple_[0]) > 0
    _compare(x, y, tuple_, build={"temperature": 0.1})


def test_with_empty_and_hand_made_tuples():
    x, y = _square_batch(4)
    empty = torch.tensor([], dtype=torch.long)
    _compare(x, y, (empty, empty, empty), build={"temperature": 0.1})
    pairs = (torch.tensor([0, 3]), torch.tensor([1, 2]), torch.tensor([2, 4]), torch.tensor([5, 9]))
    _compare(x, y, pairs, build={"temperature": 0.1})


@pytest.mark.parametrize("labels", [[0, 1, 2, 3, 4, 5], [7], [1, 1], [0, 0, 0, 0, 0, 0]])
def test_degenerate_batches(labels):
    """Singletons and a single sample: both give a connected zero. One class at the default
    temperature: both ~0 (PML's grouping differs, see below, but the sigmoids vanish)."""
    y = torch.tensor(labels)
    x = torch.randn(len(labels), 5, dtype=torch.float64)
    ours = _run(_build("ours"), x, y)
    theirs = _run(_build("pml"), x, y)
    assert ours[0].item() == pytest.approx(0, abs=1e-12)
    assert theirs[0].item() == pytest.approx(0, abs=1e-12)
    torch.testing.assert_close(ours[1], theirs[1], rtol=0, atol=1e-9)


@pytest.mark.parametrize(("c", "m"), [(2, 4), (4, 2), (3, 2), (2, 1), (8, 4)])
def test_pml_groups_consecutive_blocks_of_num_classes(c, m):
    """Deviation: PML 2.9.0 scores samples ``[k C, (k + 1) C)`` as one class, whatever the
    labels. deepmetric follows the labels; with those block labels the two agree."""
    n = c * m
    y = torch.arange(c).repeat_interleave(m)[torch.randperm(n)]
    x = torch.randn(n, 6, dtype=torch.float64)
    theirs = _run(_build("pml", temperature=0.5), x, y)
    blocks = torch.arange(n) // c  # PML's implied labels: m classes of C samples
    ours_on_blocks = _run(_build("ours", temperature=0.5), x, blocks)
    torch.testing.assert_close(ours_on_blocks[0], theirs[0].double(), rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(ours_on_blocks[1], theirs[1], rtol=1e-6, atol=1e-12)
    if c != m and c > 1 and m > 1:
        ours = _run(_build("ours", temperature=0.5), x, y)[0]
        assert abs(ours.item() - theirs[0].item()) > 1e-4


def test_pml_scores_one_class_as_singletons():
    """Deviation: one class of m samples is, for PML, m classes of one sample, each query ranking
    only itself: ``1 - 1 / (1 + sum_{j != q} G(s_qj - s_qq))``. For deepmetric every sample is
    a positive, AP = 1 and the loss is 0."""
    x = torch.randn(5, 6, dtype=torch.float64)
    y = torch.zeros(5, dtype=torch.long)
    theirs = _build("pml", temperature=0.5)(x, y)
    sim = distances.CosineSimilarity()(x)
    alone = F.smooth_ap_losses(sim, torch.eye(5, dtype=torch.bool), temperature=0.5).mean()
    assert theirs.item() == pytest.approx(alone.item(), rel=1e-6)
    assert theirs.item() > 0.05
    assert _build("ours", temperature=0.5)(x, y).item() == pytest.approx(0, abs=1e-12)


def test_output_dtype():
    """Deviation: PML returns float32 for every input dtype; deepmetric keeps the input dtype."""
    x, y = _square_batch(3)
    for dtype in (torch.float64, torch.float16):
        assert _build("pml")(x.to(dtype), y).dtype == torch.float32
        assert _build("ours")(x.to(dtype), y).dtype == dtype


def test_pml_depends_on_batch_order_ours_does_not():
    x, y = _square_batch(4)
    perm = torch.randperm(len(y))
    ours = _build("ours", temperature=0.2)
    theirs = _build("pml", temperature=0.2)
    assert ours(x[perm], y[perm]).item() == pytest.approx(ours(x, y).item(), rel=1e-12)
    assert abs(theirs(x[perm], y[perm]).item() - theirs(x, y).item()) > 1e-4


def test_same_errors():
    x, y = _square_batch(3)
    unequal = torch.tensor([0, 0, 0, 1, 1, 2, 2, 3, 3])
    for lib in LIBS:
        with pytest.raises(ValueError, match="same number"):
            _build(lib)(x, unequal)
        with pytest.raises(ValueError, match="labels"):
            _build(lib)(x)
        with pytest.raises(ValueError, match="ref_emb"):
            _build(lib)(x, y, ref_emb=x.clone(), ref_labels=y)
    # PML: AssertionError; deepmetric: ValueError with the same meaning
    with pytest.raises(AssertionError, match="CosineSimilarity"):
        pml_losses.SmoothAPLoss(distance=pml_distances.LpDistance())
    with pytest.raises(ValueError, match="CosineSimilarity"):
        SmoothAPLoss(distance=distances.LpDistance())


def test_pml_accepts_bad_temperatures_we_reject():
    x, y = _square_batch(3)
    assert math.isnan(pml_losses.SmoothAPLoss(temperature=0)(x, y).item())
    with pytest.raises(ValueError, match="temperature"):
        SmoothAPLoss(temperature=0)
    with pytest.raises(ValueError, match="temperature"):
        SmoothAPLoss(temperature=-1)
