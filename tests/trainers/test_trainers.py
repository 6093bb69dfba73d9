"""Trainers end to end on tiny synthetic data (Linear trunk, 4 classes, a few iterations)."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from torch.utils.data import Dataset, RandomSampler, TensorDataset

from deepmetric.losses.arcface_loss import ArcFaceLoss
from deepmetric.losses.contrastive_loss import ContrastiveLoss
from deepmetric.losses.triplet_margin_loss import TripletMarginLoss
from deepmetric.miners.hdc_miner import HDCMiner
from deepmetric.miners.maximum_loss_miner import MaximumLossMiner
from deepmetric.miners.triplet_margin_miner import TripletMarginMiner
from deepmetric.samplers import DistributedMPerClassSampler, MPerClassBatchSampler
from deepmetric.trainers.base_trainer import BaseTrainer
from deepmetric.trainers.cascaded_embeddings import CascadedEmbeddings
from deepmetric.trainers.deep_adversarial_metric_learning import DeepAdversarialMetricLearning
from deepmetric.trainers.metric_loss_only import MetricLossOnly
from deepmetric.trainers.train_with_classifier import TrainWithClassifier
from deepmetric.trainers.two_stream_metric_loss import TwoStreamMetricLoss
from deepmetric.trainers.unsupervised_embeddings_using_augmentations import (
    UnsupervisedEmbeddingsUsingAugmentations,
)

DIM = 8
NUM_CLASSES = 4


def make_dataset(n_per_class: int = 16, seed: int = 0, label_offset: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(NUM_CLASSES, DIM, generator=g) * 2
    labels = torch.arange(NUM_CLASSES).repeat_interleave(n_per_class)
    x = centers[labels] + torch.randn(labels.shape[0], DIM, generator=g)
    return TensorDataset(x, labels + label_offset)


def make_models(seed: int = 0) -> dict[str, torch.nn.Module]:
    torch.manual_seed(seed)
    return {"trunk": torch.nn.Linear(DIM, DIM), "embedder": torch.nn.Linear(DIM, DIM)}


def sgd(models: dict[str, torch.nn.Module], lr: float = 0.05) -> dict[str, torch.optim.Optimizer]:
    return {f"{k}_optimizer": torch.optim.SGD(m.parameters(), lr=lr) for k, m in models.items()}


def common(**kw):
    base = {"dataloader_num_workers": 0, "show_progress": False, "data_device": "cpu"}
    base.update(kw)
    return base


def metric_trainer(models=None, loss=None, dataset=None, **kw) -> MetricLossOnly:
    models = models or make_models()
    return MetricLossOnly(
        models,
        sgd(models),
        16,
        {"metric_loss": loss or TripletMarginLoss(margin=0.5)},
        dataset or make_dataset(),
        **common(**kw),
    )


def val(x) -> float:
    return float(x.detach()) if torch.is_tensor(x) else float(x)


def flat_params(models) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for m in models.values() for p in m.parameters()])


# ----------------------------------------------------------------------------- the loop
def test_loss_decreases():
    per_epoch: dict[int, list[float]] = {}

    def hook(t):
        per_epoch.setdefault(t.epoch, []).append(val(t.losses["metric_loss"]))

    trainer = metric_trainer(end_of_iteration_hook=hook, loss=ContrastiveLoss())
    trainer.train(num_epochs=6)
    first = sum(per_epoch[1]) / len(per_epoch[1])
    last = sum(per_epoch[6]) / len(per_epoch[6])
    assert last < 0.7 * first
    assert set(trainer.losses) == {"metric_loss", "total_loss"}
    assert trainer.loss_tracker.losses is trainer.losses


def test_hooks_fire_in_order_and_counters():
    events: list[tuple] = []
    trainer = metric_trainer(
        end_of_iteration_hook=lambda t: events.append(("it", t.epoch, t.iteration)),
        end_of_epoch_hook=lambda t: events.append(("ep", t.epoch)),
    )
    trainer.train(start_epoch=1, num_epochs=2)
    ipe = 64 // 16
    expected = []
    for e in (1, 2):
        expected += [("it", e, i) for i in range(ipe)] + [("ep", e)]
    assert events == expected
    assert trainer.iterations_per_epoch == ipe
    assert trainer.epoch == 2
    # losses are zeroed at the end of each epoch, as in PML
    assert trainer.losses["total_loss"] == 0


@pytest.mark.parametrize(("returned", "epochs_run"), [(False, 1), (None, 3), (0, 3), (True, 3)])
def test_end_of_epoch_hook_false_stops(returned, epochs_run):
    seen: list[int] = []

    def hook(t):
        seen.append(t.epoch)
        return returned

    metric_trainer(end_of_epoch_hook=hook).train(num_epochs=3)
    assert seen == list(range(1, epochs_run + 1))


def test_train_start_epoch():
    seen: list[int] = []
    metric_trainer(end_of_epoch_hook=lambda t: seen.append(t.epoch)).train(3, 4)
    assert seen == [3, 4]


# ----------------------------------------------------------------------------- argument order
def test_both_argument_orders_give_identical_runs():
    ds = make_dataset()
    results = []
    for order in ("1.x", "2.x-positional", "2.x-keyword"):
        models = make_models(seed=1)
        opts = sgd(models)
        loss = {"metric_loss": TripletMarginLoss(margin=0.5)}
        mining = {"tuple_miner": TripletMarginMiner(margin=0.5)}
        sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(3))
        if order == "1.x":
            t = MetricLossOnly(models, opts, 16, loss, mining, ds, sampler=sampler, **common())
        elif order == "2.x-positional":
            t = MetricLossOnly(models, opts, 16, loss, ds, mining, sampler=sampler, **common())
        else:
            t = MetricLossOnly(
                models=models,
                optimizers=opts,
                batch_size=16,
                loss_funcs=loss,
                dataset=ds,
                mining_funcs=mining,
                sampler=sampler,
                **common(),
            )
        assert t.dataset is ds
        assert set(t.mining_funcs) == {"tuple_miner"}
        t.train(num_epochs=1)
        results.append(flat_params(models))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)
    torch.testing.assert_close(results[0], results[2], rtol=0, atol=0)


def test_argument_order_errors():
    ds = make_dataset()
    models = make_models()
    loss = {"metric_loss": TripletMarginLoss()}
    with pytest.raises(TypeError, match=r"MetricLossOnly: expected a dataset .*PML 1.x order"):
        MetricLossOnly(models, {}, 16, loss, {"tuple_miner": TripletMarginMiner()})
    with pytest.raises(TypeError, match="expected a dataset"):
        MetricLossOnly(models, {}, 16, loss, {}, {})
    with pytest.raises(TypeError, match="expected a `dataset`, got None"):
        MetricLossOnly(models, {}, 16, loss)
    with pytest.raises(TypeError, match="`dataset` to be a torch Dataset"):
        MetricLossOnly(models, {}, 16, loss, 5)
    with pytest.raises(TypeError, match="`mining_funcs` to be a dict"):
        MetricLossOnly(models, {}, 16, loss, ds, [TripletMarginMiner()])
    with pytest.raises(TypeError, match="`models` to be a dict"):
        MetricLossOnly([models["trunk"]], {}, 16, loss, ds)
    with pytest.raises(TypeError, match="`loss_funcs` to be a dict"):
        MetricLossOnly(models, {}, 16, TripletMarginLoss(), ds)


def test_bad_input_errors(tmp_path):
    ds = make_dataset()
    loss = {"metric_loss": TripletMarginLoss()}

    def build(**kw):
        models = kw.pop("models", make_models())
        opts = kw.pop("optimizers") if "optimizers" in kw else sgd(models)
        return MetricLossOnly(
            models, opts, kw.pop("batch_size", 16), kw.pop("loss_funcs", loss), ds, **common(**kw)
        )

    with pytest.raises(ValueError, match="`batch_size` to be a positive int, got 0"):
        build(batch_size=0)
    with pytest.raises(ValueError, match="`models` to contain the key 'trunk'"):
        build(models={"embedder": torch.nn.Linear(DIM, DIM)}, optimizers={})
    with pytest.raises(ValueError, match=r"`models` keys among .*got 'head'"):
        build(
            models={"trunk": torch.nn.Linear(DIM, DIM), "head": torch.nn.Identity()}, optimizers={}
        )
    with pytest.raises(ValueError, match=r"`loss_funcs` keys among .*got 'other_loss'"):
        build(loss_funcs={"other_loss": TripletMarginLoss()})
    with pytest.raises(ValueError, match=r"`mining_funcs` keys among .*got 'miner'"):
        build(mining_funcs={"miner": TripletMarginMiner()})
    with pytest.raises(ValueError, match=r"`optimizers` keys .*got 'head_optimizer'"):
        build(optimizers={"head_optimizer": None})
    with pytest.raises(ValueError, match="`loss_weights` keys to be exactly"):
        build(loss_weights={"classifier_loss": 1})
    with pytest.raises(ValueError, match=r"`lr_schedulers` keys .*got 'trunk_scheduler'"):
        build(lr_schedulers={"trunk_scheduler": None})
    with pytest.raises(ValueError, match=r"`gradient_clippers` keys .*got 'trunk_clip'"):
        build(gradient_clippers={"trunk_clip": lambda: None})
    with pytest.raises(ValueError, match=r"`freeze_these` entries among .*got 'head'"):
        build(freeze_these=("head",))
    with pytest.raises(ValueError, match="`dataset_labels` when set_min_label_to_zero=True"):
        build(set_min_label_to_zero=True)
    with pytest.raises(ValueError, match="a dataset with at least `batch_size` items"):
        build(batch_size=1000).train()
    with pytest.raises(ValueError, match=r"batch sampler's batch_size to equal the trainer's"):
        build(sampler=MPerClassBatchSampler(ds.tensors[1], m=4, batch_size=8)).train()
    trainer = build()
    state = trainer.state_dict()
    state["models"]["classifier"] = {}
    with pytest.raises(KeyError, match="a models entry 'classifier' in this trainer"):
        trainer.load_state_dict(state)
    with pytest.raises(NotImplementedError):
        BaseTrainer(make_models(), {}, 16, loss, ds, **common()).train()


# ----------------------------------------------------------------------------- features
def test_unoptimized_loss_parameter_warning():
    arcface = ArcFaceLoss(NUM_CLASSES, DIM, margin=28.6, scale=64)
    w_before = arcface.W.detach().clone()
    trainer = metric_trainer(loss=arcface)
    with pytest.warns(UserWarning, match=r"loss parameters \['metric_loss.W'\] need training"):
        trainer.train(num_epochs=1)
    torch.testing.assert_close(arcface.W.detach(), w_before, rtol=0, atol=0)  # PML behaviour
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.train(num_epochs=1)  # warned once only
    # no warning when an optimizer holds W
    models = make_models()
    arcface2 = ArcFaceLoss(NUM_CLASSES, DIM)
    opts = sgd(models)
    opts["metric_loss_optimizer"] = torch.optim.SGD(arcface2.parameters(), lr=0.01)
    t2 = MetricLossOnly(models, opts, 16, {"metric_loss": arcface2}, make_dataset(), **common())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t2.train(num_epochs=1)
    assert not torch.equal(arcface2.W.detach(), w_before)


def build_resumable(seed_models: int, sampler_kind: str = "seeded", iterations_per_epoch=None):
    ds = make_dataset()
    models = make_models(seed_models)
    loss = ArcFaceLoss(NUM_CLASSES, DIM, margin=20, scale=16)
    opts = {
        "trunk_optimizer": torch.optim.Adam(models["trunk"].parameters(), lr=0.01),
        "embedder_optimizer": torch.optim.Adam(models["embedder"].parameters(), lr=0.01),
        "metric_loss_optimizer": torch.optim.Adam(loss.parameters(), lr=0.01),
    }
    scheds = {
        "trunk_scheduler_by_epoch": torch.optim.lr_scheduler.StepLR(
            opts["trunk_optimizer"], step_size=1, gamma=0.5
        ),
        "embedder_scheduler_by_iteration": torch.optim.lr_scheduler.StepLR(
            opts["embedder_optimizer"], step_size=2, gamma=0.9
        ),
    }
    sampler = {
        "seeded": RandomSampler(ds, generator=torch.Generator().manual_seed(7)),
        "global": None,  # shuffle=True: the order comes from the global RNG, which is saved too
        # a new order per epoch through set_epoch (as under torch.distributed)
        "set_epoch": DistributedMPerClassSampler(
            ds.tensors[1],
            m=4,
            batch_size=16,
            length_before_new_iter=len(ds),
            num_replicas=1,
            rank=0,
        ),
    }[sampler_kind]
    trainer = MetricLossOnly(
        models,
        opts,
        16,
        {"metric_loss": loss},
        ds,
        sampler=sampler,
        lr_schedulers=scheds,
        iterations_per_epoch=iterations_per_epoch,
        **common(),
    )
    return trainer, models, loss


@pytest.mark.parametrize(
    ("sampler_kind", "iterations_per_epoch"),
    # 3 of 4 batches: resume in the middle of a pass (begun in an earlier epoch)
    [("seeded", None), ("global", None), ("seeded", 3), ("set_epoch", None), ("set_epoch", 3)],
)
def test_resume_reproduces_uninterrupted_run(tmp_path, sampler_kind, iterations_per_epoch):
    torch.manual_seed(99)
    full, full_models, full_loss = build_resumable(0, sampler_kind, iterations_per_epoch)
    full.train(num_epochs=3)

    torch.manual_seed(99)
    first, _, _ = build_resumable(0, sampler_kind, iterations_per_epoch)
    first.train(num_epochs=2)
    ckpt = tmp_path / "ckpt" / "trainer.pt"
    first.save_checkpoint(ckpt)
    assert os.listdir(ckpt.parent) == ["trainer.pt"]  # no temporary file left behind
    torch.manual_seed(123)  # disturb the global RNG: the checkpoint restores it

    # different initial weights
    resumed, resumed_models, resumed_loss = build_resumable(5, sampler_kind, iterations_per_epoch)
    start = resumed.load_checkpoint(ckpt)
    assert (start, resumed.epoch, resumed.iteration) == (3, 2, iterations_per_epoch or 4)
    resumed.train(start_epoch=start, num_epochs=3)

    torch.testing.assert_close(flat_params(resumed_models), flat_params(full_models))
    torch.testing.assert_close(resumed_loss.W, full_loss.W)
    assert resumed.optimizers["trunk_optimizer"].param_groups[0]["lr"] == pytest.approx(
        full.optimizers["trunk_optimizer"].param_groups[0]["lr"]
    )


def test_save_checkpoint_overwrites_atomically(tmp_path):
    trainer = metric_trainer()
    path = tmp_path / "c.pt"
    trainer.save_checkpoint(path)
    trainer.train(num_epochs=1)
    trainer.save_checkpoint(path)
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]
    state = torch.load(path, weights_only=False)
    assert state["epoch"] == 1
    assert set(state) >= {"models", "optimizers", "lr_schedulers", "loss_funcs", "iteration"}


def test_amp_on_cpu_bfloat16():
    seen_dtypes: list[torch.dtype] = []
    models = make_models()
    models["embedder"].register_forward_hook(lambda m, i, o: seen_dtypes.append(o.dtype))
    before = flat_params(models)
    trainer = metric_trainer(models=models, use_amp=True, loss=ContrastiveLoss())
    trainer.train(num_epochs=1)
    assert seen_dtypes and all(d == torch.bfloat16 for d in seen_dtypes)
    assert not trainer.scaler.is_enabled()
    after = flat_params(models)
    assert after.dtype == torch.float32 and torch.isfinite(after).all()
    assert not torch.equal(before, after)


def test_schedulers_clippers_and_freezing():
    models = make_models()
    opts = sgd(models)
    calls: list[int] = []
    sched = torch.optim.lr_scheduler.StepLR(opts["trunk_optimizer"], step_size=1, gamma=0.5)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opts["embedder_optimizer"], patience=0)
    embedder_before = flat_params({"e": models["embedder"]})
    trainer = MetricLossOnly(
        models,
        opts,
        16,
        {"metric_loss": TripletMarginLoss(margin=0.5)},
        make_dataset(),
        lr_schedulers={
            "trunk_scheduler_by_iteration": sched,
            "embedder_scheduler_by_plateau": plateau,
        },
        gradient_clippers={"trunk_grad_clipper": lambda: calls.append(1)},
        freeze_these=("embedder",),
        **common(),
    )
    trainer.train(num_epochs=1)
    assert opts["trunk_optimizer"].param_groups[0]["lr"] == pytest.approx(0.05 * 0.5**4)
    assert len(calls) == 4
    torch.testing.assert_close(flat_params({"e": models["embedder"]}), embedder_before)
    trainer.step_lr_plateau_schedulers(1.0)
    trainer.step_lr_plateau_schedulers(2.0)
    assert opts["embedder_optimizer"].param_groups[0]["lr"] < 0.05
    assert trainer.get_global_iteration() == 4 + 4 * 0


def test_label_mapping_and_hierarchy():
    ds = make_dataset(label_offset=10)
    seen: list[torch.Tensor] = []

    class Spy(TripletMarginLoss):
        def forward(
            self, embeddings, labels=None, indices_tuple=None, ref_emb=None, ref_labels=None
        ):
            seen.append(labels)
            return super().forward(embeddings, labels, indices_tuple, ref_emb, ref_labels)

    trainer = metric_trainer(
        loss=Spy(), dataset=ds, set_min_label_to_zero=True, dataset_labels=ds.tensors[1]
    )
    trainer.train()
    assert int(torch.cat(seen).min()) == 0 and int(torch.cat(seen).max()) == NUM_CLASSES - 1
    # 2-D labels: label_hierarchy_level selects the column
    x, y = make_dataset().tensors
    ds2 = TensorDataset(x, torch.stack([y // 2, y], dim=1))
    seen.clear()
    metric_trainer(loss=Spy(), dataset=ds2, label_hierarchy_level=1).train()
    assert int(torch.cat(seen).max()) == NUM_CLASSES - 1
    # a label missing from dataset_labels is an error, not a silently wrong class id
    partial = ds.tensors[1][ds.tensors[1] != 11]
    trainer = metric_trainer(dataset=ds, set_min_label_to_zero=True, dataset_labels=partial)
    with pytest.raises(ValueError, match=r"labels seen in `dataset_labels`.*unknown label 11"):
        trainer.train()


def test_subset_batch_miner_selects_rows():
    sizes: list[int] = []
    models = make_models()
    models["embedder"].register_forward_hook(lambda m, i, o: sizes.append(o.shape[0]))
    miner = MaximumLossMiner(TripletMarginLoss(), output_batch_size=8, num_trials=2)
    trainer = metric_trainer(models=models, mining_funcs={"subset_batch_miner": miner})
    trainer.train()
    # per iteration: the full batch (no-grad mining pass), then the chosen 8 rows
    assert sizes[:2] == [16, 8]


# ----------------------------------------------------------------------------- each class
def test_train_with_classifier_runs():
    models = make_models()
    models["classifier"] = torch.nn.Linear(DIM, NUM_CLASSES)
    t = TrainWithClassifier(
        models,
        sgd(models),
        16,
        {"metric_loss": TripletMarginLoss(), "classifier_loss": torch.nn.CrossEntropyLoss()},
        make_dataset(),
        loss_weights={"metric_loss": 1, "classifier_loss": 0.5},
        **common(),
    )
    values: list[float] = []
    t.end_of_iteration_hook = lambda tr: values.append(val(tr.losses["classifier_loss"]))
    t.train(num_epochs=3)
    assert values[-1] < values[0]


def test_cascaded_embeddings_runs():
    models = make_models()
    miners = {"tuple_miner_0": HDCMiner(0.5), "tuple_miner_1": HDCMiner(0.5)}
    t = CascadedEmbeddings(
        [4, 4],
        models,
        sgd(models),
        16,
        {"metric_loss_0": ContrastiveLoss(), "metric_loss_1": ContrastiveLoss()},
        make_dataset(),
        miners,
        **common(),
    )
    t.train()
    assert set(t.losses) == {"metric_loss_0", "metric_loss_1", "total_loss"}
    with pytest.raises(ValueError, match="embeddings of width sum\\(embedding_sizes\\)=6"):
        CascadedEmbeddings(
            [3, 3], models, {}, 16, {"metric_loss_0": ContrastiveLoss()}, make_dataset(), **common()
        ).train()
    with pytest.raises(TypeError, match="`embedding_sizes` to be a list of ints"):
        CascadedEmbeddings(4, models, {}, 16, {}, make_dataset())
    with pytest.raises(ValueError, match="positive `embedding_sizes`"):
        CascadedEmbeddings([4, 0], models, {}, 16, {}, make_dataset())
    with pytest.raises(ValueError, match="`mining_funcs` keys among"):
        CascadedEmbeddings(
            [8], models, {}, 16, {}, make_dataset(), {"subset_batch_miner": HDCMiner()}
        )


def test_deep_adversarial_metric_learning_phases():
    models = make_models()
    torch.manual_seed(0)
    models["generator"] = torch.nn.Linear(3 * DIM, DIM)
    gen_before = flat_params({"g": models["generator"]})
    phases: list[tuple[int, float, float]] = []
    t = DeepAdversarialMetricLearning(
        metric_alone_epochs=1,
        g_alone_epochs=1,
        g_triplets_per_anchor=2,
        models=models,
        optimizers=sgd(models),
        batch_size=16,
        loss_funcs={
            "metric_loss": TripletMarginLoss(margin=0.2),
            "synth_loss": TripletMarginLoss(margin=0.2),
            "g_adv_loss": TripletMarginLoss(margin=0.2),
        },
        dataset=make_dataset(),
        end_of_iteration_hook=lambda tr: phases.append(
            (tr.epoch, val(tr.losses["metric_loss"]), val(tr.losses["g_hard_loss"]))
        ),
        **common(),
    )
    assert t.loss_funcs["g_adv_loss"].margin == pytest.approx(-0.2)
    t.train(num_epochs=1)
    torch.testing.assert_close(flat_params({"g": models["generator"]}), gen_before)
    assert all(g == 0 for e, m, g in phases)
    t.train(start_epoch=2, num_epochs=3)
    assert not torch.equal(flat_params({"g": models["generator"]}), gen_before)
    assert all(m == 0 and g > 0 for e, m, g in phases if e == 2)
    assert any(m > 0 for e, m, g in phases if e == 3)
    assert all(g > 0 for e, m, g in phases if e == 3)
    assert set(t.losses) >= {"synth_loss", "g_adv_loss", "g_hard_loss", "g_reg_loss"}
    with pytest.raises(TypeError, match="loss_funcs\\['g_adv_loss'\\] to be a TripletMarginLoss"):
        DeepAdversarialMetricLearning(
            models=models,
            optimizers={},
            batch_size=16,
            loss_funcs={
                "metric_loss": TripletMarginLoss(),
                "synth_loss": TripletMarginLoss(),
                "g_adv_loss": ContrastiveLoss(),
            },
            dataset=make_dataset(),
        )
    with pytest.raises(ValueError, match="`g_alone_epochs` a non-negative int, got -1"):
        DeepAdversarialMetricLearning(0, -1)
    with pytest.raises(ValueError, match="`models` to contain the key 'generator'"):
        DeepAdversarialMetricLearning(
            models=make_models(),
            optimizers={},
            batch_size=16,
            loss_funcs={
                "metric_loss": TripletMarginLoss(),
                "synth_loss": TripletMarginLoss(),
                "g_adv_loss": TripletMarginLoss(),
            },
            dataset=make_dataset(),
        )


class PairDataset(Dataset):
    def __init__(self) -> None:
        self.x, self.y = make_dataset().tensors

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], self.x[i] + 0.1, self.y[i]


def test_two_stream_metric_loss_runs():
    models = make_models()
    for mining in ({}, {"tuple_miner": TripletMarginMiner(margin=0.5)}):
        values: list[float] = []
        t = TwoStreamMetricLoss(
            models,
            sgd(models),
            16,
            {"metric_loss": TripletMarginLoss(margin=0.5)},
            PairDataset(),
            mining,
            end_of_iteration_hook=lambda tr, out=values: out.append(val(tr.losses["metric_loss"])),
            **common(),
        )
        t.train()
        assert len(values) == 4 and all(v >= 0 for v in values) and any(v > 0 for v in values)
    with pytest.raises(ValueError, match="`mining_funcs` keys among \\['tuple_miner'\\]"):
        TwoStreamMetricLoss(
            models, {}, 16, {}, PairDataset(), {"subset_batch_miner": HDCMiner()}, **common()
        )
    bad = TwoStreamMetricLoss(
        models,
        {},
        16,
        {"metric_loss": TripletMarginLoss()},
        make_dataset(),
        data_and_label_getter=lambda b: b,
        **common(),
    )
    with pytest.raises(ValueError, match="batches of \\(anchors, posnegs, labels\\)"):
        bad.train()


def test_unsupervised_embeddings_using_augmentations_runs():
    labels_seen: list[torch.Tensor] = []

    class Spy(ContrastiveLoss):
        def forward(
            self, embeddings, labels=None, indices_tuple=None, ref_emb=None, ref_labels=None
        ):
            labels_seen.append(labels)
            return super().forward(embeddings, labels, indices_tuple, ref_emb, ref_labels)

    models = make_models()
    transforms = [lambda x: x, lambda x: x + 0.05, lambda x: x * 0.9]
    t = UnsupervisedEmbeddingsUsingAugmentations(
        transforms,
        None,
        models,
        sgd(models),
        8,
        {"metric_loss": Spy()},
        make_dataset(),
        **common(),
    )
    t.train()
    assert labels_seen[0].tolist() == [i for i in range(8) for _ in range(3)]
    with pytest.raises(ValueError, match="at least 2 callables"):
        UnsupervisedEmbeddingsUsingAugmentations(
            [lambda x: x], None, models, {}, 8, {}, make_dataset()
        )
    with pytest.raises(TypeError, match="`transforms` to be a list of callables"):
        UnsupervisedEmbeddingsUsingAugmentations(None, None, models, {}, 8, {}, make_dataset())


def test_progress_bar_runs(capsys):
    metric_trainer(show_progress=True).train()
    assert "epoch 1" in capsys.readouterr().err


@pytest.mark.needs_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_amp_on_cuda_float16_with_grad_scaler():
    models = {k: m.cuda() for k, m in make_models().items()}
    seen: list[torch.dtype] = []
    models["embedder"].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    before = flat_params(models)
    trainer = MetricLossOnly(
        models,
        sgd(models),
        16,
        {"metric_loss": ContrastiveLoss()},
        make_dataset(),
        use_amp=True,
        dataloader_num_workers=0,
        show_progress=False,
        data_device="cuda",
    )
    trainer.train(num_epochs=2)
    assert trainer.scaler.is_enabled()
    assert seen and all(d == torch.float16 for d in seen)
    after = flat_params(models)
    assert torch.isfinite(after).all() and not torch.equal(before, after)


def test_internal_state_missing_is_a_clear_runtime_error():
    from deepmetric.trainers.base_trainer import not_set_up

    err = not_set_up(object(), "dataloader")
    with pytest.raises(RuntimeError, match="`dataloader` is not set up"):
        raise err


@pytest.mark.parametrize("kind", ["m_per_class_batches", "distributed_m_per_class"])
def test_whole_batch_samplers_deliver_their_batches(kind):
    """Samplers whose items are batches are used as ``batch_sampler``: every training batch is
    one of theirs (4 classes x 4 samples), not one index per item."""
    ds = make_dataset()
    labels = ds.tensors[1]
    sampler = (
        MPerClassBatchSampler(labels, m=4, batch_size=16, length_before_new_iter=64, seed=0)
        if kind == "m_per_class_batches"
        else DistributedMPerClassSampler(
            labels, m=4, batch_size=16, length_before_new_iter=64, num_replicas=1, rank=0
        )
    )
    seen = []

    class Recording(MetricLossOnly):
        def calculate_loss(self, curr_batch):
            seen.append(curr_batch[1].clone())
            super().calculate_loss(curr_batch)

    models = make_models()
    trainer = Recording(models, sgd(models), 16, {"metric_loss": TripletMarginLoss()}, ds,
                        sampler=sampler, **common())  # fmt: skip
    trainer.train(num_epochs=2)
    assert len(seen) == 2 * len(sampler)
    for batch_labels in seen:
        assert torch.bincount(batch_labels, minlength=NUM_CLASSES).tolist() == [4] * NUM_CLASSES
    if kind == "distributed_m_per_class":
        assert sampler.epoch == 2
        assert not torch.equal(torch.cat(seen[:4]), torch.cat(seen[4:]))  # epoch 2: new order
