"""Triplet-loss training with DistributedDataParallel, launched by ``torchrun``.

One machine, two processes (gloo on CPU; nccl is chosen when GPUs are visible)::

    torchrun --standalone --nproc_per_node 2 examples/distributed_triplet.py --epochs 2

Several machines (run on each; ``--node-rank`` 0 on the machine at ``HOST``)::

    torchrun --nnodes 2 --nproc_per_node 4 --node-rank 0 \
        --rdzv-backend c10d --rdzv-endpoint HOST:29500 --rdzv-id digits-triplet \
        examples/distributed_triplet.py --epochs 10

Without ``torchrun`` (``python examples/distributed_triplet.py``) the same script trains in one
process. What makes it distributed:

* ``init_distributed()`` joins the process group that torchrun describes;
* ``wrap_models`` puts the trunk and embedder under ``DistributedDataParallel``;
* ``DistributedLossWrapper`` / ``DistributedMinerWrapper`` mine and compute the loss over the
  batches of every rank, so the gradient is the one of the whole global batch;
* ``DistributedMPerClassSampler`` gives each rank its own class-balanced batch at every step (the
  trainer calls its ``set_epoch``);
* the tester (``distributed=True``) lets every rank embed a block of the test split; rank 0
  gathers them and computes the metrics;
* only rank 0 writes the logs (``{out}/logs``), the saved models and the checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import os

import torch
import torch.nn as nn

from deepmetric import distances, losses, miners, reducers, samplers, testers, trainers
from deepmetric.datasets import Digits
from deepmetric.distributed import (
    DistributedLossWrapper,
    DistributedMinerWrapper,
    init_distributed,
    wrap_models,
)
from deepmetric.utils import logging_presets

log = logging.getLogger("distributed_triplet")


def make_trunk() -> nn.Module:
    """A small convnet for 28x28 digits: 1x28x28 -> 256."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 32x13x13
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 64x5x5
        nn.Flatten(),
        nn.Linear(64 * 5 * 5, 256),
        nn.ReLU(),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=40, help="samples per rank and step")
    parser.add_argument("--m", type=int, default=8, help="samples per class in a batch")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-samples", type=int, default=None, help="use a subset (tests)")
    parser.add_argument("--backend", choices=["gloo", "nccl"], default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/distributed_triplet")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    with init_distributed(backend=args.backend) as ctx:
        level = logging.INFO if ctx.is_main else logging.WARNING
        logging.basicConfig(level=level, format=f"[rank {ctx.rank}] %(levelname)s %(message)s")
        log.info("world size %d, backend %s, device %s", ctx.world_size, ctx.backend, ctx.device)
        torch.manual_seed(args.seed)  # equal initial weights (DDP also copies rank 0's)
        train = Digits(train=True, max_samples=args.max_samples)
        test = Digits(train=False)

        models = wrap_models(
            {"trunk": make_trunk(), "embedder": nn.Linear(256, 64)}, device=ctx.device
        )
        optimizers = {
            f"{key}_optimizer": torch.optim.Adam(model.parameters(), lr=args.lr)
            for key, model in models.items()
        }
        distance = distances.CosineSimilarity()
        loss = losses.TripletMarginLoss(
            margin=0.2, distance=distance, reducer=reducers.ThresholdReducer(low=0)
        )
        miner = miners.TripletMarginMiner(
            margin=0.2, distance=distance, type_of_triplets="semihard"
        )
        sampler = samplers.DistributedMPerClassSampler(
            train.targets,
            m=args.m,
            batch_size=args.batch_size,
            length_before_new_iter=len(train),
            num_replicas=ctx.world_size,
            rank=ctx.rank,
            seed=args.seed,
        )

        record_keeper, _, _ = logging_presets.get_record_keeper(os.path.join(args.out, "logs"))
        hooks = logging_presets.get_hook_container(record_keeper, log_freq=1)
        tester = testers.GlobalEmbeddingSpaceTester(
            end_of_testing_hook=hooks.end_of_testing_hook,
            data_device=ctx.device,
            dataloader_num_workers=0,
            distributed=True,
        )
        end_of_epoch_hook = hooks.end_of_epoch_hook(
            tester, {"val": test}, os.path.join(args.out, "saved_models")
        )
        trainer = trainers.MetricLossOnly(
            models,
            optimizers,
            args.batch_size,
            {"metric_loss": DistributedLossWrapper(loss)},
            train,
            mining_funcs={"tuple_miner": DistributedMinerWrapper(miner)},
            sampler=sampler,
            data_device=ctx.device,
            dataloader_num_workers=0,
            end_of_iteration_hook=hooks.end_of_iteration_hook,
            end_of_epoch_hook=end_of_epoch_hook,
            show_progress=False,
        )
        trainer.train(num_epochs=args.epochs)
        trainer.save_checkpoint(os.path.join(args.out, "checkpoint.pt"))
        accuracies = {k: v for k, v in tester.all_accuracies["val"].items() if isinstance(v, float)}
        log.info("val accuracies after %d epochs: %s", args.epochs, accuracies)
        return accuracies


if __name__ == "__main__":
    main()
