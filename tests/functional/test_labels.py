"""deepmetric.functional.labels: indices per label, ranks, LabelMapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmetric.functional import labels as L


@pytest.mark.parametrize("convert", [torch.tensor, np.array])
def test_labels_to_indices(convert):
    out = L.get_labels_to_indices(convert([3, 1, 3, 2, 1, 3]))
    assert list(out) == [3, 1, 2]  # first-appearance order
    assert {k: v.tolist() for k, v in out.items()} == {3: [0, 2, 5], 1: [1, 4], 2: [3]}
    assert out[99] == []  # a defaultdict(list), as in PML


def test_labels_to_indices_strings_and_empty():
    out = L.get_labels_to_indices(np.array(["b", "a", "b"]))
    assert {k: v.tolist() for k, v in out.items()} == {"b": [0, 2], "a": [1]}
    assert len(L.get_labels_to_indices(np.array([], dtype=np.int64))) == 0


def test_label_ranks_and_map():
    assert L.make_label_to_rank_dict(np.array([5, 2, 9])) == {2: 0, 5: 1, 9: 2}
    assert L.make_label_to_rank_dict(["b", "a"]) == {"a": 0, "b": 1}
    assert L.get_label_map(np.array([5, 2, 9, 5])) == {0: {2: 0, 5: 1, 9: 2}}
    two_level = L.get_label_map(np.array([[5, 1], [2, 1], [9, 0]]))
    assert two_level == {0: {2: 0, 5: 1, 9: 2}, 1: {0: 0, 1: 1}}


def test_label_ranks_reject_duplicates():
    with pytest.raises(
        ValueError,
        match=r"rank_dict: expected a label set without duplicates, got 3 labels with 2 distinct",
    ):
        L.make_label_to_rank_dict(np.array([1, 1, 2]))


def test_label_mapper():
    identity = L.LabelMapper()
    x = np.array([9, 2])
    assert identity.map(x, 0) is x
    mapper = L.LabelMapper(True, np.array([5, 2, 9, 5]))
    assert mapper.map(np.array([9, 2, 5]), 0).tolist() == [2, 0, 1]
    assert mapper.map(torch.tensor([9, 2]), 0).tolist() == [2, 0]
    strings = L.LabelMapper(True, np.array(["b", "a", "c"]))
    assert strings.map(np.array(["c", "a"]), 0).tolist() == [2, 0]
    levels = L.LabelMapper(True, np.array([[5, 1], [2, 3]]))
    assert levels.map(np.array([1, 3]), 1).tolist() == [0, 1]


def test_label_mapper_errors():
    with pytest.raises(
        ValueError,
        match=r"LabelMapper: expected `dataset_labels` with set_min_label_to_zero=True, got None",
    ):
        L.LabelMapper(True)
    mapper = L.LabelMapper(True, np.array([1, 2]))
    with pytest.raises(
        ValueError,
        match=r"LabelMapper: expected labels seen in .*\(level 0\), got unknown label 7\.",
    ):
        mapper.map(np.array([1, 7]), 0)


def test_hierarchy_levels_and_processing():
    two = np.array([[5, 1], [2, 1], [9, 0]])
    assert L.get_hierarchy_label(two, "all") is two
    assert L.get_hierarchy_label(two, 0).tolist() == [5, 2, 9]
    assert L.get_hierarchy_label(two, [1, 0]).tolist() == [[1, 5], [1, 2], [0, 9]]
    one = np.array([5, 2])
    assert L.get_hierarchy_label(one, 0) is one
    mapper = L.LabelMapper(True, two)
    assert L.map_labels(mapper.map, two).tolist() == [[1, 1], [0, 1], [2, 0]]
    assert L.map_labels(mapper.map, np.array([9, 2])).tolist() == [2, 0]
    out = L.process_label(torch.tensor(two), 1, mapper.map)
    assert isinstance(out, torch.Tensor) and out.tolist() == [1, 1, 0]
    assert L.process_label(one, 0, L.LabelMapper().map).tolist() == [5, 2]


def test_hierarchy_level_of_1d_labels_must_be_zero():
    with pytest.raises(
        ValueError, match=r"get_hierarchy_label: expected level 0 for 1-D labels, got 1"
    ):
        L.get_hierarchy_label(np.array([5, 2]), 1)
