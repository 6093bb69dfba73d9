"""PML-compatible ``utils.common_functions`` (``c_f``): re-exports only.

``COLLECT_STATS`` reads and writes :func:`deepmetric.config.default_collect_stats` (prefer
``with deepmetric.config.collect_stats():``). ``LOGGER_NAME`` / ``LOGGER`` follow
:func:`set_logger_name` (default ``"deepmetric"``). These are properties of this module, not
globals: ``c_f.COLLECT_STATS = True`` works as in PML.

The names live where they belong: model files in :mod:`deepmetric.model_files`, data loading in
:mod:`deepmetric.data_utils`, records in :mod:`deepmetric.records`, tensor and label helpers in
:mod:`deepmetric.functional`. Not provided: ``NUMPY_RANDOM`` (random helpers take
``generator=torch.Generator``).
"""

from __future__ import annotations

import logging
import sys
import types

from .. import _logging, config
from .._logging import set_logger_name
from .._validation import (
    assert_distance_type,
    check_shapes,
    indices_tuple_not_supported,
    labels_not_supported,
    labels_or_indices_tuple_required,
    labels_required,
    ref_not_supported,
)
from ..data_utils import (
    EmbeddingDataset,
    get_eval_dataloader,
    get_train_dataloader,
    return_input,
    try_next_on_generator,
)
from ..functional.labels import (
    LabelMapper,
    get_hierarchy_label,
    get_label_map,
    get_labels_to_indices,
    make_label_to_rank_dict,
    map_labels,
    process_label,
)
from ..functional.tensors import (
    is_list_or_tuple,
    neg_inf,
    numpy_to_torch,
    pos_inf,
    safe_random_choice,
    set_ref_emb,
    small_val,
    to_device,
    to_dtype,
    to_numpy,
    torch_all_from_dim_to_end,
    torch_arange_from_size,
    torch_standard_scaler,
    unslice_by_n,
    use_cuda_if_available,
)
from ..functional.tuples import concatenate_indices_tuples, shift_indices_tuple
from ..hooks.record_writer import sqlite_obj_to_dict
from ..model_files import (
    delete_dict_of_models,
    latest_version,
    load_dict_of_models,
    load_model,
    modelpath_creator,
    operate_on_dict_of_models,
    save_dict_of_models,
    save_model,
    set_layers_to_eval,
    set_requires_grad,
)
from ..records import (
    add_to_recordable_attributes,
    list_of_recordable_attributes_list_names,
    reset_stats,
)
from ..trainers.arguments import append_map, exclude, regex_replace, regex_wrapper
from ..weight_init import TorchInitWrapper

# ``COLLECT_STATS``, ``LOGGER_NAME`` and ``LOGGER`` are properties (below), not star-exported.
__all__ = [
    "EmbeddingDataset",
    "LabelMapper",
    "TorchInitWrapper",
    "add_to_recordable_attributes",
    "append_map",
    "assert_distance_type",
    "check_shapes",
    "concatenate_indices_tuples",
    "delete_dict_of_models",
    "exclude",
    "get_eval_dataloader",
    "get_hierarchy_label",
    "get_label_map",
    "get_labels_to_indices",
    "get_train_dataloader",
    "indices_tuple_not_supported",
    "is_list_or_tuple",
    "labels_not_supported",
    "labels_or_indices_tuple_required",
    "labels_required",
    "latest_version",
    "list_of_recordable_attributes_list_names",
    "load_dict_of_models",
    "load_model",
    "make_label_to_rank_dict",
    "map_labels",
    "modelpath_creator",
    "neg_inf",
    "numpy_to_torch",
    "operate_on_dict_of_models",
    "pos_inf",
    "process_label",
    "ref_not_supported",
    "regex_replace",
    "regex_wrapper",
    "reset_stats",
    "return_input",
    "safe_random_choice",
    "save_dict_of_models",
    "save_model",
    "set_layers_to_eval",
    "set_logger_name",
    "set_ref_emb",
    "set_requires_grad",
    "shift_indices_tuple",
    "small_val",
    "sqlite_obj_to_dict",
    "to_device",
    "to_dtype",
    "to_numpy",
    "torch_all_from_dim_to_end",
    "torch_arange_from_size",
    "torch_standard_scaler",
    "try_next_on_generator",
    "unslice_by_n",
    "use_cuda_if_available",
]


class _CommonFunctionsModule(types.ModuleType):
    """Routes PML's global flags to their owners."""

    @property
    def COLLECT_STATS(self) -> bool:
        return config.default_collect_stats()

    @COLLECT_STATS.setter
    def COLLECT_STATS(self, value: bool) -> None:
        config.set_default_collect_stats(value)

    @property
    def LOGGER_NAME(self) -> str:
        return _logging.logger_name()

    @LOGGER_NAME.setter
    def LOGGER_NAME(self, name: str) -> None:
        _logging.set_logger_name(name)

    @property
    def LOGGER(self) -> logging.Logger:
        return _logging.get_logger()


sys.modules[__name__].__class__ = _CommonFunctionsModule
