"""PML-compatible ``utils.loss_and_miner_utils`` (``lmu``): re-exports only.

The logic lives in :mod:`deepmetric.functional.tuples`. Differences from PML: masks are bool
(``~mask``, not ``1 - mask``); random helpers take ``generator=torch.Generator`` instead of reading
``c_f.NUMPY_RANDOM``; all triplets are built without an N x M x M tensor, so PML's
``get_all_triplets_indices_loop_method`` has no counterpart (the vectorized method is
:func:`~deepmetric.functional.tuples.triplets_from_masks`).
"""

from ..functional.tuples import (
    convert_to_pairs,
    convert_to_pos_pairs_with_unique_labels,
    convert_to_triplets,
    convert_to_weights,
    get_all_pairs_indices,
    get_all_triplets_indices,
    get_anchors,
    get_matches_and_diffs,
    get_random_triplet_indices,
    logsumexp,
    matched_size_indices,
    meshgrid_from_sizes,
    neg_pairs_from_tuple,
    not_self_comparisons,
    pos_pairs_from_tuple,
    remove_self_comparisons,
    repeat_to_match_size,
)
from ..functional.tuples import triplets_from_masks as get_all_triplets_indices_vectorized_method

__all__ = [
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
]
