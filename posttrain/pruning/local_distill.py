"""Puzzle's blockwise local distillation (BLD) and replacement scoring (Bercovich et al. 2024,
sections 3-4), decoupled per sub-block as the paper's cheaper variant:

- every attention alternative of layer l learns to map the parent's residual stream entering
  layer l to the parent attention's output there; every FFN alternative the parent's stream after
  attention to the parent FFN's output. Inputs are always the parent's activations, so all blocks
  train independently. Loss: normalised MSE, sum ||y' - y||^2 / sum ||y||^2 (the paper's choice).
- a block variant (attention x FFN alternative) is scored by the whole model's mean next-token
  KL(parent || model) on held-out calibration with only layer l replaced by it (the paper's
  "replace-1-block" KL score); the parent's own variant scores exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from posttrain.pruning.alternatives import AttentionBranch, FfnBranch, install


@dataclass
class LayerActivations:
    """One layer's parent activations over the calibration batches (lists, one entry a batch)."""

    inputs: list[torch.Tensor] = field(default_factory=list)  # residual stream entering the layer
    attention: list[torch.Tensor] = field(default_factory=list)  # attention's output (pre-residual)
    ffn: list[torch.Tensor] = field(default_factory=list)  # FFN's output (pre-residual)
    kwargs: list[dict] = field(default_factory=list)  # position_embeddings, attention_mask

    def middle(self, i: int) -> torch.Tensor:
        """The stream entering the FFN: input + attention output."""
        return self.inputs[i] + self.attention[i]


@torch.no_grad()
def parent_activations(model, batches: list[torch.Tensor]) -> list[LayerActivations]:
    """Run the parent once per batch, recording every layer's input and sub-block outputs."""
    layers = model.model.layers
    acts = [LayerActivations() for _ in layers]
    hooks = []
    for layer, act in zip(layers, acts):

        def before(module, args, kwargs, act=act):
            act.inputs.append((args[0] if args else kwargs["hidden_states"]).detach())
            act.kwargs.append({k: kwargs.get(k) for k in ("position_embeddings", "attention_mask")})

        hooks += [
            layer.register_forward_pre_hook(before, with_kwargs=True),
            layer.self_attn.register_forward_hook(lambda m, a, out, act=act: act.attention.append(out[0])),
            layer.mlp.register_forward_hook(lambda m, a, out, act=act: act.ffn.append(out)),
        ]
    try:
        for ids in batches:
            model(input_ids=ids, use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    return acts


def imitation_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Normalised MSE: sum ||prediction - target||^2 / sum ||target||^2."""
    return (prediction.float() - target.float()).pow(2).sum() / target.float().pow(2).sum().clamp(min=1e-12)


def _branch_output(branch, act: LayerActivations, i: int) -> torch.Tensor:
    if isinstance(branch, AttentionBranch):
        return branch(act.inputs[i], **act.kwargs[i])
    return branch(act.middle(i))


def _target(branch, act: LayerActivations, i: int) -> torch.Tensor:
    return act.attention[i] if isinstance(branch, AttentionBranch) else act.ffn[i]


@torch.no_grad()
def branch_error(branch: AttentionBranch | FfnBranch, act: LayerActivations) -> float:
    """The branch's normalised MSE against the parent over all calibration batches."""
    num = den = 0.0
    for i in range(len(act.inputs)):
        out, target = _branch_output(branch, act, i).float(), _target(branch, act, i).float()
        num += float((out - target).pow(2).sum())
        den += float(target.pow(2).sum())
    return num / max(den, 1e-12)


def local_distill(
    branch: AttentionBranch | FfnBranch, act: LayerActivations, steps: int, lr: float, seed: int = 0
) -> None:
    """BLD: Adam on the normalised MSE, one calibration batch a step (cycled in a seeded order).
    This is a regression of one sub-block on cached tensors, not a training run (no tokens, data
    plan or checkpoints), so it does not go through train/loop.py; uptraining does."""
    params = [p for p in branch.parameters()]
    if not params or steps == 0:
        return  # a no-op has nothing to learn
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)
    order = torch.randperm(len(act.inputs), generator=torch.Generator().manual_seed(seed)).tolist()
    branch.train()
    for step in range(steps):
        i = order[step % len(order)]
        loss = imitation_error(_branch_output(branch, act, i), _target(branch, act, i))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    branch.eval()
    branch.requires_grad_(False)


@torch.no_grad()
def next_token_logprobs(model, batches: list[torch.Tensor]) -> list[torch.Tensor]:
    return [F.log_softmax(model(input_ids=ids, use_cache=False).logits.float(), -1) for ids in batches]


@torch.no_grad()
def kl_to_parent(model, batches: list[torch.Tensor], parent_logps: list[torch.Tensor]) -> float:
    """Mean over tokens of KL(parent || model) of the next-token distributions."""
    total, tokens = 0.0, 0
    for ids, ref in zip(batches, parent_logps):
        logps = F.log_softmax(model(input_ids=ids, use_cache=False).logits.float(), -1)
        total += float((ref.exp() * (ref - logps)).sum())
        tokens += ids.numel()
    return total / max(tokens, 1)


@torch.no_grad()
def score_variants(
    model,
    layer_index: int,
    variants: list[tuple[AttentionBranch, FfnBranch]],
    batches: list[torch.Tensor],
    parent_logps: list[torch.Tensor],
) -> list[float]:
    """KL(parent || parent with layer `layer_index` replaced) for each (attention, FFN) variant;
    the layer's own modules are put back afterwards."""
    layer = model.model.layers[layer_index]
    original = (
        AttentionBranch(layer.input_layernorm, layer.self_attn),
        FfnBranch(layer.post_attention_layernorm, layer.mlp),
    )
    scores = []
    try:
        for attention, ffn in variants:
            install(layer, attention, ffn)
            scores.append(kl_to_parent(model, batches, parent_logps))
    finally:
        install(layer, *original)
    return scores
