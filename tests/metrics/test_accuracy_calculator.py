"""AccuracyCalculator: hand-computed cases, loop references for every metric and option,
custom metrics, the v1 keyword, per-class tables and bad input."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_mutual_info_score, ndcg_score, normalized_mutual_info_score

from deepmetric._registry import METRICS
from deepmetric.inference.torch_knn import TorchKNN
from deepmetric.metrics.accuracy_calculator import AccuracyCalculator
from deepmetric.metrics.per_class_table import PerClassTable
from reference import retrieval as R

KNN_METRICS = [
    "mean_average_precision",
    "mean_average_precision_at_r",
    "mean_reciprocal_rank",
    "precision_at_1",
    "r_precision",
]
EXTRAS = ["precision_at_2", "recall_at_1", "recall_at_3", "ndcg", "ndcg_at_2"]


def calc(**kwargs):
    kwargs.setdefault("device", "cpu")
    return AccuracyCalculator(**kwargs)


def knn_only(**kwargs):
    return calc(exclude=("NMI", "AMI"), **kwargs)


# ---------------------------------------------------------------- a case computed by hand
# Reference points on a line at 0..4 with labels A B A A B; queries at 0.1 (A), 3.9 (B), 2.1 (B).
# Rankings: q0 -> A B A A B, q1 -> B A A B A, q2 -> A A B B A.
REF = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]], dtype=torch.float64)
REF_LABELS = torch.tensor([0, 1, 0, 0, 1])
QUERY = torch.tensor([[0.1], [3.9], [2.1]], dtype=torch.float64)
QUERY_LABELS = torch.tensor([0, 1, 1])
HAND = {
    # per query: q0 (R=3), q1 (R=2), q2 (R=2)
    "precision_at_1": (1, 1, 0),
    "r_precision": (2 / 3, 1 / 2, 0),
    "mean_average_precision_at_r": ((1 + 2 / 3) / 3, 1 / 2, 0),
    "mean_average_precision": ((1 + 2 / 3 + 3 / 4) / 3, (1 + 2 / 4) / 2, (1 / 3 + 2 / 4) / 2),
    "mean_reciprocal_rank": (1, 1, 1 / 3),
    "precision_at_2": (1 / 2, 1 / 2, 0),
    "recall_at_1": (1, 1, 0),
    "recall_at_3": (1, 1, 1),
}


@pytest.mark.parametrize("name", list(HAND))
def test_hand_computed_mean(name):
    include = () if name in KNN_METRICS else (name,)
    out = knn_only(include=include).get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS)
    assert out[name] == pytest.approx(sum(HAND[name]) / 3, abs=1e-12)


@pytest.mark.parametrize("name", list(HAND))
def test_hand_computed_per_class_and_avg_of_avgs(name):
    include = () if name in KNN_METRICS else (name,)
    v = HAND[name]
    per_class = [v[0], (v[1] + v[2]) / 2]  # class 0: q0; class 1: q1, q2
    out = knn_only(include=include, return_per_class=True).get_accuracy(
        QUERY, QUERY_LABELS, REF, REF_LABELS
    )
    assert out[name] == pytest.approx(per_class, abs=1e-12)
    out = knn_only(include=include, avg_of_avgs=True).get_accuracy(
        QUERY, QUERY_LABELS, REF, REF_LABELS
    )
    assert out[name] == pytest.approx(sum(per_class) / 2, abs=1e-12)


def test_hand_computed_ndcg_matches_sklearn():
    out = knn_only(include=("ndcg", "ndcg_at_2")).get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS)
    relevance = (QUERY_LABELS[:, None] == REF_LABELS[None]).double().numpy()
    scores = -torch.cdist(QUERY, REF).numpy()  # no ties in this case
    assert out["ndcg"] == pytest.approx(ndcg_score(relevance, scores), abs=1e-12)
    assert out["ndcg_at_2"] == pytest.approx(ndcg_score(relevance, scores, k=2), abs=1e-12)


def test_hand_computed_small_k():
    # k=2: R' = min(R, 2); MAP divides by R all the same (PML's definition)
    out = knn_only(k=2).get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS)
    assert out["r_precision"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert out["mean_average_precision_at_r"] == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)
    assert out["mean_average_precision"] == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)
    assert out["mean_reciprocal_rank"] == pytest.approx((1 + 1 + 0) / 3)


def test_hand_computed_same_source_and_lone():
    # points 0, 1, 5 with labels 0, 0, 1: point 2 is lone (only itself in class 1)
    x = torch.tensor([[0.0], [1.0], [5.0]])
    out = knn_only().get_accuracy(x, torch.tensor([0, 0, 1]))
    # queries 0 and 1: the other class-0 point is the nearest -> everything 1
    assert all(out[name] == 1.0 for name in KNN_METRICS)
    out = knn_only(return_per_class=True).get_accuracy(x, torch.tensor([0, 0, 1]))
    assert out["precision_at_1"] == [1.0]  # the lone class is left out


def test_all_lone_gives_nan_and_warns(caplog):
    x = torch.randn(4, 3)
    with caplog.at_level(logging.WARNING):
        out = knn_only().get_accuracy(x, torch.arange(4))
    assert all(math.isnan(out[name]) for name in KNN_METRICS)
    assert "None of the query labels are in the reference set" in caplog.text
    out = knn_only(return_per_class=True).get_accuracy(x, torch.arange(4))
    assert all(len(v) == 4 and all(math.isnan(t) for t in v) for v in out.values())


# ---------------------------------------------------------------- against the loop reference
def grid_data(n=40, m=60, classes=4, d=3, seed=0, dtype=torch.float64, lone=True):
    """Clustered points on a coarse grid: exact distances with many exact ties."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, d, generator=g) * 1.5
    rl = torch.randint(0, classes, (m,), generator=g)
    ref = torch.round(centers[rl] + torch.randn(m, d, generator=g))
    ql = torch.randint(0, classes + int(lone), (n,), generator=g)
    query = torch.round(centers[ql.clamp(max=classes - 1)] + torch.randn(n, d, generator=g))
    return query.to(dtype), ql, ref.to(dtype), rl


