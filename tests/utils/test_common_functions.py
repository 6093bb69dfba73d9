"""c_f guards (from deepmetric._validation) and small classes."""

from __future__ import annotations

import pickle

import pytest
import torch

from deepmetric import _validation as V
from deepmetric.utils import common_functions as c_f


def test_check_shapes():
    emb = torch.randn(3, 2)
    c_f.check_shapes(emb, None)
    c_f.check_shapes(emb, torch.tensor([0, 1, 0]))
    c_f.check_shapes(emb, torch.tensor([0.0, 1.0, 0.0]))  # values are not this check's business
    with pytest.raises(
        ValueError, match=r"deepmetric: expected `labels` of shape \(N,\) with N=3 .*got \(2,\)"
    ):
        c_f.check_shapes(emb, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"got \(3, 1\)"):
        c_f.check_shapes(emb, torch.tensor([[0], [1], [2]]))
    with pytest.raises(
        TypeError, match=r"MyLoss: expected `labels` to be a torch.Tensor, got list"
    ):
        V.check_shapes(emb, [0, 1, 2], owner="MyLoss")


def test_guards_pass_on_valid_input():
    emb, labels = torch.randn(2, 2), torch.tensor([0, 1])
    c_f.labels_required(labels)
    c_f.labels_or_indices_tuple_required(None, (labels, labels, labels))
    c_f.labels_or_indices_tuple_required(labels, None)
    c_f.ref_not_supported(emb, labels, emb, labels)
    c_f.indices_tuple_not_supported(None)
    c_f.labels_not_supported(None, None)


def test_guards_raise():
    emb, labels = torch.randn(2, 2), torch.tensor([0, 1])
    with pytest.raises(
        ValueError,
        match=r"NCALoss: expected `labels` \(this component needs class labels\), got None",
    ):
        V.labels_required(None, owner="NCALoss")
    with pytest.raises(
        ValueError, match=r"deepmetric: expected `labels` or `indices_tuple`, got neither"
    ):
        c_f.labels_or_indices_tuple_required(None, None)
    with pytest.raises(
        ValueError, match=r"expected no `ref_emb`/`ref_labels`.*got a separate reference set"
    ):
        c_f.ref_not_supported(emb, labels, emb.clone(), labels)
    with pytest.raises(ValueError, match=r"got a separate reference set"):
        c_f.ref_not_supported(emb, labels, emb, labels.clone())
    with pytest.raises(
        ValueError,
        match=r"expected no `indices_tuple` \(not supported here\), got an indices_tuple",
    ):
        c_f.indices_tuple_not_supported((labels, labels, labels))
    for lab, ref in ((labels, None), (None, labels)):
        with pytest.raises(ValueError, match=r"expected no `labels`/`ref_labels`"):
            c_f.labels_not_supported(lab, ref)


def test_torch_init_wrapper():
    init = c_f.TorchInitWrapper(torch.nn.init.constant_, val=3.0)
    w = torch.zeros(2, 2)
    init(w)
    assert bool((w == 3).all())
    assert init.kwargs == {"val": 3.0} and init.init_func is torch.nn.init.constant_
    assert repr(init) == "TorchInitWrapper(constant_, val=3.0)"
    assert repr(c_f.TorchInitWrapper(torch.nn.init.zeros_)) == "TorchInitWrapper(zeros_)"
    restored = pickle.loads(pickle.dumps(init))
    assert restored.kwargs == init.kwargs


def test_embedding_dataset():
    emb, labels = torch.randn(3, 2), torch.tensor([4, 5, 6])
    ds = c_f.EmbeddingDataset(emb, labels)
    assert len(ds) == 3
    x, y = ds[1]
    assert torch.equal(x, emb[1]) and int(y) == 5
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert torch.equal(batch[0], emb) and torch.equal(batch[1], labels)
