"""The loss template: validation table, reducer wrapping, regularizer terms, DoNothing."""

from __future__ import annotations

import pytest
import torch

from deepmetric import distances, losses, reducers, regularizers

X = torch.randn(6, 4)
Y = torch.tensor([0, 0, 1, 1, 2, 2])

BAD_INPUTS = [
    ("1-D embeddings", dict(embeddings=torch.randn(6)), ValueError, r"shape \(N, D\)"),
    (
        "int embeddings",
        dict(embeddings=torch.ones(6, 4, dtype=torch.long)),
        TypeError,
        "floating-point",
    ),
    ("empty batch", dict(embeddings=torch.randn(0, 4), labels=Y[:0]), ValueError, "non-empty"),
    ("NaN", dict(embeddings=torch.full((6, 4), float("nan"))), ValueError, "finite"),
    (
        "inf",
        dict(embeddings=X.clone().index_fill_(0, torch.tensor([1]), float("inf"))),
        ValueError,
        "finite",
    ),
    ("short labels", dict(labels=Y[:5]), ValueError, r"shape \(N,\) with N=6, got \(5,\)"),
    ("float labels", dict(labels=Y.float()), TypeError, "integer `labels`"),
    ("2-D labels", dict(labels=Y[:, None]), ValueError, "`labels` of shape"),
    ("labels not a tensor", dict(labels=[0, 0, 1, 1, 2, 2]), TypeError, "torch.Tensor"),
    ("ref dim", dict(ref_emb=torch.randn(3, 5), ref_labels=Y[:3]), ValueError, "dimension D=4"),
    ("ref_labels alone", dict(ref_labels=Y), ValueError, "only together with `ref_emb`"),
    (
        "short ref_labels",
        dict(ref_emb=torch.randn(3, 4), ref_labels=Y[:2]),
        ValueError,
        r"\(M,\) with M=3",
    ),
    ("tuple of 2", dict(indices_tuple=(Y, Y)), TypeError, "3 .* or 4"),
    ("tuple out of range", dict(indices_tuple=(Y, Y + 6, Y)), ValueError, r"within \[0, 6\)"),
    ("float tuple", dict(indices_tuple=(Y.float(), Y, Y)), ValueError, "integer tensor"),
    ("ragged tuple", dict(indices_tuple=(Y, Y[:3], Y)), ValueError, "equal length"),
    ("no labels no tuple", dict(labels=None), ValueError, "`labels` or `indices_tuple`"),
]


@pytest.mark.parametrize("loss_cls", [losses.ContrastiveLoss, losses.TripletMarginLoss])
@pytest.mark.parametrize(
    ("case", "overrides", "exc", "match"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_table(loss_cls, case, overrides, exc, match):
    kwargs = dict(embeddings=X, labels=Y) | overrides
    with pytest.raises(exc, match=match):
        loss_cls()(**kwargs)


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match="BaseReducer"):
        losses.ContrastiveLoss(reducer="mean")
    with pytest.raises(TypeError, match="BaseDistance"):
        losses.ContrastiveLoss(distance=3)
    with pytest.raises(ValueError, match="Did you mean 'LpDistance'"):
        losses.ContrastiveLoss(distance="LpDistanc")
    with pytest.raises(TypeError):
        losses.TripletMarginLoss(not_a_param=1)


def test_distance_given_by_class_or_name():
    by_name = losses.TripletMarginLoss(distance="CosineSimilarity")
    by_class = losses.TripletMarginLoss(distance=distances.CosineSimilarity)
    assert isinstance(by_name.distance, distances.CosineSimilarity)
    assert by_name(X, Y).item() == pytest.approx(by_class(X, Y).item())


def test_reducer_is_deep_copied_and_wrapped():
    user = reducers.MeanReducer()
    loss_fn = losses.TripletMarginLoss(reducer=user)
    assert loss_fn.reducer is not user and isinstance(loss_fn.reducer, reducers.MeanReducer)
    multi = reducers.MultipleReducers({"loss": reducers.SumReducer()})
    assert losses.TripletMarginLoss(reducer=multi).reducer is multi
    reg = losses.TripletMarginLoss(embedding_regularizer=regularizers.BaseRegularizer())
    assert isinstance(reg.reducer, reducers.MultipleReducers)
    assert set(reg.reducer.reducers) == {"loss", "embedding_reg_loss"}
    assert "embedding_reg_weight" in reg._record_these


class SquaredNorm(regularizers.BaseRegularizer):
    def compute_loss(self, x):
        return {
            "loss": {
                "losses": (x**2).sum(1),
                "indices": torch.arange(len(x)),
                "reduction_type": "element",
            }
        }


def test_embedding_regularizer_term_is_added():
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (8,))
    plain = losses.ContrastiveLoss()(x, y)
    with_reg = losses.ContrastiveLoss(embedding_regularizer=SquaredNorm(), embedding_reg_weight=0.5)
    expected = plain + 0.5 * (x**2).sum(1).mean()
    torch.testing.assert_close(with_reg(x, y), expected)
    out = losses.ContrastiveLoss(
        embedding_regularizer=SquaredNorm(), reducer=reducers.DoNothingReducer()
    )(x, y)
    assert set(out) == {"pos_loss", "neg_loss", "embedding_reg_loss"}
    assert out["embedding_reg_loss"]["reduction_type"] == "already_reduced"


def test_do_nothing_returns_loss_dict():
    out = losses.ContrastiveLoss(reducer=reducers.DoNothingReducer())(X, Y)
    assert out["pos_loss"]["reduction_type"] == "pos_pair"
    a1, _p = out["pos_loss"]["indices"]
    assert len(a1) == len(out["pos_loss"]["losses"]) == 6


def test_stats_exist_only_when_collected():
    off = losses.TripletMarginLoss(collect_stats=False)
    assert getattr(off.distance, "initial_avg_query_norm", None) is None
    from deepmetric import config

    with config.collect_stats():
        on = losses.TripletMarginLoss()
    on(X, Y)
    assert on.collect_stats and on.distance.collect_stats
    assert float(on.distance.initial_avg_query_norm) > 0


class _Restricted(losses.BaseMetricLossFunction):
    """A loss that declares every restriction, to test the capability checks."""

    requires_labels = True
    supports_indices_tuple = False
    supports_ref_emb = False

    def compute_loss(self, embeddings, labels, indices_tuple, ref_emb, ref_labels):
        return {
            "loss": {
                "losses": embeddings.sum(1),
                "indices": torch.arange(len(embeddings)),
                "reduction_type": "element",
            }
        }


class _Unlabelled(_Restricted):
    requires_labels = False
    requires_labels_or_indices_tuple = False
    supports_labels = False


@pytest.mark.parametrize(
    ("loss_cls", "kwargs", "match"),
    [
        (_Restricted, dict(indices_tuple=(Y, Y, Y)), "`labels` \\(this component needs"),
        (_Restricted, dict(labels=Y, indices_tuple=(Y, Y, Y)), "no `indices_tuple`"),
        (_Restricted, dict(labels=Y, ref_emb=X.clone()), "no `ref_emb`"),
        (_Unlabelled, dict(labels=Y), "no `labels`"),
    ],
)
def test_capability_flags_are_enforced(loss_cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        loss_cls()(X, **kwargs)
    assert loss_cls()(X, **({"labels": Y} if loss_cls is _Restricted else {})).ndim == 0


def test_query_set_passed_again_as_reference_is_accepted():
    """As in PML, ref_emb/ref_labels that are the very same objects are not a separate set."""
    assert _Restricted()(X, Y, ref_emb=X, ref_labels=Y).ndim == 0
