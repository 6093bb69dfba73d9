"""``ManifoldLoss``: manifold (random-walk) similarity to learnable hard proxies."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from .. import _validation as V
from .._registry import LOSSES
from .._types import IndicesTuple, LossDict, Tensor
from ..distances import BaseDistance, CosineSimilarity
from ..functional import manifold_loss as F
from ..functional._dtype import upcast
from .base_metric_loss_function import BaseMetricLossFunction


@LOSSES.register
class ManifoldLoss(BaseMetricLossFunction):
    """Ensemble deep manifold similarity loss with ``K`` learnable proxies.

    Aziere & Todorovic, "Ensemble Deep Manifold Similarity Learning using Hard Proxies",
    CVPR 2019, https://openaccess.thecvf.com/content_CVPR_2019/papers/Aziere_Ensemble_Deep_Manifold_Similarity_Learning_Using_Hard_Proxies_CVPR_2019_paper.pdf.

    Embeddings and proxies form one graph; ``F = (1 - alpha) (I - alpha S)^-1`` is its
    random-walk similarity (``S`` the normalised affinities ``exp(2 max(cos, 0))``, see
    :mod:`deepmetric.functional.manifold_loss`). Each embedding ``i`` is assigned a proxy
    ``c_i``; the intrinsic loss asks ``F_{i, c_i}`` to beat ``F_{i, k}`` of every other proxy by
    ``margin``, the context loss asks the same of the cosine between rows of ``F``::

        L = mean_i L_int_i + lambdaC * mean_i L_ctx_i

    ``indices_tuple`` is **not** a miner's output here: it is the proxy assignment, a
    ``LongTensor[N]`` with values in ``[0, K)``. When it is None a random assignment that uses
    every proxy at least once is drawn (needs ``N >= K``) from ``generator`` (or the global RNG).
    Labels and reference embeddings are not supported. Already reduced.

    ``lambdaC = inf`` means *context loss only* (``L = mean_i L_ctx_i``), as the paper and
    pytorch-metric-learning's docstring describe; pytorch-metric-learning itself returns
    ``inf`` (or NaN) in that case. ``lambdaC = 0`` skips the context term.

    Args:
        l: embedding size.
        K: number of proxies.
        lambdaC: weight of the context loss (``>= 0``, may be ``inf``).
        alpha: random-walk parameter in ``[0, 1)``.
        margin: margin of both losses.
        generator: a ``torch.Generator`` for the proxies' initialisation and the random
            assignments (keyword-only; deepmetric addition).
        **kwargs: ``collect_stats``, ``reducer``, ``distance`` (default ``CosineSimilarity()``),
            ``embedding_regularizer``, ``embedding_reg_weight``.

    The inverse is computed in float32 for half inputs and in the input precision otherwise
    (pytorch-metric-learning always uses float32).
    """

    recordable = ("K", "l", "lambdaC", "alpha", "margin")
    requires_labels_or_indices_tuple = False
    supports_labels = False
    #: miner tuples are refused; the proxy assignment (a LongTensor[N]) is accepted instead
    supports_indices_tuple = False
    supports_ref_emb = False

    def __init__(
        self,
        l: int,  # noqa: E741  (PML's name)
        K: int = 50,
        lambdaC: float = 1.0,
        alpha: float = 0.8,
        margin: float = 5e-4,
        *,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        for name, value in (("l", l), ("K", K)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                V.fail(owner, f"`{name}` to be a positive int", repr(value))
        l, K = int(l), int(K)  # noqa: E741
        if not lambdaC >= 0:  # also refuses NaN
            V.fail(owner, "`lambdaC` >= 0 (inf for the context loss only)", repr(lambdaC))
        if not 0 <= alpha < 1:
            V.fail(owner, "`alpha` in [0, 1)", repr(alpha))
        if generator is not None and not isinstance(generator, torch.Generator):
            V.fail(
                owner,
                "`generator` to be a torch.Generator",
                type(generator).__name__,
                exc=TypeError,
            )
        self.K = K
        self.l = l
        self.lambdaC = lambdaC
        self.alpha = alpha
        self.margin = margin
        self.generator = generator
        device = generator.device if generator is not None else None
        self.proxies = torch.nn.Parameter(torch.randn(K, l, generator=generator, device=device))

    def get_default_distance(self) -> BaseDistance:
        return CosineSimilarity()

    # ------------------------------------------------------------------ validation
    def _validate(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor | None,
        ref_labels: Tensor | None,
    ) -> tuple[Tensor | None, Tensor, Tensor | None]:
        out = super()._validate(embeddings, labels, None, ref_emb, ref_labels)
        if embeddings.shape[1] != self.l:
            V.fail(
                type(self).__name__,
                f"`embeddings` of shape (N, l) with l={self.l}",
                str(tuple(embeddings.shape)),
            )
        if indices_tuple is not None:
            self._check_assignment(indices_tuple, embeddings.shape[0])
        return out

    def _check_assignment(self, assignment: Any, n: int) -> None:
        owner = type(self).__name__
        expected = f"`indices_tuple` to be the proxy assignment: a LongTensor of shape ({n},)"
        if isinstance(assignment, (tuple, list)) and any(
            isinstance(t, torch.Tensor) for t in assignment
        ):
            V.fail(
                owner,
                expected,
                f"a tuple of {len(assignment)} tensors",
                "Miner tuples are not supported by ManifoldLoss.",
            )
        if not isinstance(assignment, torch.Tensor):
            V.fail(owner, expected, type(assignment).__name__, exc=TypeError)
        if assignment.ndim != 1 or assignment.shape[0] != n:
            V.fail(owner, expected, f"shape {tuple(assignment.shape)}")
        if (
            assignment.is_floating_point()
            or assignment.is_complex()
            or assignment.dtype == torch.bool
        ):
            V.fail(owner, expected, str(assignment.dtype), exc=TypeError)
        if n and (int(assignment.min()) < 0 or int(assignment.max()) >= self.K):
            V.fail(
                owner,
                f"proxy indices in [0, K) with K={self.K}",
                f"[{int(assignment.min())}, {int(assignment.max())}]",
            )

    # ------------------------------------------------------------------ loss
    def random_assignment(self, n: int, device: torch.device) -> Tensor:
        """A random proxy per embedding, every proxy used at least once (``n >= K``)."""
        if n < self.K:
            V.fail(
                type(self).__name__,
                f"a batch of at least K={self.K} embeddings for a random proxy assignment",
                f"N={n}",
                "Pass the assignment as `indices_tuple` or lower K.",
            )
        gen_device = self.generator.device if self.generator is not None else torch.device("cpu")
        extra = torch.randint(0, self.K, (n - self.K,), generator=self.generator, device=gen_device)
        assignment = torch.cat([torch.arange(self.K, device=gen_device), extra])
        order = torch.randperm(n, generator=self.generator, device=gen_device)
        return assignment[order].to(device)

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> LossDict:
        n = embeddings.shape[0]
        if indices_tuple is None:
            assignment = self.random_assignment(n, embeddings.device)
        else:
            assignment = indices_tuple.to(embeddings.device).long()  # type: ignore[union-attr]
        dtype = torch.promote_types(upcast(embeddings).dtype, self.proxies.dtype)
        nodes = torch.cat([embeddings.to(dtype), self.proxies.to(embeddings.device, dtype)])
        sim = self.distance(nodes)  # [N+K, N+K]
        context_only = math.isinf(self.lambdaC)
        loss_int, loss_ctx = F.manifold_terms(
            sim,
            assignment,
            alpha=self.alpha,
            margin=self.margin,
            intrinsic=not context_only,
            context=self.lambdaC != 0,
        )
        if loss_ctx is None:
            loss = loss_int.mean()  # type: ignore[union-attr]
        elif loss_int is None:
            loss = loss_ctx.mean()
        else:
            loss = loss_int.mean() + self.lambdaC * loss_ctx.mean()
        loss = loss.to(embeddings.dtype)
        return {"loss": {"losses": loss, "indices": None, "reduction_type": "already_reduced"}}
