"""Exact blockwise k-NN, ranks of positives, faiss wrappers and k-means against loop
references; ties go to the smaller reference index (faiss' order)."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from deepmetric._optional import MissingDependencyError, is_available
from deepmetric._registry import KNN
from deepmetric.distances import CosineSimilarity, LpDistance
from deepmetric.functional import clustering as C
from deepmetric.functional import retrieval as F
from deepmetric.inference.custom_knn import CustomKNN
from deepmetric.inference.kmeans import TorchKMeans
from deepmetric.inference.torch_knn import TorchKNN
from reference import retrieval as R

needs_faiss = pytest.mark.skipif(not is_available("faiss"), reason="faiss is not installed")

BLOCKS = [
    {},
    {"query_block": 3, "reference_block": 5},
    {"query_block": 1, "reference_block": 1},
    {"query_block": 50, "reference_block": 7},
    {"max_elements": 40},
]


def grid(m=60, n=None, d=3, seed=0, span=2, dtype=torch.float64):
    """Integer points: exact squared distances and many exact ties."""
    g = torch.Generator().manual_seed(seed)
    ref = torch.randint(-span, span + 1, (m, d), generator=g).to(dtype)
    if n is None:
        return ref
    return torch.randint(-span, span + 1, (n, d), generator=g).to(dtype), ref


# ---------------------------------------------------------------- knn
@pytest.mark.parametrize("blocks", BLOCKS)
@pytest.mark.parametrize("same", [False, True])
@pytest.mark.parametrize("k", [1, 4, 59])
def test_knn_equals_loop_reference_with_ties(blocks, same, k):
    if same:
        ref = grid()
        query = ref[:25]
    else:
        query, ref = grid(n=25)
    values, indices = F.knn(
        query, ref, k, distance_fn=F.squared_l2_distances, exclude_self=same, **blocks
    )
    exp_d, exp_i = R.knn(query.tolist(), ref.tolist(), k, same)
    assert indices.tolist() == exp_i
    assert values.tolist() == exp_d


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_knn_dtypes(dtype):
    query, ref = grid(n=10, dtype=dtype)
    values, indices = TorchKNN()(query, 5, ref)
    exp_d, exp_i = R.knn(query.double().tolist(), ref.double().tolist(), 5)
    assert indices.tolist() == exp_i
    assert values.double().tolist() == exp_d
    assert values.dtype == (torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype)


def test_knn_random_float_data_matches_sorting():
    g = torch.Generator().manual_seed(1)
    query, ref = torch.randn(30, 8, generator=g), torch.randn(200, 8, generator=g)
    d = F.squared_l2_distances(query, ref)
    exp_v, exp_i = d.sort(dim=1, stable=True)
    values, indices = F.knn(query, ref, 17, distance_fn=F.squared_l2_distances, query_block=7)
    assert torch.equal(indices, exp_i[:, :17])
    # another block shape may round the GEMM differently: values agree to float32 precision
    assert torch.allclose(values, exp_v[:, :17], rtol=1e-5)


def test_squared_l2_matches_cdist():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g)
    expected = torch.cdist(x, y.double()) ** 2
    assert torch.allclose(F.squared_l2_distances(x, y.double()), expected)
    # identical rows give exactly 0 (clamped), never a negative rounding error
    assert (F.squared_l2_distances(x, x).diagonal() >= 0).all()


def test_custom_knn_with_similarity_is_largest_first_ties_by_index():
    x = grid(m=40) + 0.5  # many exactly equal cosines
    unit = torch.nn.functional.normalize(x, dim=1)
    sims = (unit @ unit.T).tolist()
    values, indices = CustomKNN(CosineSimilarity())(x, 6, x, True)
    for i in range(40):
        order = sorted((j for j in range(40) if j != i), key=lambda j: (-sims[i][j], j))[:6]
        assert indices[i].tolist() == order
        assert values[i].tolist() == pytest.approx([sims[i][j] for j in order])


def test_custom_knn_with_lp_distance_and_batches():
    g = torch.Generator().manual_seed(3)
    query, ref = torch.randn(9, 5, generator=g), torch.randn(30, 5, generator=g)
    values, indices = CustomKNN(LpDistance(normalize_embeddings=False), batch_size=2)(query, 4, ref)
    exp_v, exp_i = torch.cdist(query, ref).sort(dim=1, stable=True)
    assert torch.equal(indices, exp_i[:, :4])
    assert torch.allclose(values, exp_v[:, :4], atol=1e-6)


def test_torch_knn_index_life_cycle(tmp_path):
    query, ref = grid(n=8)
    knn = TorchKNN(reset_before=False, reset_after=False)
    knn.train(ref[:30])
    knn.add(ref[30:])
    _, indices = knn(query, 5)
    assert indices.tolist() == R.knn(query.tolist(), ref.tolist(), 5)[1]
    path = str(tmp_path / "index.pt")
    knn.save(path)
    other = TorchKNN(reset_before=False, reset_after=False)
    other.load(path)
    assert torch.equal(other(query, 5)[1], indices)
    knn.reset()
    assert knn.index is None
    # a stateless index forgets the reference after the call
    stateless = TorchKNN()
    stateless(query, 3, ref)
    assert stateless.index is None


def test_registry():
    assert {"TorchKNN", "CustomKNN", "FaissKNN"} <= set(KNN.names())
    assert isinstance(KNN.build({"name": "TorchKNN", "batch_size": 4}), TorchKNN)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda q, r: TorchKNN()(q, 0, r), ValueError, "`k` to be an int >= 1"),
        (lambda q, r: TorchKNN()(q, 2.5, r), ValueError, "`k` to be an int >= 1"),
        (lambda q, r: TorchKNN()(q, 61, r), ValueError, r"`k` <= 60"),
        (lambda q, r: TorchKNN()(r, 60, r, True), ValueError, "other than the query itself"),
        (lambda q, r: TorchKNN()(q, 3), RuntimeError, "Call train"),
        (lambda q, r: TorchKNN()(q[:, :2], 3, r), ValueError, "D=3 columns"),
        (lambda q, r: TorchKNN()(q, 3, r[:0]), ValueError, "non-empty `embeddings`"),
        (lambda q, r: TorchKNN()(q[:0], 3, r), ValueError, "non-empty `query`"),
        (lambda q, r: TorchKNN()(object(), 3, r), TypeError, "`query` as a tensor"),
        (lambda q, r: TorchKNN()(q, 3, r * math.nan), ValueError, "finite"),
        (lambda q, r: TorchKNN()(r, 3, r[:5], True), ValueError, "at least len\\(query\\)"),
        (lambda q, r: TorchKNN(batch_size=0), ValueError, "`batch_size` to be None or an int"),
        (lambda q, r: TorchKNN(distance=3), TypeError, "`distance` to be a BaseDistance"),
        (lambda q, r: TorchKNN().save("x.pt"), RuntimeError, "a built index to save"),
    ],
)
def test_knn_errors(call, exc, match):
    query, ref = grid(n=8)
    with pytest.raises(exc, match=match):
        call(query, ref)


def test_adding_other_dimension_fails():
    knn = TorchKNN(reset_before=False)
    knn.train(torch.randn(4, 3))
    with pytest.raises(ValueError, match="D=3 columns like the index"):
        knn.add(torch.randn(4, 2))


def test_load_rejects_foreign_file(tmp_path):
    path = str(tmp_path / "x.pt")
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match=r"written by TorchKNN\.save"):
        TorchKNN().load(path)


def test_drop_self():
    d = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0], [1.0, 2.0, 3.0]])
    i = torch.tensor([[0, 4, 5], [3, 1, 2], [6, 7, 8]])  # row 2 lacks itself: drop the last
    dd, ii = F.drop_self(d, i)
    assert ii.tolist() == [[4, 5], [3, 2], [6, 7]]
    assert dd.tolist() == [[1.0, 2.0], [0.0, 3.0], [1.0, 2.0]]


def test_progress_bar_counts_queries(capsys):
    query, ref = grid(n=8)
    TorchKNN(progress_bar=True, batch_size=3)(query, 2, ref)
    assert "8/8" in capsys.readouterr().err


# ---------------------------------------------------------------- ranks of positives
def loop_ranks(query, ref, qid, rid, same, match=None):
    match = match or (lambda i, j: qid[i] == rid[j])
    out = []
    for i in range(len(query)):
        order = R.ranking(query, ref, i, same)
        out.append([p for p, j in enumerate(order, start=1) if match(i, j)])
    return out


def collect(gen, m):
    """Rows of valid ranks; the padding past each row's positives is larger than ``m``."""
    rows = {}
    for s, _e, ranks, num_pos in gen:
        for i in range(len(ranks)):
            rows[s + i] = ranks[i, : num_pos[i]].tolist()
            assert (ranks[i, num_pos[i] :] > m).all()
    return [rows[i] for i in sorted(rows)]


