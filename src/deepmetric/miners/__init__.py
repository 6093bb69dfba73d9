"""Miners: pick informative pairs or triplets inside a batch (PML ``miners``)."""

from .base_miner import BaseMiner

__all__ = ["BaseMiner"]
