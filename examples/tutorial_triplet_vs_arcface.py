"""The Triplet-vs-ArcFace tutorial (written for pytorch-metric-learning), run with deepmetric.

Only the import line differs from the PML tutorial. Usage::

    python examples/tutorial_triplet_vs_arcface.py --loss triplet --dataset digits \
        --epochs 3 --out runs/demo

Writes, under ``{out}/{loss}/``: ``logs/`` (CSV files and ``logs.db``), ``tensorboard/`` (when
tensorboard is installed), ``saved_models/`` (latest and best checkpoints) and
``umap/{epoch:02d}.png`` (the test embeddings reduced to 2-D by ``umap.UMAP()``, or by PCA
when umap-learn is missing).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from deepmetric import (
    distances,
    losses,
    miners,
    reducers,
    regularizers,
    samplers,
    testers,
    trainers,
)
from deepmetric._optional import is_available
from deepmetric.utils import logging_presets

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
log = logging.getLogger("tutorial")


class Net(nn.Module):
    """The tutorial's trunk: conv 1->32 3x3, conv 32->64 1x1, conv 64->128 3x3, max-pool 2, fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 1, 1)
        self.conv3 = nn.Conv2d(64, 128, 3, 1)
        self.dropout1 = nn.Dropout2d(0.25)
        self.fc1 = nn.Linear(18432, 1152)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        return F.relu(self.fc1(x))


class Embedder(nn.Module):
    """The tutorial's embedder: fc 1152→128."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1152, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def make_datasets(name: str, root: str, max_samples: int | None) -> tuple[Any, Any]:
    if name == "digits":
        from deepmetric.datasets import Digits

        test_max = None if max_samples is None else max(max_samples // 4, 40)
        return Digits(train=True, max_samples=max_samples), Digits(
            train=False, max_samples=test_max
        )
    from deepmetric.datasets import FashionMNIST

    download = is_available("torchvision")
    return (
        FashionMNIST(root, train=True, download=download, max_samples=max_samples),
        FashionMNIST(root, train=False, download=download, max_samples=max_samples),
    )


def make_visualizer() -> Any:
    if is_available("umap"):
        import umap

        log.info("visualizer: umap.UMAP()")
        return umap.UMAP()
    from sklearn.decomposition import PCA

    log.info("visualizer: umap-learn is not installed, using sklearn PCA(2) instead")
    return PCA(2)


def make_visualizer_hook(folder: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(folder, exist_ok=True)

    def visualizer_hook(
        umapper: Any,
        umap_embeddings: np.ndarray,
        labels: np.ndarray,
        split_name: str,
        keyname: str,
        epoch: int,
    ) -> None:
        log.info(f"UMAP plot for the {split_name} split and label set {keyname}")
        label_set = np.unique(labels)
        fig = plt.figure(figsize=(6, 6))
        cmap = plt.get_cmap("tab10")
        for i, label in enumerate(label_set):
            idx = labels == label
            plt.plot(
                umap_embeddings[idx, 0], umap_embeddings[idx, 1], ".", markersize=2, color=cmap(i)
            )
        plt.title(f"{type(umapper).__name__} of the {split_name} embeddings, epoch {epoch}")
        fig.savefig(os.path.join(folder, f"{epoch:02d}.png"), dpi=80)
        plt.close(fig)

    return visualizer_hook


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", choices=["triplet", "arcface"], default="triplet")
    parser.add_argument("--dataset", choices=["digits", "fashion-mnist"], default="digits")
    parser.add_argument("--data-root", default="data", help="folder of the FashionMNIST files")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-samples", type=int, default=None, help="use a subset (tests)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--log-freq", type=int, default=1, help="record every N iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/tutorial")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = os.path.join(args.out, args.loss)
    train_dataset, test_dataset = make_datasets(args.dataset, args.data_root, args.max_samples)
    log.info(f"{args.dataset}: {len(train_dataset)} train, {len(test_dataset)} test samples")

    trunk = torch.nn.DataParallel(Net().to(device))
    embedder = torch.nn.DataParallel(Embedder().to(device))
    trunk_optimizer = torch.optim.Adam(trunk.parameters(), lr=0.005, weight_decay=0.0001)
    embedder_optimizer = torch.optim.Adam(embedder.parameters(), lr=0.001, weight_decay=0.0001)

    distance = distances.CosineSimilarity()
    reducer = reducers.ThresholdReducer(low=0)
    if args.loss == "triplet":
        loss = losses.TripletMarginLoss(margin=0.2, distance=distance, reducer=reducer)
    else:
        loss = losses.ArcFaceLoss(
            10,
            128,
            margin=28.6,
            scale=64,
            weight_regularizer=regularizers.RegularFaceRegularizer(),
            distance=distance,
        )
    miner = miners.TripletMarginMiner(margin=0.2, distance=distance, type_of_triplets="semihard")
    sampler = samplers.MPerClassSampler(
        train_dataset.targets, m=4, length_before_new_iter=len(train_dataset)
    )

    models = {"trunk": trunk, "embedder": embedder}
    optimizers = {"trunk_optimizer": trunk_optimizer, "embedder_optimizer": embedder_optimizer}
    loss_funcs = {"metric_loss": loss}
    mining_funcs = {"tuple_miner": miner}

    tensorboard_folder = os.path.join(out, "tensorboard") if is_available("tensorboard") else None
    record_keeper, _, _ = logging_presets.get_record_keeper(
        os.path.join(out, "logs"), tensorboard_folder
    )
    hooks = logging_presets.get_hook_container(record_keeper, log_freq=args.log_freq)
    dataset_dict = {"val": test_dataset}
    model_folder = os.path.join(out, "saved_models")

    tester = testers.GlobalEmbeddingSpaceTester(
        end_of_testing_hook=hooks.end_of_testing_hook,
        visualizer=make_visualizer(),
        visualizer_hook=make_visualizer_hook(os.path.join(out, "umap")),
        dataloader_num_workers=args.num_workers,
    )
    end_of_epoch_hook = hooks.end_of_epoch_hook(
        tester, dataset_dict, model_folder, test_interval=1, patience=1
    )
    # PML 1.x argument order (loss_funcs, mining_funcs, dataset), as in the tutorial.
    trainer = trainers.MetricLossOnly(
        models,
        optimizers,
        args.batch_size,
        loss_funcs,
        mining_funcs,
        train_dataset,
        sampler=sampler,
        dataloader_num_workers=args.num_workers,
        end_of_iteration_hook=hooks.end_of_iteration_hook,
        end_of_epoch_hook=end_of_epoch_hook,
    )
    start = time.perf_counter()
    trainer.train(num_epochs=args.epochs)
    record_keeper.save_records()
    log.info(f"{args.loss}: trained in {time.perf_counter() - start:.1f} s; records in {out}")


if __name__ == "__main__":
    main()