def expected(query, ql, ref, rl, same, k, mode, names):
    rows = R.per_query(query.tolist(), ql.tolist(), ref.tolist(), rl.tolist(), same, k)
    return {name: R.aggregate(rows, ql.tolist(), name, mode) for name in names}


def close(a, b, tol=1e-9):
    if isinstance(b, list):
        return (
            isinstance(a, list)
            and len(a) == len(b)
            and all(close(x, y) for x, y in zip(a, b, strict=True))
        )
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


@pytest.mark.parametrize("same", [False, True])
@pytest.mark.parametrize("k", [None, "max_bin_count", 3])
@pytest.mark.parametrize("mode", ["mean", "avg_of_avgs", "per_class"])
def test_matches_loop_reference(same, k, mode):
    query, ql, ref, rl = grid_data()
    include = tuple(KNN_METRICS + EXTRAS)
    calculator = knn_only(
        include=include,
        k=k,
        avg_of_avgs=mode == "avg_of_avgs",
        return_per_class=mode == "per_class",
    )
    if same:
        out = calculator.get_accuracy(ref, rl)
        query, ql = ref, rl
    else:
        out = calculator.get_accuracy(query, ql, ref, rl)
    counts = torch.bincount(rl)
    k_eff = {None: None, 3: 3, "max_bin_count": int(counts.max()) - int(same)}[k]
    exp = expected(query, ql, ref, rl, same, k_eff, mode, include)
    for name in include:
        assert close(out[name], exp[name]), (name, out[name], exp[name])


@pytest.mark.parametrize(
    "knn_func",
    [
        TorchKNN(batch_size=7, reference_batch_size=11),
        TorchKNN(batch_size=1, reference_batch_size=1),
        TorchKNN(max_block_elements=64),
        lambda q, k, r, same: TorchKNN()(q, k, r, same),  # a foreign knn_func: neighbour lists
    ],
    ids=["blocks", "tiny_blocks", "small_budget", "foreign"],
)
def test_block_sizes_and_knn_funcs_agree(knn_func):
    query, ql, ref, rl = grid_data(seed=3)
    exp = knn_only(include=tuple(KNN_METRICS + EXTRAS)).get_accuracy(query, ql, ref, rl)
    out = knn_only(include=tuple(KNN_METRICS + EXTRAS), knn_func=knn_func).get_accuracy(
        query, ql, ref, rl
    )
    for name, value in exp.items():
        assert out[name] == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_on_exact_data(dtype):
    query, ql, ref, rl = grid_data(seed=4)
    exp = expected(query, ql, ref, rl, False, None, "mean", KNN_METRICS)
    out = knn_only().get_accuracy(query.to(dtype), ql, ref.to(dtype), rl)
    for name in KNN_METRICS:
        assert out[name] == pytest.approx(exp[name], abs=1e-9)


