"""Index-tuple helpers on CUDA: same results as on the CPU, generators on either device."""

from __future__ import annotations

import pytest
import torch

from deepmetric.functional import tensors as F
from deepmetric.functional import tuples as T

pytestmark = [
    pytest.mark.needs_cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = torch.device("cuda")


def labels_pair():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 6, (40,), generator=g)
    ref = torch.randint(0, 6, (25,), generator=g)
    return labels, ref


def same_on_both(fn, *cpu_args):
    cpu = fn(*cpu_args)
    gpu = fn(*(a.to(CUDA) if isinstance(a, torch.Tensor) else a for a in cpu_args))
    for x, y in zip(cpu, gpu, strict=True):
        assert y.device.type == "cuda"
        assert torch.equal(x, y.cpu())


def test_pairs_and_triplets_match_cpu():
    labels, ref = labels_pair()
    same_on_both(T.get_all_pairs_indices, labels)
    same_on_both(T.get_all_pairs_indices, labels, ref)
    same_on_both(T.get_all_triplets_indices, labels)
    same_on_both(T.get_all_triplets_indices, labels, ref)
    pairs = T.get_all_pairs_indices(labels)
    perm = torch.randperm(len(pairs[2]), generator=torch.Generator().manual_seed(1))
    shuffled = (pairs[0], pairs[1], pairs[2][perm], pairs[3][perm])
    cpu = T.convert_to_triplets(shuffled, labels)
    gpu = T.convert_to_triplets(tuple(t.to(CUDA) for t in shuffled), labels.to(CUDA))
    assert all(torch.equal(x, y.cpu()) for x, y in zip(cpu, gpu, strict=True))


def test_weights_self_comparisons_and_logsumexp_match_cpu():
    labels, _ = labels_pair()
    t = T.get_all_triplets_indices(labels)
    for using_ref in (False, True):
        cpu = T.convert_to_weights(t, labels, torch.float32, using_ref)
        gpu = T.convert_to_weights(
            tuple(x.to(CUDA) for x in t), labels.to(CUDA), torch.float32, using_ref
        )
        assert gpu.device.type == "cuda" and torch.allclose(cpu, gpu.cpu())
    slots = torch.tensor([7, 8, 9, 0, 1])
    a = torch.arange(5).repeat_interleave(10)
    p = torch.arange(10).repeat(5)
    cpu = T.remove_self_comparisons((a, p, p), slots, 10)
    gpu = T.remove_self_comparisons((a.to(CUDA), p.to(CUDA), p.to(CUDA)), slots.to(CUDA), 10)
    assert all(torch.equal(x, y.cpu()) for x, y in zip(cpu, gpu, strict=True))
    x = torch.randn(64, 300, dtype=torch.float64) * 20
    keep = torch.rand(64, 300) > 0.5
    keep[3] = False
    expected = T.logsumexp(x, keep)
    for dtype, tol in ((torch.float32, 1e-5), (torch.float16, 2e-2), (torch.bfloat16, 1e-1)):
        out = T.logsumexp(x.to(CUDA, dtype), keep.to(CUDA))
        assert out.dtype == dtype and bool(torch.isfinite(out).all())
        assert torch.allclose(out.double().cpu(), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("gen_device", ["cpu", "cuda"])
@pytest.mark.parametrize("weighted", [False, True])
def test_random_triplets_on_cuda(gen_device, weighted):
    labels, ref = labels_pair()
    labels, ref = labels.to(CUDA), ref.to(CUDA)
    weights = torch.rand(40, 25, device=CUDA) if weighted else None

    def draw(seed):
        g = torch.Generator(device=gen_device).manual_seed(seed)
        return T.get_random_triplet_indices(labels, ref, 9, weights, generator=g)

    a, p, n = draw(3)
    assert a.device.type == p.device.type == n.device.type == "cuda"
    assert bool((labels[a] == ref[p]).all()) and bool((labels[a] != ref[n]).all())
    again = draw(3)
    assert all(torch.equal(x, y) for x, y in zip((a, p, n), again, strict=True))
    a_self, p_self, _ = T.get_random_triplet_indices(labels, t_per_anchor=5)
    assert bool((a_self != p_self).all())


def test_tensor_helpers_on_cuda():
    x = torch.zeros(3, device=CUDA)
    with torch.autocast("cuda", dtype=torch.float16):
        assert F.to_dtype(x, dtype=torch.float64) is x
    assert F.to_dtype(x, dtype=torch.float64).dtype == torch.float64
    assert F.to_device(torch.zeros(2), tensor=x).device.type == "cuda"
    picked = F.safe_random_choice(
        torch.arange(10, device=CUDA), 4, generator=torch.Generator().manual_seed(0)
    )
    assert picked.device.type == "cuda" and len(set(picked.tolist())) == 4
    emb = torch.randn(3, 2)
    _, ref_labels = F.set_ref_emb(emb, None, torch.randn(2, 2, device=CUDA), torch.tensor([0, 1]))
    assert ref_labels.device.type == "cuda"
