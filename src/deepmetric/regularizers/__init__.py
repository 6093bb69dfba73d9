"""Regularizers for embeddings or class weights (PML ``regularizers``)."""

from .base_regularizer import BaseRegularizer

__all__ = ["BaseRegularizer"]
