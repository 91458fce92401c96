"""Mixture-of-experts router load-balancing loss (Switch Transformer eqs. 4-6, as Mixtral, JetMoE,
Qwen-MoE and OLMoE train it in transformers):

    aux = E * sum_e f_e * P_e,   f_e = share of top-k assignments routed to expert e,
                                 P_e = mean router probability of expert e   (over tokens and layers)
    objective += coef * aux

posttrain's log-prob path calls the decoder and the head directly (model/logprobs.py), so it never
sees the loss transformers adds inside `ForCausalLM.forward(labels=...)`; this module recomputes it
from the decoder's router logits with the model's own function and coefficient. It is on whenever
the model has a positive router coefficient (`router_aux_loss_coef`, JetMoE's `aux_loss_coef`), even
when its config leaves `output_router_logits` off: training an MoE without it lets experts collapse.
Set the coefficient to 0 in the model's config.json to train without it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

_COEF_NAMES = ("router_aux_loss_coef", "aux_loss_coef")
_EXPERT_NAMES = ("num_local_experts", "num_experts")


@dataclass(frozen=True)
class RouterAux:
    coef: float
    num_experts: int
    top_k: int
    loss_fn: Callable  # the model family's load_balancing_loss_func(router_logits, E, k, mask)

    def __call__(self, router_logits, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """coef * aux for one forward; router_logits is the decoder's tuple of [tokens, E] tensors."""
        aux = self.loss_fn(tuple(router_logits), self.num_experts, self.top_k, attention_mask)
        return self.coef * aux


def _first(config, names):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


def router_aux_for(model) -> RouterAux | None:
    """The model's router loss, or None for a dense model (or an MoE with coefficient 0)."""
    config = model.config
    coef, experts = _first(config, _COEF_NAMES), _first(config, _EXPERT_NAMES)
    top_k = getattr(config, "num_experts_per_tok", None)
    if not coef or not experts or not top_k:
        return None
    module = importlib.import_module(type(model.get_decoder()).__module__)
    loss_fn = getattr(module, "load_balancing_loss_func", None)
    if loss_fn is None:  # an MoE family without its own: Mixtral's is the common definition
        from transformers.models.mixtral.modeling_mixtral import (
            load_balancing_loss_func as loss_fn,
        )
    return RouterAux(float(coef), int(experts), int(top_k), loss_fn)
