"""``DeepAdversarialMetricLearning``: a generator synthesises hard negatives for the metric.

Duan, Zheng, Lu & Zhou, "Deep Adversarial Metric Learning", CVPR 2018,
https://openaccess.thecvf.com/content_cvpr_2018/html/Duan_Deep_Adversarial_Metric_CVPR_2018_paper.html.
Generator input ``cat([x_a, x_p, x_n])`` (trunk outputs, width 3D) -> synthetic negative (width D);
``g_hard_loss = MSE(norm(synth_n), norm(x_a))``, ``g_reg_loss = MSE(norm(synth_n), norm(x_n))`` and
``g_adv_loss`` = a triplet loss with negated distance and margin (the generator tries to make the
synthetic negative hard).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._validation import fail
from ..distances.lp_distance import LpDistance
from ..functional.tuples import get_random_triplet_indices
from ..losses.triplet_margin_loss import TripletMarginLoss
from ..miners.embeddings_already_packaged_as_triplets import EmbeddingsAlreadyPackagedAsTriplets
from .base_trainer import not_set_up
from .train_with_classifier import TrainWithClassifier


class NegativeLpDistance(LpDistance):
    """``LpDistance`` with both ``compute_mat`` and ``pairwise_distance`` negated."""

    def compute_mat(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        return -super().compute_mat(query_emb, ref_emb)

    def pairwise_distance(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        return -super().pairwise_distance(query_emb, ref_emb)


class DeepAdversarialMetricLearning(TrainWithClassifier):
    """Phases by epoch: ``<= metric_alone_epochs`` metric only; the next ``g_alone_epochs`` the
    generator only; afterwards both (with ``synth_loss`` on synthetic triplets). Its own three
    parameters come first, so pass the BaseTrainer arguments by keyword."""

    def __init__(
        self,
        metric_alone_epochs: int = 0,
        g_alone_epochs: int = 0,
        g_triplets_per_anchor: int = 100,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        for name, v in (
            ("metric_alone_epochs", metric_alone_epochs),
            ("g_alone_epochs", g_alone_epochs),
            ("g_triplets_per_anchor", g_triplets_per_anchor),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                fail("DeepAdversarialMetricLearning", f"`{name}` a non-negative int", repr(v))
        self.metric_alone_epochs = metric_alone_epochs
        self.g_alone_epochs = g_alone_epochs
        self.g_triplets_per_anchor = g_triplets_per_anchor
        super().__init__(*args, **kwargs)
        g_adv = self.loss_funcs["g_adv_loss"]
        if not isinstance(g_adv, TripletMarginLoss):
            fail(
                self.owner,
                "loss_funcs['g_adv_loss'] to be a TripletMarginLoss",
                type(g_adv).__name__,
                exc=TypeError,
            )
        g_adv.margin = -g_adv.margin
        g_adv.distance = NegativeLpDistance()
        if self.loss_weights is None:
            raise not_set_up(self, "loss_weights")
        self.original_loss_weights = dict(self.loss_weights)

    def custom_setup(self) -> None:
        self.mining_funcs["synth_packaged_as_triplets"] = EmbeddingsAlreadyPackagedAsTriplets()
        self.loss_names += ["g_hard_loss", "g_reg_loss"]

    def _internal_mining_keys(self) -> tuple[str, ...]:
        return ("synth_packaged_as_triplets",)

    def schema(self) -> dict[str, dict[str, list[str]]]:
        schema = super().schema()
        schema["models"]["allowed"] = schema["models"]["allowed"] + ["generator"]
        schema["models"]["essential"] = ["trunk", "generator"]
        schema["loss_funcs"]["allowed"] = schema["loss_funcs"]["allowed"] + [
            "synth_loss",
            "g_adv_loss",
        ]
        schema["loss_funcs"]["essential"] = ["metric_loss", "synth_loss", "g_adv_loss"]
        return schema

    # phases ----------------------------------------------------------------------------
    def do_metric_alone(self) -> bool:
        return self.epoch <= self.metric_alone_epochs

    def do_adv_alone(self) -> bool:
        return (
            self.metric_alone_epochs < self.epoch <= self.metric_alone_epochs + self.g_alone_epochs
        )

    def do_both(self) -> bool:
        return not (self.do_metric_alone() or self.do_adv_alone())

    def update_loss_weights(self) -> None:
        weights = dict(self.original_loss_weights)
        if self.do_metric_alone():
            off = ["synth_loss", "g_adv_loss", "g_hard_loss", "g_reg_loss"]
        elif self.do_adv_alone():
            off = ["metric_loss", "classifier_loss", "synth_loss"]
        else:
            off = []
        for name in off:
            if name in weights:
                weights[name] = 0
        self.loss_weights = weights

    def step_optimizers(self) -> None:
        metric_keys = [f"{k}_optimizer" for k in ("trunk", "embedder", "classifier")]
        if not self.do_adv_alone():
            for key in metric_keys:
                self._step_optimizer(key)
        if not self.do_metric_alone():
            self._step_optimizer("generator_optimizer")

    # loss ------------------------------------------------------------------------------
    def calculate_loss(self, curr_batch: tuple[Any, Tensor]) -> None:
        data, labels = curr_batch
        trunk_output = self.get_trunk_output(data)
        embeddings = self.get_final_embeddings(trunk_output)
        labels = labels.to(embeddings.device)
        logits = self.maybe_get_logits(embeddings)
        indices_tuple = self.maybe_mine_embeddings(embeddings, labels)
        self.losses["metric_loss"] = self.maybe_get_metric_loss(embeddings, labels, indices_tuple)
        self.losses["classifier_loss"] = self.maybe_get_classifier_loss(logits, labels)
        if not self.do_metric_alone():
            self.calculate_synth_loss(trunk_output, labels)

    def calculate_synth_loss(self, trunk_output: Tensor, labels: Tensor) -> None:
        a, p, n = get_random_triplet_indices(labels, t_per_anchor=self.g_triplets_per_anchor)
        if a.numel() == 0:
            return
        real_a, real_p, real_n = trunk_output[a], trunk_output[p], trunk_output[n]
        synth_n = self.models["generator"](torch.cat([real_a, real_p, real_n], dim=1))
        packaged = torch.stack([real_a, real_p, synth_n], dim=1).reshape(-1, trunk_output.shape[1])
        final = self.get_final_embeddings(packaged)
        dummy_labels = torch.arange(final.shape[0], device=final.device)
        triplets = self.mining_funcs["synth_packaged_as_triplets"](final, dummy_labels)
        triplets = tuple(t.to(final.device) for t in triplets)
        if self.loss_weights is None:
            raise not_set_up(self, "loss_weights")
        if self.loss_weights.get("synth_loss", 0) > 0:
            self.losses["synth_loss"] = self.loss_funcs["synth_loss"](final, dummy_labels, triplets)
        self.losses["g_adv_loss"] = self.loss_funcs["g_adv_loss"](final, dummy_labels, triplets)
        self.losses["g_hard_loss"] = F.mse_loss(
            F.normalize(synth_n, dim=1), F.normalize(real_a, dim=1)
        )
        self.losses["g_reg_loss"] = F.mse_loss(
            F.normalize(synth_n, dim=1), F.normalize(real_n, dim=1)
        )
