"""One epoch of MetricLossOnly / TrainWithClassifier equals PML 2.9.0's on the same data order."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import RandomSampler, TensorDataset

from deepmetric.losses.triplet_margin_loss import TripletMarginLoss
from deepmetric.miners.triplet_margin_miner import TripletMarginMiner
from deepmetric.trainers.metric_loss_only import MetricLossOnly
from deepmetric.trainers.train_with_classifier import TrainWithClassifier

pml_trainers = pytest.importorskip("pytorch_metric_learning.trainers")
pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
pml_miners = pytest.importorskip("pytorch_metric_learning.miners")

pytestmark = [
    pytest.mark.parity,
    pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad"),
]


def data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(12)
    x = torch.randn(4, 6, generator=g)[labels] + torch.randn(48, 6, generator=g)
    return TensorDataset(x.double(), labels)


def run(ours: bool, with_classifier: bool, epochs: int = 1) -> torch.Tensor:
    torch.manual_seed(0)
    models = {"trunk": torch.nn.Linear(6, 6).double(), "embedder": torch.nn.Linear(6, 5).double()}
    if with_classifier:
        models["classifier"] = torch.nn.Linear(5, 4).double()
    opts = {f"{k}_optimizer": torch.optim.SGD(m.parameters(), lr=0.1) for k, m in models.items()}
    ds = data()
    sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(1))
    if ours:
        loss = TripletMarginLoss(margin=0.3)
        miner = TripletMarginMiner(margin=0.3, type_of_triplets="semihard")
        cls = TrainWithClassifier if with_classifier else MetricLossOnly
        extra = {"show_progress": False}
    else:
        loss = pml_losses.TripletMarginLoss(margin=0.3)
        miner = pml_miners.TripletMarginMiner(margin=0.3, type_of_triplets="semihard")
        cls = pml_trainers.TrainWithClassifier if with_classifier else pml_trainers.MetricLossOnly
        extra = {}
    loss_funcs = {"metric_loss": loss}
    if with_classifier:
        loss_funcs["classifier_loss"] = torch.nn.CrossEntropyLoss()
    trainer = cls(
        models,
        opts,
        8,
        loss_funcs,
        ds,
        mining_funcs={"tuple_miner": miner},
        sampler=sampler,
        data_device=torch.device("cpu"),
        dtype=torch.float64,
        dataloader_num_workers=0,
        **extra,
    )
    trainer.train(num_epochs=epochs)
    return torch.cat([p.detach().flatten() for m in models.values() for p in m.parameters()])


@pytest.mark.parametrize("with_classifier", [False, True])
def test_one_epoch_matches_pml(with_classifier):
    ours = run(True, with_classifier)
    theirs = run(False, with_classifier)
    untrained = run(True, with_classifier, epochs=0)
    assert (ours - untrained).abs().max() > 1e-3  # the epoch really trained
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-9)
