"""``FashionMNIST``: reads the standard idx-ubyte files (optionally gzipped) from a folder."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .._optional import optional_import
from .._validation import fail

_OWNER = "FashionMNIST"
FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
HOW_TO_GET = (
    "download the four files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz from "
    "https://github.com/zalandoresearch/fashion-mnist into the folder, or pass download=True "
    "with torchvision installed (pip install 'deepmetric[vision]')"
)
#: idx type codes -> numpy dtypes (big-endian)
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def find_idx_file(folder: str, name: str) -> str | None:
    """The path of ``name`` or ``name.gz`` in ``folder`` or ``folder/FashionMNIST/raw``."""
    for base in (folder, os.path.join(folder, "FashionMNIST", "raw")):
        for candidate in (name, name + ".gz"):
            path = os.path.join(base, candidate)
            if os.path.isfile(path):
                return path
    return None


def read_idx(path: str) -> np.ndarray:
    """The array stored in an idx file (gzipped when the name ends in ``.gz``)."""
    opener: Callable[..., Any] = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        fail(_OWNER, "an idx file (magic 0x0000 + type code)", f"a file {path!r} without one")
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        fail(_OWNER, f"an idx header of {header} bytes", f"{len(raw)} bytes in {path!r}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - header != count * dtype.itemsize:
        fail(
            _OWNER,
            f"{count * dtype.itemsize} data bytes for shape {shape} in {path!r}",
            f"{len(raw) - header}",
            fix="the file is truncated or corrupt; download it again",
        )
    data: np.ndarray = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


class FashionMNIST(Dataset[tuple[torch.Tensor, int]]):
    """Fashion-MNIST from the idx-ubyte files in ``root`` (or ``root/FashionMNIST/raw``).

    Images are scaled to [0, 1] and normalised with mean 0.5 and std 0.5 (the tutorial's
    transform); an item is ``(image of shape (1, 28, 28), label)`` and ``targets`` is a
    LongTensor, like torchvision's data sets.

    Args:
        root: the folder holding the files (``.gz`` or uncompressed).
        train: the 60000 training (True) or 10000 test (False) images.
        download: fetch missing files with torchvision (needs ``deepmetric[vision]`` and network).
        transform: optional callable applied to each image tensor (after normalisation).
        target_transform: optional callable applied to each label.
        max_samples: keep only the first ``max_samples`` samples (None: all).
    """

    classes = CLASSES

    def __init__(
        self,
        root: str,
        train: bool = True,
        download: bool = False,
        transform: Callable[[torch.Tensor], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        max_samples: int | None = None,
    ) -> None:
        if not isinstance(root, (str, os.PathLike)):
            fail(_OWNER, "`root` to be a path", type(root).__name__, exc=TypeError)
        if max_samples is not None and (
            isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1
        ):
            fail(_OWNER, "`max_samples` to be None or an int >= 1", repr(max_samples))
        root = os.fspath(root)
        image_name, label_name = FILES[bool(train)]
        paths = [find_idx_file(root, image_name), find_idx_file(root, label_name)]
        if None in paths and download:
            tv = optional_import("torchvision", "FashionMNIST(download=True)")
            tv.datasets.FashionMNIST(root, train=bool(train), download=True)
            paths = [find_idx_file(root, image_name), find_idx_file(root, label_name)]
        if paths[0] is None or paths[1] is None:
            missing = [n for n, p in zip((image_name, label_name), paths, strict=True) if p is None]
            raise FileNotFoundError(
                f"{_OWNER}: expected the files {missing} (or .gz) in {root!r}, got none; "
                f"{HOW_TO_GET}."
            )
        images = read_idx(paths[0])
        labels = read_idx(paths[1])
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            fail(
                _OWNER,
                "images of shape (N, H, W) and labels of shape (N,)",
                f"{images.shape} and {labels.shape}",
            )
        if max_samples is not None:
            images, labels = images[:max_samples], labels[:max_samples]
        data = torch.from_numpy(images.astype(np.float32)).unsqueeze(1) / 255.0
        self.root = root
        self.train = bool(train)
        self.data = (data - 0.5) / 0.5
        self.targets = torch.from_numpy(labels.astype(np.int64))
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
