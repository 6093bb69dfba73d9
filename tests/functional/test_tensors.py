"""deepmetric.functional.tensors: casts, moves, reshapes, random choice, reference sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmetric.functional import tensors as F


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_limits(dtype):
    info = torch.finfo(dtype)
    assert F.pos_inf(dtype) == info.max
    assert F.neg_inf(dtype) == info.min
    assert F.small_val(dtype) == info.tiny


def test_list_tuple_and_numpy_conversions():
    assert F.is_list_or_tuple([1]) and F.is_list_or_tuple((1,))
    assert not F.is_list_or_tuple(torch.tensor([1]))
    arr = np.array([1, 2])
    t = F.numpy_to_torch(arr)
    assert isinstance(t, torch.Tensor) and t.tolist() == [1, 2]
    passthrough = [1, 2]
    assert F.numpy_to_torch(passthrough) is passthrough
    strings = np.array(["a", "b"])
    assert F.numpy_to_torch(strings) is strings
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    assert np.array_equal(F.to_numpy(x), np.array([1.0, 2.0], dtype=np.float32))
    assert F.to_numpy(passthrough) is passthrough


def test_to_dtype_and_to_device():
    x = torch.tensor([1, 2])
    ref = torch.zeros(1, dtype=torch.float64)
    assert F.to_dtype(x, tensor=ref).dtype == torch.float64
    assert F.to_dtype(x, dtype=torch.float16).dtype == torch.float16
    same = torch.zeros(2)
    assert F.to_dtype(same, dtype=torch.float32) is same
    moved = F.to_device(x, tensor=ref, dtype=torch.float32)
    assert moved.device == ref.device and moved.dtype == torch.float32
    assert F.to_device(x, device="cpu").dtype == torch.long


def test_to_dtype_does_not_cast_under_autocast():
    x = torch.zeros(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert F.to_dtype(x, dtype=torch.float16) is x
    assert F.to_dtype(x, dtype=torch.float16).dtype == torch.float16


def test_to_dtype_and_to_device_need_a_target():
    with pytest.raises(TypeError, match=r"to_dtype: expected `tensor` or `dtype`, got neither"):
        F.to_dtype(torch.zeros(1))
    with pytest.raises(TypeError, match=r"to_device: expected `tensor` or `device`, got neither"):
        F.to_device(torch.zeros(1))


def test_shape_helpers():
    assert F.torch_arange_from_size(torch.zeros(3, 5)).tolist() == [0, 1, 2]
    assert F.torch_arange_from_size(torch.zeros(3, 5), 1).tolist() == list(range(5))
    parts = [
        torch.tensor([[0, 0], [3, 3]]),
        torch.tensor([[1, 1], [4, 4]]),
        torch.tensor([[2, 2], [5, 5]]),
    ]
    out = F.unslice_by_n(parts)
    assert out.dtype == torch.long and out[:, 0].tolist() == list(range(6))
    assert all(torch.equal(out[k::3], parts[k]) for k in range(3))  # inverse of slicing
    x = torch.tensor([[[1, 1], [1, 0]], [[1, 1], [1, 1]]]).bool()
    assert F.torch_all_from_dim_to_end(x, 1).tolist() == [False, True]
    assert F.torch_all_from_dim_to_end(x, 2).tolist() == [[True, False], [True, True]]


def test_standard_scaler_uses_unbiased_std():
    x = torch.tensor([[1.0, 2.0], [3.0, 5.0], [5.0, 11.0]], dtype=torch.float64)
    expected = (x.numpy() - x.numpy().mean(0)) / x.numpy().std(0, ddof=1)
    assert np.allclose(F.torch_standard_scaler(x).numpy(), expected)


def test_safe_random_choice():
    g = torch.Generator().manual_seed(0)
    data = torch.arange(10) * 3
    picked = F.safe_random_choice(data, 6, generator=g)
    assert len(picked) == 6 and len(set(picked.tolist())) == 6  # without replacement
    assert set(picked.tolist()) <= set(data.tolist())
    many = F.safe_random_choice(torch.tensor([1, 2]), 50, generator=g)
    assert len(many) == 50 and set(many.tolist()) == {1, 2}  # with replacement
    arr = np.array(["a", "b", "c"])
    out = F.safe_random_choice(arr, 2, generator=g)
    assert isinstance(out, np.ndarray) and len(set(out.tolist())) == 2
    a = F.safe_random_choice(data, 4, generator=torch.Generator().manual_seed(5))
    b = F.safe_random_choice(data, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert len(F.safe_random_choice(data, 3)) == 3


def test_set_ref_emb_returns_the_same_objects_without_a_reference():
    emb, labels = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    ref_emb, ref_labels = F.set_ref_emb(emb, labels, None, None)
    assert ref_emb is emb and ref_labels is labels
    other, other_labels = torch.randn(3, 2), torch.tensor([1, 1, 0])
    ref_emb, ref_labels = F.set_ref_emb(emb, labels, other, other_labels)
    assert ref_emb is other and torch.equal(ref_labels, other_labels)
    assert F.set_ref_emb(emb, labels, other, None) == (other, None)


def test_set_ref_emb_checks_reference_shapes():
    with pytest.raises(
        ValueError, match=r"set_ref_emb: expected `labels` of shape \(N,\) with N=3"
    ):
        F.set_ref_emb(torch.randn(4, 2), None, torch.randn(3, 2), torch.tensor([0, 1]))