@pytest.mark.parametrize("blocks", BLOCKS)
@pytest.mark.parametrize("same", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_positive_ranks_equal_loop_reference(blocks, same, dtype):
    g = torch.Generator().manual_seed(4)
    ref = grid(m=70, dtype=dtype)
    rid = torch.randint(0, 4, (70,), generator=g)
    if same:
        query, qid = ref[:30], rid[:30]
    else:
        query, qid = grid(m=30, seed=5, dtype=dtype), torch.randint(0, 5, (30,), generator=g)
    got = collect(
        F.positive_ranks(
            query,
            ref,
            distance_fn=F.squared_l2_distances,
            query_ids=qid,
            reference_ids=rid,
            exclude_self=same,
            **blocks,
        ),
        70,
    )
    assert got == loop_ranks(query.tolist(), ref.tolist(), qid.tolist(), rid.tolist(), same)


@pytest.mark.parametrize("same", [False, True])
def test_positive_ranks_with_positive_fn(same):
    g = torch.Generator().manual_seed(6)
    ref = grid(m=50)
    rl = torch.randint(0, 3, (50, 2), generator=g)
    query, ql = (ref[:20], rl[:20]) if same else (grid(m=20, seed=7), rl[torch.arange(20) * 2])

    def fn(rows, cols):
        a, b = ql[rows].unsqueeze(1), rl[cols].unsqueeze(0)
        return (a[..., 0] == b[..., 0]) & (a[..., 1] != b[..., 1])

    got = collect(
        F.positive_ranks(
            query,
            ref,
            distance_fn=F.squared_l2_distances,
            positive_fn=fn,
            exclude_self=same,
            query_block=6,
            reference_block=9,
        ),
        50,
    )

    def match(i, j):
        return ql[i, 0] == rl[j, 0] and ql[i, 1] != rl[j, 1]

    assert got == loop_ranks(query.tolist(), ref.tolist(), None, None, same, match)


@pytest.mark.parametrize("patch", ["search", "unfolded"])
def test_positive_ranks_fallback_paths(monkeypatch, patch):
    # many duplicate points: long runs of tied positives; both internal fallbacks must agree
    if patch == "search":
        monkeypatch.setattr(F._Bins, "MAX_LOOP", 0)
    else:
        monkeypatch.setattr(F._Bins, "MAX_FOLDED", 0)
    g = torch.Generator().manual_seed(8)
    ref = grid(m=80, span=1)
    rid = torch.randint(0, 2, (80,), generator=g)
    got = collect(
        F.positive_ranks(
            ref[:30],
            ref,
            distance_fn=F.squared_l2_distances,
            query_ids=rid[:30],
            reference_ids=rid,
            exclude_self=True,
            query_block=8,
        ),
        80,
    )
    assert got == loop_ranks(ref[:30].tolist(), ref.tolist(), rid.tolist(), rid.tolist(), True)


def test_positive_ranks_random_floats_match_sorting():
    g = torch.Generator().manual_seed(9)
    query, ref = torch.randn(40, 16, generator=g), torch.randn(3000, 16, generator=g)
    qid, rid = torch.randint(0, 6, (40,), generator=g), torch.randint(0, 6, (3000,), generator=g)
    _, order = F.squared_l2_distances(query, ref).sort(dim=1, stable=True)
    hits = qid.unsqueeze(1) == rid[order]
    exp = F.ranks_from_hits(hits)
    (_, _, ranks, num_pos), *_ = F.positive_ranks(
        query, ref, distance_fn=F.squared_l2_distances, query_ids=qid, reference_ids=rid
    )
    assert torch.equal(num_pos, hits.sum(1))
    assert torch.equal(torch.where(ranks > 3000, 0, ranks), torch.where(exp > 3000, 0, exp))


def test_positive_ranks_needs_ids_or_fn():
    with pytest.raises(ValueError, match="`query_ids` and `reference_ids`, or `positive_fn`"):
        next(F.positive_ranks(grid(m=3), grid(m=3), distance_fn=F.squared_l2_distances))


def test_positive_ranks_exclude_self_needs_matching_ids():
    ids = torch.tensor([0, 1, 1])
    with pytest.raises(ValueError, match="`reference_ids\\[:N\\]` equal to `query_ids`"):
        next(
            F.positive_ranks(
                grid(m=3),
                grid(m=3),
                distance_fn=F.squared_l2_distances,
                query_ids=ids,
                reference_ids=ids.flip(0),
                exclude_self=True,
            )
        )


def test_ranks_from_hits():
    hits = torch.tensor([[True, False, True], [False, False, False], [False, True, False]])
    assert F.ranks_from_hits(hits).tolist() == [[1, 3], [4, 4], [2, 4]]


# ---------------------------------------------------------------- faiss
@needs_faiss
@pytest.mark.needs_faiss
@pytest.mark.parametrize("same", [False, True])
def test_faiss_knn_equals_torch_knn_including_ties(same):
    from deepmetric.inference.faiss_knn import FaissKNN

    ref = grid(m=300, d=4, dtype=torch.float32)
    query = ref[:120] if same else grid(m=120, seed=11, d=4, dtype=torch.float32)
    for k in (1, 7, 299):
        fd, fi = FaissKNN()(query, k, ref, same)
        td, ti = TorchKNN()(query, k, ref, same)
        assert torch.equal(fi, ti)
        assert torch.equal(fd, td)


@needs_faiss
@pytest.mark.needs_faiss
def test_faiss_knn_life_cycle_and_errors(tmp_path):
    from deepmetric.inference.faiss_knn import FaissKNN

    query, ref = grid(n=8, dtype=torch.float32)
    knn = FaissKNN(reset_before=False, reset_after=False)
    knn.train(ref[:30])
    knn.add(ref[30:])
    path = str(tmp_path / "index.faiss")
    knn.save(path)
    other = FaissKNN(reset_before=False, reset_after=False)
    other.load(path)
    assert torch.equal(other(query, 4)[1], TorchKNN()(query, 4, ref)[1])
    with pytest.raises(TypeError, match="`gpus` as a list or tuple"):
        FaissKNN(gpus=0)
    with pytest.raises(ValueError, match="at least one GPU id"):
        FaissKNN(gpus=[])
    with pytest.raises(RuntimeError, match="Call train"):
        FaissKNN()(query, 3)
    with pytest.raises(ValueError, match="D=3 columns like the index"):
        knn.add(torch.randn(2, 5))


@needs_faiss
@pytest.mark.needs_faiss
def test_faiss_kmeans():
    from deepmetric.inference.faiss_kmeans import FaissKMeans

    labels = torch.arange(90) % 3
    x = torch.eye(3)[labels] * 30 + torch.randn(90, 3)
    clusters = FaissKMeans(niter=20, seed=1)(x, 3)
    assert clusters.dtype == torch.long and clusters.shape == (90,)
    assert len({(int(a), int(b)) for a, b in zip(labels, clusters, strict=True)}) == 3
    with pytest.raises(ValueError, match="`nmb_clusters` to be an int >= 1"):
        FaissKMeans()(x, 0)


def test_missing_faiss_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    from deepmetric.inference.faiss_kmeans import FaissKMeans
    from deepmetric.inference.faiss_knn import FaissKNN

    for cls in (FaissKNN, FaissKMeans):
        with pytest.raises(MissingDependencyError, match=r"pip install 'deepmetric\[faiss\]'"):
            cls()


# ---------------------------------------------------------------- k-means
def blobs(n=300, k=4, d=5, seed=0, spread=10.0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    centers = torch.randn(k, d, generator=g) * spread
    return centers[labels] + torch.randn(n, d, generator=g), labels


def test_torch_kmeans_recovers_blobs_deterministically():
    x, labels = blobs()
    a, b = TorchKMeans(seed=3)(x, 4), TorchKMeans(seed=3)(x, 4)
    assert torch.equal(a, b)
    pairs = {(int(p), int(q)) for p, q in zip(labels, a, strict=True)}
    assert len(pairs) == 4


def test_torch_kmeans_inertia_close_to_sklearn():
    from sklearn.cluster import KMeans

    x, _ = blobs(n=600, k=8, spread=3.0)
    _, _, inertia, _ = C.kmeans(x.double(), 8, generator=torch.Generator().manual_seed(0))
    sk = KMeans(8, n_init=1, random_state=0).fit(x.double().numpy()).inertia_
    assert float(inertia) <= sk * 1.05


def test_kmeans_plus_plus_seeds_distinct_points():
    x, _ = blobs(n=50, k=5)
    seeds = C.kmeans_plus_plus(x, 5, generator=torch.Generator().manual_seed(0))
    assert len(torch.unique(seeds, dim=0)) == 5


def test_kmeans_moves_an_emptied_cluster():
    x = torch.tensor([[0.0], [0.1], [10.0], [10.1]])
    init = torch.tensor([[0.0], [100.0]])  # the second centre attracts nobody at first
    centroids, labels, _, _ = C.kmeans(x, 2, init=init)
    assert sorted(torch.bincount(labels).tolist()) == [2, 2]
    assert sorted(centroids.squeeze(1).tolist()) == pytest.approx([0.05, 10.05])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x: TorchKMeans(max_iter=0), "`max_iter` to be an int >= 1"),
        (lambda x: TorchKMeans(tol=-1.0), "`tol` >= 0"),
        (lambda x: TorchKMeans()(x, 0), "`nmb_clusters` to be an int >= 1"),
        (lambda x: TorchKMeans()(x, 500), "`nmb_clusters` <= the number of points"),
    ],
)
def test_kmeans_errors(call, match):
    x, _ = blobs(n=20)
    with pytest.raises(ValueError, match=match):
        call(x)
