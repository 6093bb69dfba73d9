"""Bad input to the tuple miners gives clear ValueError/TypeError messages (no asserts)."""

from __future__ import annotations

import pytest
import torch

from deepmetric import distances
from deepmetric.miners.angular_miner import AngularMiner
from deepmetric.miners.batch_easy_hard_miner import BatchEasyHardMiner
from deepmetric.miners.batch_hard_miner import BatchHardMiner
from deepmetric.miners.distance_weighted_miner import DistanceWeightedMiner
from deepmetric.miners.embeddings_already_packaged_as_triplets import (
    EmbeddingsAlreadyPackagedAsTriplets,
)
from deepmetric.miners.hdc_miner import HDCMiner
from deepmetric.miners.multi_similarity_miner import MultiSimilarityMiner
from deepmetric.miners.pair_margin_miner import PairMarginMiner
from deepmetric.miners.triplet_margin_miner import TripletMarginMiner
from deepmetric.miners.uniform_histogram_miner import UniformHistogramMiner

ALL = {
    "AngularMiner": AngularMiner,
    "BatchEasyHardMiner": BatchEasyHardMiner,
    "BatchHardMiner": BatchHardMiner,
    "DistanceWeightedMiner": DistanceWeightedMiner,
    "EmbeddingsAlreadyPackagedAsTriplets": EmbeddingsAlreadyPackagedAsTriplets,
    "HDCMiner": HDCMiner,
    "MultiSimilarityMiner": MultiSimilarityMiner,
    "PairMarginMiner": PairMarginMiner,
    "TripletMarginMiner": TripletMarginMiner,
    "UniformHistogramMiner": UniformHistogramMiner,
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_labels_of_the_wrong_length(name):
    with pytest.raises(ValueError, match=rf"{name}: expected `labels` of shape \(N,\) with N=6"):
        ALL[name]()(torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0]))


@pytest.mark.parametrize("name", sorted(ALL))
def test_float_labels(name):
    with pytest.raises(TypeError, match=rf"{name}: expected integer `labels`.*\.long\(\)"):
        ALL[name]()(torch.randn(6, 4), torch.tensor([0.0, 1, 0, 1, 0, 1]))


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_embeddings(name, bad):
    x = torch.randn(6, 4)
    x[2, 1] = bad
    with pytest.raises(ValueError, match=rf"{name}: expected finite `embeddings`"):
        ALL[name]()(x, torch.tensor([0, 1, 0, 1, 0, 1]))


@pytest.mark.parametrize("name", sorted(ALL))
def test_bad_reference_sets(name):
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0, 1])
    miner = ALL[name]()
    with pytest.raises(ValueError, match=rf"{name}: expected `ref_labels` together with"):
        miner(x, y, torch.randn(5, 4))
    with pytest.raises(
        ValueError, match=rf"{name}: expected `ref_labels` of shape \(M,\) with M=5"
    ):
        miner(x, y, torch.randn(5, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=rf"{name}: expected `ref_emb` of dimension D=4"):
        miner(x, y, torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 0]))
    with pytest.raises(ValueError, match=rf"{name}: expected `ref_labels` only together"):
        miner(x, y, ref_labels=y)


def test_integer_embeddings_and_wrong_types():
    with pytest.raises(TypeError, match=r"TripletMarginMiner: expected floating-point"):
        TripletMarginMiner()(torch.ones(3, 2, dtype=torch.long), torch.tensor([0, 0, 1]))
    with pytest.raises(TypeError, match=r"PairMarginMiner: expected `embeddings` to be a torch"):
        PairMarginMiner()([[0.0, 1.0]], torch.tensor([0]))


def test_triplet_margin_miner_rejects_unknown_type():
    with pytest.raises(ValueError, match=r"`type_of_triplets` to be one of \['all', 'hard', "):
        TripletMarginMiner(type_of_triplets="semi-hard")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pos_strategy": "hardest"}, r"`pos_strategy` to be one of \['hard', 'semihard'"),
        ({"neg_strategy": "medium"}, r"`neg_strategy` to be one of"),
        ({"pos_strategy": "semihard", "neg_strategy": "semihard"}, r"at most one of .*both"),
        ({"pos_strategy": "semihard", "neg_strategy": "all"}, r"'semihard' not combined with"),
        ({"pos_strategy": "all", "neg_strategy": "semihard"}, r"'semihard' not combined with"),
        ({"allowed_pos_range": (1.0, 0.5)}, r"`allowed_pos_range` with low <= high"),
        ({"allowed_neg_range": (0.0, float("nan"))}, r"`allowed_neg_range` with low <= high"),
    ],
)
def test_batch_easy_hard_validation(kwargs, message):
    with pytest.raises(ValueError, match="BatchEasyHardMiner: expected " + message):
        BatchEasyHardMiner(**kwargs)


@pytest.mark.parametrize("bad", [0.5, (0.1,), (0.1, 0.2, 0.3), ("a", 1), (True, 1.0)])
def test_allowed_range_must_be_a_pair_of_numbers(bad):
    with pytest.raises(TypeError, match=r"BatchHardMiner: expected `allowed_pos_range` to be None"):
        BatchHardMiner(allowed_pos_range=bad)


def test_batch_easy_hard_keeps_pml_constants_and_ranges_as_given():
    assert BatchEasyHardMiner.all_batch_mining_strategies == ["hard", "semihard", "easy", "all"]
    assert (BatchEasyHardMiner.HARD, BatchEasyHardMiner.ALL) == ("hard", "all")
    rng = [0.1, 0.9]
    assert BatchEasyHardMiner(allowed_pos_range=rng).allowed_pos_range is rng


@pytest.mark.parametrize("cls", [AngularMiner, DistanceWeightedMiner])
@pytest.mark.parametrize(
    "distance",
    [
        distances.CosineSimilarity(),
        distances.LpDistance(power=2),
        distances.LpDistance(normalize_embeddings=False),
        distances.LpDistance(p=1),
        distances.SNRDistance(),
    ],
)
def test_unit_l2_distance_is_required(cls, distance):
    with pytest.raises(
        ValueError,
        match=rf"{cls.__name__}: expected distance LpDistance\(p=2, power=1, "
        r"normalize_embeddings=True\), got .*Leave `distance` unset",
    ):
        cls(distance=distance)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", True])
def test_hdc_filter_percentage(bad):
    with pytest.raises(ValueError, match=r"HDCMiner: expected `filter_percentage` in \[0, 1\]"):
        HDCMiner(filter_percentage=bad)


@pytest.mark.parametrize("name", ["num_bins", "pos_per_bin", "neg_per_bin"])
@pytest.mark.parametrize("bad", [0, -2, 2.5, True])
def test_uniform_histogram_counts(name, bad):
    with pytest.raises(ValueError, match=rf"UniformHistogramMiner: expected `{name}` to be an int"):
        UniformHistogramMiner(**{name: bad})


@pytest.mark.parametrize("cls", [DistanceWeightedMiner, UniformHistogramMiner])
def test_generator_type(cls):
    with pytest.raises(TypeError, match=rf"{cls.__name__}: expected `generator` to be a torch"):
        cls(generator=42)


def test_bad_mine_output_from_a_subclass():
    class Broken(TripletMarginMiner):
        def mine(self, embeddings, labels, ref_emb, ref_labels):
            return torch.arange(3), torch.arange(2)

    with pytest.raises(TypeError, match="Broken: expected mine"):
        Broken()(torch.randn(4, 2), torch.tensor([0, 0, 1, 1]))