def test_reference_containing_the_queries_first():
    query, ql, ref, rl = grid_data(seed=5, lone=False)
    both, both_labels = torch.cat([query, ref]), torch.cat([ql, rl])
    out = knn_only().get_accuracy(query, ql, both, both_labels, ref_includes_query=True)
    rows = R.per_query(query.tolist(), ql.tolist(), both.tolist(), both_labels.tolist(), True, None)
    for name in KNN_METRICS:
        assert out[name] == pytest.approx(R.aggregate(rows, ql.tolist(), name), abs=1e-12)


def test_label_comparison_fn_matches_reference():
    query, ql, ref, rl = grid_data(seed=6)
    g = torch.Generator().manual_seed(0)
    ql2 = torch.stack([ql, torch.randint(0, 2, (len(ql),), generator=g)], 1)
    rl2 = torch.stack([rl, torch.randint(0, 2, (len(rl),), generator=g)], 1)

    def fn(x, y):
        return (x[..., 0] == y[..., 0]) & (x[..., 1] != y[..., 1])

    out = knn_only(label_comparison_fn=fn).get_accuracy(query, ql2, ref, rl2)
    rows = R.per_query(
        query.tolist(),
        ql2.tolist(),
        ref.tolist(),
        rl2.tolist(),
        False,
        None,
        match=lambda a, b: a[0] == b[0] and a[1] != b[1],
    )
    for name in KNN_METRICS:
        assert close(out[name], R.aggregate(rows, [tuple(x) for x in ql2.tolist()], name))


def test_multidimensional_labels_compare_whole_rows():
    query, ql, ref, rl = grid_data(seed=7)
    ql2, rl2 = torch.stack([ql, ql * 0], 1), torch.stack([rl, rl * 0], 1)
    out = knn_only().get_accuracy(query, ql2, ref, rl2)
    exp = knn_only().get_accuracy(query, ql, ref, rl)
    assert out == pytest.approx(exp)


def test_labels_stay_integers_above_2_pow_24():
    query, ql, ref, rl = grid_data(seed=8, classes=2, lone=False)
    big = 1 << 24  # 2**24 and 2**24 + 1 are one float32 value
    out = knn_only().get_accuracy(query, ql + big, ref, rl + big)
    exp = knn_only().get_accuracy(query, ql, ref, rl)
    assert out == pytest.approx(exp)
    assert out["precision_at_1"] < 1.0  # a float cast would merge the classes (all 1.0)


def test_numpy_inputs():
    query, ql, ref, rl = grid_data(seed=9)
    out = knn_only().get_accuracy(query.numpy(), ql.numpy(), ref.numpy(), rl.numpy())
    assert out == pytest.approx(knn_only().get_accuracy(query, ql, ref, rl))


def test_mean_reciprocal_rank_alone_works():
    out = calc(include=("mean_reciprocal_rank",)).get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS)
    assert out["mean_reciprocal_rank"] == pytest.approx(7 / 9)


def test_k_larger_than_reference_is_capped():
    out = knn_only(k=50).get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS)
    assert out == pytest.approx(knn_only().get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS))


def test_small_k_warns_for_r_metrics(caplog):
    with caplog.at_level(logging.WARNING):
        knn_only(k=1).get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS)
    assert "less than the max bin count" in caplog.text


# ---------------------------------------------------------------- clustering metrics
def test_nmi_ami_use_the_kmeans_func():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    clusters = torch.tensor([1, 1, 0, 0, 0, 2])
    seen = {}

    def kmeans(x, n):
        seen["n"] = n
        return clusters

    out = calc(include=("NMI", "AMI"), kmeans_func=kmeans).get_accuracy(torch.randn(6, 2), labels)
    assert seen["n"] == 3
    assert out["NMI"] == pytest.approx(normalized_mutual_info_score(labels, clusters))
    assert out["AMI"] == pytest.approx(adjusted_mutual_info_score(labels, clusters))


def test_default_kmeans_recovers_separated_clusters():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    x = torch.eye(3)[labels] * 20 + torch.randn(60, 3, generator=g)
    out = calc(include=("NMI", "AMI")).get_accuracy(x, labels)
    assert out == {"NMI": pytest.approx(1.0), "AMI": pytest.approx(1.0)}


# ---------------------------------------------------------------- extension points
class WithCustomMetrics(AccuracyCalculator):
    def calculate_knn_width(self, knn_labels, query_labels, **kwargs):
        return float(knn_labels.shape[1])

    def calculate_num_clusters(self, cluster_labels, **kwargs):
        return len(torch.unique(cluster_labels))

    def calculate_constant(self, **kwargs):
        return 42.0

    def requires_knn(self):
        return [*super().requires_knn(), "knn_width"]

    def requires_clustering(self):
        return [*super().requires_clustering(), "num_clusters"]


