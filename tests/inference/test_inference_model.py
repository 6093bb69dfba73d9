"""InferenceModel and MatchFinder: embeddings, index building, search, matching, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmetric._optional import is_available
from deepmetric.distances import CosineSimilarity, LpDistance
from deepmetric.inference.inference_model import InferenceModel
from deepmetric.inference.match_finder import MatchFinder
from deepmetric.inference.torch_knn import TorchKNN


class Scale(torch.nn.Module):
    """A deterministic 'trunk': multiplies by a fixed matrix."""

    def __init__(self, d: int = 4) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.eye(d) * 2)

    def forward(self, x):
        return x @ self.weight


class Tokens(torch.nn.Module):
    """A trunk taking a list of strings (inputs need not be tensors)."""

    def forward(self, words):
        return torch.tensor([[float(len(w)), 1.0] for w in words])


def data(n=20, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g)


def model(**kwargs):
    kwargs.setdefault("data_device", "cpu")
    return InferenceModel(Scale(), **kwargs)


def test_embeddings_are_normalised_in_eval_mode_without_grad():
    m = model()
    m.trunk.train()
    emb = m.get_embeddings(data())
    assert not m.trunk.training
    assert not emb.requires_grad
    assert torch.allclose(emb.norm(dim=1), torch.ones(20))
    raw = model(normalize_embeddings=False).get_embeddings(data())
    assert torch.allclose(raw, data() * 2)


def test_embeddings_from_tensor_list_and_dataset():
    x = data(10)
    m = model()
    full = m.get_embeddings(x)
    assert torch.allclose(m.get_embeddings_from_tensor_or_dataset(x, 3), full)
    assert torch.allclose(m.get_embeddings_from_tensor_or_dataset(list(x), 4), full)
    ds = torch.utils.data.TensorDataset(x, torch.arange(10))
    assert torch.allclose(m.get_embeddings_from_tensor_or_dataset(ds, 4), full)


def test_dtype_and_non_tensor_inputs():
    m = model(dtype=torch.float64)
    m.trunk = m.trunk.double()
    assert m.get_embeddings(data(3).float()).dtype == torch.float64
    words = InferenceModel(Tokens(), data_device="cpu")
    emb = words.get_embeddings(["a", "abc"])
    assert emb.shape == (2, 2)


def test_knn_train_add_search_and_save_load(tmp_path):
    x = data(30)
    m = model()
    m.train_knn(x[:20], batch_size=7)
    m.add_to_knn(x[20:], batch_size=7)
    distances, indices = m.get_nearest_neighbors(x[:5], k=3)
    emb = m.get_embeddings(x)
    exp_d, exp_i = torch.cdist(emb[:5], emb).pow(2).sort(dim=1, stable=True)
    assert torch.equal(indices, exp_i[:, :3])
    assert torch.allclose(distances, exp_d[:, :3], atol=1e-5)
    assert indices[:, 0].tolist() == list(range(5))  # each query finds itself first
    path = str(tmp_path / "knn.pt")
    m.save_knn_func(path)
    other = model()
    other.load_knn_func(path)
    assert torch.equal(other.get_nearest_neighbors(x[:5], k=3)[1], indices)


@pytest.mark.needs_faiss
@pytest.mark.skipif(not is_available("faiss"), reason="faiss is not installed")
def test_faiss_index_in_inference_model(tmp_path):
    from deepmetric.inference.faiss_knn import FaissKNN

    x = data(30)
    m = model(knn_func=FaissKNN(reset_before=False, reset_after=False))
    m.train_knn(x)
    _, indices = m.get_nearest_neighbors(x[:5], k=4)
    ref = model()
    ref.train_knn(x)
    assert torch.equal(indices, ref.get_nearest_neighbors(x[:5], k=4)[1])
    path = str(tmp_path / "knn.faiss")
    m.save_knn_func(path)
    other = model(knn_func=FaissKNN(reset_before=False, reset_after=False))
    other.load_knn_func(path)
    assert torch.equal(other.get_nearest_neighbors(x[:5], k=4)[1], indices)


def test_matches_with_default_cosine_threshold():
    x = torch.tensor([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0]])
    m = InferenceModel(torch.nn.Identity(), data_device="cpu")
    matches = m.get_matches(x)
    assert isinstance(matches, np.ndarray) and matches.dtype == bool
    assert matches.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    assert m.get_matches(x, return_tuples=True) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2)]
    assert m.get_matches(x[:1], ref=x[2:], threshold=-1.0).tolist() == [[True]]
    assert m.is_match(x[:1], x[1:2]) is True
    assert m.is_match(x[:2], x[1:]).tolist() == [True, False]


def test_match_finder_distance_and_threshold_rules():
    mf = MatchFinder(LpDistance(normalize_embeddings=False), threshold=1.5)
    x = torch.tensor([[0.0], [1.0], [3.0]])
    assert mf.get_matching_pairs(x).tolist() == [
        [True, True, False],
        [True, True, False],
        [False, False, True],
    ]
    assert mf.get_matching_pairs(x, threshold=5.0).all()
    assert mf.is_match(x[:2], x[1:]).tolist() == [True, False]
    assert MatchFinder("CosineSimilarity", 0.5).distance.is_inverted
    assert MatchFinder(CosineSimilarity).threshold is None
    assert mf.operate_on_emb(lambda a, b: a is b, x) is True


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda m: m.get_nearest_neighbors(data(2), 1), RuntimeError, "Call train_knn"),
        (lambda m: m.train_knn("abc"), TypeError, "a tensor, a list or a torch Dataset"),
        (lambda m: m.train_knn(data(3), batch_size=0), ValueError, "`batch_size` to be an int"),
        (lambda m: m.train_knn([]), ValueError, "at least one input"),
        (
            lambda m: MatchFinder(CosineSimilarity()).is_match(data(1), data(1)),
            ValueError,
            "threshold",
        ),
        (lambda m: MatchFinder(3), TypeError, "`distance` to be a BaseDistance"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call(model())


def test_default_index_is_exact_torch_knn():
    m = model()
    assert isinstance(m.knn_func, TorchKNN)
    assert not m.knn_func.reset_before and not m.knn_func.reset_after
