"""``Digits``: scikit-learn's 8x8 digits upscaled to 28x28 like MNIST (no network)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset

from .._validation import fail

_OWNER = "Digits"
#: the seed of the fixed permutation that splits train and test
SPLIT_SEED = 0


class Digits(Dataset[tuple[torch.Tensor, int]]):
    """The 1797 images of ``sklearn.datasets.load_digits`` as a torchvision-style data set.

    Each 8x8 image (values 0..16) is scaled to [0, 1], upscaled to 28x28 with bilinear
    interpolation and normalised with mean 0.5 and std 0.5 (so values lie in [-1, 1]); an item is
    ``(image of shape (1, 28, 28), label)``. ``targets`` is a LongTensor of the labels, like
    torchvision's data sets. The split is deterministic: a permutation drawn from a
    ``torch.Generator`` seeded with :data:`SPLIT_SEED`; ``train=True`` takes its first
    ``train_fraction`` and ``train=False`` the rest.

    Args:
        train: the training part (True) or the test part (False).
        train_fraction: the share of the samples in the training part, in (0, 1).
        transform: optional callable applied to each image tensor.
        target_transform: optional callable applied to each label.
        max_samples: keep only the first ``max_samples`` samples of the part (None: all).
    """

    def __init__(
        self,
        train: bool = True,
        train_fraction: float = 0.8,
        transform: Callable[[torch.Tensor], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        max_samples: int | None = None,
    ) -> None:
        if not isinstance(train_fraction, float) or not 0.0 < train_fraction < 1.0:
            fail(_OWNER, "`train_fraction` to be a float in (0, 1)", repr(train_fraction))
        if max_samples is not None and (
            isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1
        ):
            fail(_OWNER, "`max_samples` to be None or an int >= 1", repr(max_samples))
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
        images = torch.nn.functional.interpolate(
            images, size=(28, 28), mode="bilinear", align_corners=False
        )
        images = (images.clamp(0.0, 1.0) - 0.5) / 0.5
        labels = torch.as_tensor(bunch.target, dtype=torch.long)
        generator = torch.Generator().manual_seed(SPLIT_SEED)
        order = torch.randperm(len(labels), generator=generator)
        n_train = round(train_fraction * len(labels))
        part = order[:n_train] if train else order[n_train:]
        if max_samples is not None:
            part = part[:max_samples]
        self.train = train
        self.data = images[part].contiguous()
        self.targets = labels[part].contiguous()
        self.classes = [str(i) for i in range(10)]
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image: Any = self.data[index]
        target: Any = int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target