def test_custom_metrics_get_their_inputs():
    c = WithCustomMetrics(device="cpu", k="max_bin_count")
    assert c.get_curr_metrics()[:3] == ["AMI", "NMI", "constant"]  # PML: dir() order
    out = c.get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS)
    assert out["knn_width"] == 3.0
    assert out["num_clusters"] == 2
    assert out["constant"] == 42.0
    exp = knn_only(k="max_bin_count").get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS)
    for name in KNN_METRICS:
        assert out[name] == pytest.approx(exp[name])


class UndeclaredNeighbourMetric(AccuracyCalculator):
    """Uses knn_labels without listing itself in requires_knn(): works as in PML whenever a
    k-NN metric is selected too."""

    def calculate_first_label(self, knn_labels, **kwargs):
        return int(knn_labels[0, 0])


def test_metric_reading_neighbours_without_declaring_it():
    c = UndeclaredNeighbourMetric(device="cpu", exclude=("NMI", "AMI"))
    out = c.get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS)
    assert out["first_label"] == 0  # q0's nearest reference is point 0 (label 0)
    assert out["precision_at_1"] == pytest.approx(2 / 3)


class OverriddenPrecision(AccuracyCalculator):
    def calculate_precision_at_1(self, knn_labels, query_labels, **kwargs):
        return float((knn_labels[:, 0] == query_labels).double().mean()) + 10


def test_overridden_builtin_receives_neighbour_labels():
    out = OverriddenPrecision(device="cpu", exclude=("NMI", "AMI")).get_accuracy(
        QUERY, QUERY_LABELS, REF, REF_LABELS
    )
    assert out["precision_at_1"] == pytest.approx(10 + 2 / 3)
    assert out["r_precision"] == pytest.approx(7 / 18)


def test_builtin_called_directly_with_neighbour_labels():
    c = knn_only()
    knn_labels = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    value = c.calculate_precision_at_1(
        knn_labels=knn_labels,
        query_labels=QUERY_LABELS,
        reference_labels=REF_LABELS,
        ref_includes_query=False,
    )
    assert value == pytest.approx(2 / 3)


def test_include_exclude_at_call_time():
    c = calc()
    out = c.get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS, include=("precision_at_1", "NMI"))
    assert list(out) == ["NMI", "precision_at_1"]
    assert c.get_curr_metrics() == ["NMI", "precision_at_1"]
    out = c.get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS, exclude=("NMI", "AMI"))
    assert list(out) == KNN_METRICS
    assert c.description() == ""
    assert calc(avg_of_avgs=True).description() == "avg_of_avgs"


def test_v1_keyword_is_deprecated_but_works():
    c = knn_only()
    with pytest.warns(DeprecationWarning, match="ref_includes_query"):
        out = c.get_accuracy(
            REF, REF_LABELS, REF, REF_LABELS, embeddings_come_from_same_source=True
        )
    assert out == pytest.approx(c.get_accuracy(REF, REF_LABELS))


def test_registered():
    assert METRICS.get("AccuracyCalculator") is AccuracyCalculator
    built = METRICS.build({"name": "AccuracyCalculator", "k": "max_bin_count", "device": "cpu"})
    assert built.k == "max_bin_count"


def test_progress_bar(capsys):
    c = knn_only(knn_func=TorchKNN(progress_bar=True))
    c.get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS)
    assert "AccuracyCalculator" in capsys.readouterr().err


# ---------------------------------------------------------------- per-class table
def test_per_class_table():
    query, ql, ref, rl = grid_data(seed=10)
    c = knn_only(include=("precision_at_1", "r_precision", "recall_at_2"))
    table = c.per_class_table(query, ql, ref, rl)
    assert isinstance(table, PerClassTable)
    per_class = knn_only(
        include=("precision_at_1", "r_precision", "recall_at_2"), return_per_class=True
    ).get_accuracy(query, ql, ref, rl)
    lone = ~torch.isin(torch.unique(ql), rl)
    assert table.labels == torch.unique(ql).tolist()
    assert table.num_queries == torch.bincount(ql).tolist()
    assert table.metrics == ["precision_at_1", "r_precision", "recall_at_2"]
    for name in table.metrics:
        kept = [v for v, is_lone in zip(table[name], lone.tolist(), strict=True) if not is_lone]
        assert kept == pytest.approx(per_class[name])
        assert all(
            math.isnan(v) for v, is_lone in zip(table[name], lone.tolist(), strict=True) if is_lone
        )
    assert table.num_relevant == [int((rl == lab).sum()) for lab in table.labels]
    md = table.to_markdown()
    assert md.splitlines()[0].startswith("| label | num_queries | num_relevant | precision_at_1")
    assert len(md.splitlines()) == 2 + len(table)
    assert table.rows()[0]["label"] == table.labels[0]
    assert set(table.to_dict()) == {"label", "num_queries", "num_relevant", *table.metrics}


