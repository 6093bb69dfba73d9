"""PML-compatibility shims: names exposed, no logic, flags routed to their owners."""

from __future__ import annotations

import logging
import types

import pytest

import deepmetric.utils
from deepmetric import _logging, config
from deepmetric.utils import common_functions as c_f
from deepmetric.utils import loss_and_miner_utils as lmu

# PML 2.x public names (docs/api inventory, sections 14-15).
LMU_NAMES = {
    "convert_to_pairs",
    "convert_to_pos_pairs_with_unique_labels",
    "convert_to_triplets",
    "convert_to_weights",
    "get_all_pairs_indices",
    "get_all_triplets_indices",
    "get_all_triplets_indices_vectorized_method",
    "get_anchors",
    "get_matches_and_diffs",
    "get_random_triplet_indices",
    "logsumexp",
    "matched_size_indices",
    "meshgrid_from_sizes",
    "neg_pairs_from_tuple",
    "not_self_comparisons",
    "pos_pairs_from_tuple",
    "remove_self_comparisons",
    "repeat_to_match_size",
}
C_F_NAMES = {
    "COLLECT_STATS",
    "EmbeddingDataset",
    "LOGGER",
    "LOGGER_NAME",
    "LabelMapper",
    "TorchInitWrapper",
    "check_shapes",
    "concatenate_indices_tuples",
    "get_hierarchy_label",
    "get_label_map",
    "get_labels_to_indices",
    "indices_tuple_not_supported",
    "is_list_or_tuple",
    "labels_not_supported",
    "labels_or_indices_tuple_required",
    "labels_required",
    "make_label_to_rank_dict",
    "map_labels",
    "neg_inf",
    "numpy_to_torch",
    "pos_inf",
    "process_label",
    "ref_not_supported",
    "safe_random_choice",
    "set_logger_name",
    "set_ref_emb",
    "shift_indices_tuple",
    "small_val",
    "to_device",
    "to_dtype",
    "to_numpy",
    "torch_all_from_dim_to_end",
    "torch_arange_from_size",
    "torch_standard_scaler",
    "unslice_by_n",
    "use_cuda_if_available",
    # model files, data loading, records, keys
    "add_to_recordable_attributes",
    "append_map",
    "assert_distance_type",
    "delete_dict_of_models",
    "exclude",
    "get_eval_dataloader",
    "get_train_dataloader",
    "latest_version",
    "list_of_recordable_attributes_list_names",
    "load_dict_of_models",
    "load_model",
    "modelpath_creator",
    "operate_on_dict_of_models",
    "regex_replace",
    "regex_wrapper",
    "reset_stats",
    "return_input",
    "save_dict_of_models",
    "save_model",
    "set_layers_to_eval",
    "set_requires_grad",
    "sqlite_obj_to_dict",
    "try_next_on_generator",
}
# Deliberately absent (see the shim docstrings): the global numpy RNG (samplers and miners take a
# torch.Generator) and the loop variant of all-triplets mining (the blockwise one replaces it).
OMITTED = {"NUMPY_RANDOM", "get_all_triplets_indices_loop_method"}


def test_utils_package_is_empty():
    assert deepmetric.utils.__doc__ == ""


def test_lmu_exposes_the_pml_names():
    assert set(lmu.__all__) == LMU_NAMES
    assert all(callable(getattr(lmu, n)) for n in LMU_NAMES)


def test_c_f_exposes_the_pml_names():
    properties = {"COLLECT_STATS", "LOGGER", "LOGGER_NAME"}
    assert set(c_f.__all__) == C_F_NAMES - properties
    assert all(hasattr(c_f, n) for n in C_F_NAMES)
    assert not any(hasattr(c_f, n) or hasattr(lmu, n) for n in OMITTED)


@pytest.mark.parametrize("module", [lmu, c_f])
def test_shims_only_re_export(module):
    for name in module.__all__:
        obj = getattr(module, name)
        if isinstance(obj, (types.FunctionType, type)):
            assert obj.__module__ != module.__name__, name


def test_collect_stats_reads_and_writes_config():
    assert c_f.COLLECT_STATS is False
    try:
        c_f.COLLECT_STATS = True
        assert config.default_collect_stats() is True
        from deepmetric.utils.common_functions import COLLECT_STATS

        assert COLLECT_STATS is True
        assert "COLLECT_STATS" not in vars(c_f)  # a property, not a global
    finally:
        c_f.COLLECT_STATS = False
    assert config.default_collect_stats() is False
    with config.collect_stats():
        assert c_f.COLLECT_STATS is True
    assert c_f.COLLECT_STATS is False


def test_logger_follows_set_logger_name():
    assert c_f.LOGGER_NAME == "deepmetric"
    assert c_f.LOGGER is logging.getLogger("deepmetric")
    try:
        c_f.set_logger_name("my_run")
        assert c_f.LOGGER_NAME == "my_run"
        assert c_f.LOGGER is logging.getLogger("my_run")
        c_f.LOGGER_NAME = "other"
        assert _logging.get_logger() is logging.getLogger("other")
    finally:
        c_f.set_logger_name(_logging.DEFAULT_LOGGER_NAME)
    assert c_f.LOGGER.name == "deepmetric"


def test_set_logger_name_rejects_bad_names():
    with pytest.raises(TypeError, match=r"set_logger_name: expected a str, got int"):
        c_f.set_logger_name(3)
    with pytest.raises(ValueError, match=r"set_logger_name: expected a non-empty name, got ''"):
        c_f.set_logger_name("")
