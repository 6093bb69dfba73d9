"""Digits (embedded) and FashionMNIST (idx files) data sets."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest
import torch

from deepmetric.datasets.digits import Digits
from deepmetric.datasets.fashion_mnist import FashionMNIST, read_idx


def test_digits_shapes_normalisation_and_targets() -> None:
    train = Digits(train=True)
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert isinstance(label, int) and label == int(train.targets[0])
    assert train.targets.dtype == torch.long and train.targets.shape == (len(train),)
    assert set(train.targets.tolist()) == set(range(10))
    # scaled to [0, 1] then (x - 0.5) / 0.5: background is -1, strokes reach 1
    assert float(train.data.min()) == pytest.approx(-1.0)
    assert float(train.data.max()) <= 1.0 and float(train.data.max()) > 0.9


def test_digits_upscaling_matches_bilinear_interpolation() -> None:
    from sklearn.datasets import load_digits

    images = load_digits().images
    digits = Digits(train=True)
    test = Digits(train=False)
    # find the source of the first training item by matching the downsampled image
    source = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
    up = torch.nn.functional.interpolate(source, size=(28, 28), mode="bilinear")
    expected = (up - 0.5) / 0.5
    distances = (expected - digits.data[0]).flatten(1).abs().amax(1)
    assert float(distances.min()) < 1e-6
    assert len(digits) + len(test) == len(images)


def test_digits_split_is_deterministic_and_disjoint() -> None:
    a, b = Digits(train=True), Digits(train=True)
    test = Digits(train=False)
    assert torch.equal(a.data, b.data) and torch.equal(a.targets, b.targets)
    assert len(a) == round(0.8 * 1797) and len(test) == 1797 - len(a)
    train_rows = {tuple(x.flatten().tolist()) for x in a.data[:200]}
    overlap = sum(tuple(x.flatten().tolist()) in train_rows for x in test.data)
    assert overlap < 5  # a few digits are exact duplicates in the source data


def test_digits_max_samples_and_transforms() -> None:
    d = Digits(train=False, max_samples=7, transform=lambda x: x * 0, target_transform=str)
    assert len(d) == 7
    image, label = d[3]
    assert float(image.abs().sum()) == 0.0 and label == str(int(d.targets[3]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"train_fraction": 1.5}, "train_fraction"),
        ({"train_fraction": 1}, "train_fraction"),
        ({"max_samples": 0}, "max_samples"),
    ],
)
def test_digits_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=f"Digits: expected .*{match}"):
        Digits(**kwargs)


def _write_idx(path: str, array: np.ndarray, code: int = 0x08) -> None:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    data = header + array.astype(">u1").tobytes()
    if path.endswith(".gz"):
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        with open(path, "wb") as handle:
            handle.write(data)


def _write_split(folder: str, prefix: str, n: int, gz: bool, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
    ext = ".gz" if gz else ""
    _write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), images)
    _write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), labels)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_reads_idx_files(tmp_path, gz: bool) -> None:
    _, train_labels = _write_split(str(tmp_path), "train", 6, gz, 0)
    test_images, test_labels = _write_split(str(tmp_path), "t10k", 4, gz, 1)
    train = FashionMNIST(str(tmp_path), train=True)
    test = FashionMNIST(str(tmp_path), train=False)
    assert len(train) == 6 and len(test) == 4
    assert train.targets.dtype == torch.long
    assert train.targets.tolist() == train_labels.tolist()
    assert test.targets.tolist() == test_labels.tolist()
    image, label = test[2]
    assert image.shape == (1, 28, 28) and label == int(test_labels[2])
    expected = (torch.from_numpy(test_images[2].astype(np.float32)) / 255.0 - 0.5) / 0.5
    torch.testing.assert_close(image[0], expected)
    assert len(FashionMNIST(str(tmp_path), max_samples=2)) == 2


def test_fashion_mnist_reads_torchvision_layout(tmp_path) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    _, labels = _write_split(str(raw), "t10k", 3, True, 2)
    assert FashionMNIST(str(tmp_path), train=False).targets.tolist() == labels.tolist()


def test_fashion_mnist_missing_files_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"FashionMNIST: expected the files .*download"):
        FashionMNIST(str(tmp_path), train=True)


def test_fashion_mnist_download_without_torchvision(tmp_path, monkeypatch) -> None:
    import deepmetric.datasets.fashion_mnist as module
    from deepmetric._optional import MissingDependencyError

    def missing(name: str, feature: str | None = None) -> None:
        raise MissingDependencyError(
            f"{feature} needs torchvision: pip install 'deepmetric[vision]'"
        )

    monkeypatch.setattr(module, "optional_import", missing)
    with pytest.raises(MissingDependencyError, match="deepmetric\\[vision\\]"):
        FashionMNIST(str(tmp_path), download=True)


def test_fashion_mnist_corrupt_and_bad_arguments(tmp_path) -> None:
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x08\x03\x00\x00\x00\x02" + b"\x00" * 8
    )
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match="FashionMNIST: expected an idx file"):
        FashionMNIST(str(tmp_path), train=False)
    with pytest.raises(ValueError, match="FashionMNIST: expected an idx file"):
        read_idx(str(tmp_path / "t10k-labels-idx1-ubyte"))
    with pytest.raises(ValueError, match=r"FashionMNIST: expected .*truncated"):
        bad = tmp_path / "short"
        bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02")
        read_idx(str(bad))
    with pytest.raises(TypeError, match="FashionMNIST: expected `root` to be a path"):
        FashionMNIST(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="FashionMNIST: expected `max_samples`"):
        FashionMNIST(str(tmp_path), max_samples=0)