def test_per_class_table_needs_a_knn_metric():
    with pytest.raises(ValueError, match="at least one k-NN metric"):
        calc(include=("NMI",)).per_class_table(QUERY, QUERY_LABELS, REF, REF_LABELS)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"include": "NMI"}, TypeError, "`include` as a tuple or list"),
        ({"exclude": {"NMI"}}, TypeError, "`exclude` as a tuple or list"),
        ({"include": ("precision_at_l",)}, ValueError, "Did you mean 'precision_at_1'"),
        ({"avg_of_avgs": True, "return_per_class": True}, ValueError, "at most one"),
        ({"k": 0}, ValueError, "`k` to be an int >= 1"),
        ({"k": -3}, ValueError, "`k` to be an int >= 1"),
        ({"k": True}, ValueError, "`k` to be an int >= 1"),
        ({"k": "all"}, ValueError, "`k` to be an int >= 1"),
        ({"label_comparison_fn": torch.eq}, NotImplementedError, "clustering metrics"),
    ],
)
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        calc(**kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "match"),
    [
        ((QUERY, QUERY_LABELS, torch.randn(5, 2), REF_LABELS), {}, ValueError, "D=1 columns"),
        ((QUERY, QUERY_LABELS[:2], REF, REF_LABELS), {}, ValueError, "one `query_labels` entry"),
        ((QUERY, QUERY_LABELS, REF, REF_LABELS[:4]), {}, ValueError, "one `reference_labels`"),
        ((QUERY, QUERY_LABELS, REF[:0], REF_LABELS[:0]), {}, ValueError, "non-empty `reference`"),
        ((QUERY[:0], QUERY_LABELS[:0], REF, REF_LABELS), {}, ValueError, "non-empty `query`"),
        ((QUERY[:, 0], QUERY_LABELS, REF, REF_LABELS), {}, ValueError, r"shape \(N, D\)"),
        ((QUERY * math.nan, QUERY_LABELS, REF, REF_LABELS), {}, ValueError, "finite `query`"),
        ((QUERY, QUERY_LABELS, REF), {}, ValueError, "`reference_labels` with `reference`"),
        ((QUERY, QUERY_LABELS, None, REF_LABELS), {}, ValueError, "without `reference`"),
        ((QUERY, QUERY_LABELS, REF, REF_LABELS, True), {}, ValueError, "first len\\(query\\)"),
        (("abc", QUERY_LABELS, REF, REF_LABELS), {}, TypeError, "torch.Tensor or numpy"),
        ((QUERY, torch.tensor(1), REF, REF_LABELS), {}, ValueError, "a scalar"),
        ((QUERY, QUERY_LABELS, REF, REF_LABELS), {"include": ("bogus",)}, ValueError, "bogus"),
        (
            (QUERY, QUERY_LABELS, REF, REF_LABELS),
            {"include": ("recall_at_9",)},
            ValueError,
            "`k` >= 9",
        ),
    ],
)
def test_get_accuracy_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        knn_only().get_accuracy(*args, **kwargs)


def test_excluded_metric_cannot_be_included_later():
    with pytest.raises(ValueError, match="'NMI'"):
        knn_only().get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS, include=("NMI",))


def test_label_comparison_fn_of_wrong_shape():
    c = knn_only(label_comparison_fn=lambda a, b: torch.tensor(True))
    with pytest.raises(ValueError, match="`label_comparison_fn` to return a tensor of shape"):
        c.get_accuracy(QUERY, QUERY_LABELS, REF, REF_LABELS)


def test_builtin_called_directly_without_inputs():
    with pytest.raises(TypeError, match="`knn_labels`"):
        knn_only().calculate_r_precision(query_labels=QUERY_LABELS)


def test_reference_labels_of_other_shape_with_ref_includes_query():
    with pytest.raises(ValueError, match="first len\\(query\\)"):
        knn_only().get_accuracy(
            QUERY, QUERY_LABELS, QUERY, np.stack([QUERY_LABELS.numpy()] * 2, 1), True
        )
