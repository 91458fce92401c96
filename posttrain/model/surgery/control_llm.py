"""Control LLM (Wei et al. 2025, "Control LLM: Controlled Evolution for Intelligence Retention in
LLM"), the Lerp variant with its divergence loss, on Llama.

Each chosen block runs twice on the same input: the frozen pre-trained block and a trainable copy
of it. Their output hidden states are interpolated,

    h = lerp(h_frozen, h_trained, a) = h_frozen + a * (h_trained - h_frozen),   a = sigmoid(t),

with t fixed (`learn_mix: false`) or trained, and a divergence loss keeps the branches aligned
(the public code's default 'cosine' type, margin 0):

    d_token = relu(1 - cos(h_frozen, h_trained)),   L_div = mean_tokens smooth_l1(d_token, 0),

averaged over the controlled blocks and added to the objective with weight `divergence_weight`
(TokenLogprobs collects it through `auxiliary_losses`). The copy starts equal to the block, so the
model is exactly the base at init. A lerp of two non-linear blocks is not one Llama block, so the
result is saved as `model_type: control_llama` (frozen and trained branches, the mix logits):
importing posttrain.model.surgery.control_llm (every posttrain model loader does) registers it with
AutoConfig / AutoModelForCausalLM, so `from_pretrained` loads it with trust_remote_code off.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    DynamicCache,
    LlamaConfig,
    LlamaForCausalLM,
)

from posttrain.errors import UserError
from posttrain.model.surgery.expand import decoder_layers

_CACHE_KWARGS = ("cache", "past_key_values", "past_key_value")


def cosine_divergence(h_frozen: torch.Tensor, h_trained: torch.Tensor) -> torch.Tensor:
    """mean over tokens of smooth_l1(relu(1 - cos), 0): 0.5 d^2 for d < 1, d - 0.5 above. Tokens
    where a state is the zero vector (no direction, e.g. a zero pad embedding) are left out."""
    h_frozen, h_trained = h_frozen.float(), h_trained.float()
    cos = F.cosine_similarity(h_frozen, h_trained, dim=-1, eps=1e-8)
    d = F.relu(1.0 - cos)
    valid = ((h_frozen.norm(dim=-1) > 1e-12) & (h_trained.norm(dim=-1) > 1e-12)).float()
    per_token = F.smooth_l1_loss(d, torch.zeros_like(d), reduction="none")
    return (per_token * valid).sum() / valid.sum().clamp(min=1.0)


def _side_cache(cache):
    """The trained branch keeps its keys/values in a cache of its own, hung on the main one (so it
    lives exactly as long as one generation): sharing the layer index would store them twice."""
    side = getattr(cache, "_posttrain_control_cache", None)
    if side is None:
        side = DynamicCache()
        cache._posttrain_control_cache = side
    return side


class ControlBlock(nn.Module):
    def __init__(self, frozen: nn.Module, trained: nn.Module, mix: float, learn_mix: bool):
        super().__init__()
        self.frozen, self.trained = frozen, trained
        self.mix_logit = nn.Parameter(torch.tensor(math.log(mix / (1 - mix))), requires_grad=learn_mix)
        self.divergence: torch.Tensor | None = None

    def forward(self, hidden_states, *args, **kwargs):
        out_frozen = self.frozen(hidden_states, *args, **kwargs)
        for key in _CACHE_KWARGS:
            if kwargs.get(key) is not None:
                kwargs = {**kwargs, key: _side_cache(kwargs[key])}
        out_trained = self.trained(hidden_states, *args, **kwargs)
        is_tuple = isinstance(out_frozen, tuple)
        h_frozen = out_frozen[0] if is_tuple else out_frozen
        h_trained = out_trained[0] if is_tuple else out_trained
        mixed = torch.lerp(h_frozen, h_trained, torch.sigmoid(self.mix_logit).to(h_frozen.dtype))
        self.divergence = cosine_divergence(h_frozen, h_trained) if torch.is_grad_enabled() else None
        return (mixed, *out_frozen[1:]) if is_tuple else mixed


class ControlLlamaConfig(LlamaConfig):
    model_type = "control_llama"

    def __init__(
        self,
        control_blocks: list[int] | None = None,
        control_mix: float = 0.5,
        control_learn_mix: bool = False,
        control_divergence_weight: float = 1.0,
        **kwargs,
    ):
        self.control_blocks = list(control_blocks or [])
        self.control_mix, self.control_learn_mix = control_mix, control_learn_mix
        self.control_divergence_weight = control_divergence_weight
        super().__init__(**kwargs)


class ControlLlamaForCausalLM(LlamaForCausalLM):
    config_class = ControlLlamaConfig

    def __init__(self, config: ControlLlamaConfig):
        super().__init__(config)
        _wrap_blocks(self, config)

    def control_blocks(self) -> list[ControlBlock]:
        return [m for m in decoder_layers(self) if isinstance(m, ControlBlock)]

    def auxiliary_losses(self) -> dict[str, torch.Tensor]:
        """The divergence of the last training forward (mean over blocks, weighted), then cleared."""
        found = [b.divergence for b in self.control_blocks() if b.divergence is not None]
        for block in self.control_blocks():
            block.divergence = None
        weight = self.config.control_divergence_weight
        if not found or not weight:
            return {}
        return {"divergence_loss": weight * torch.stack(found).mean()}


def _wrap_blocks(model, config: ControlLlamaConfig) -> None:
    layers = decoder_layers(model)
    for i in config.control_blocks:
        if not isinstance(layers[i], ControlBlock):
            layers[i] = ControlBlock(layers[i], copy.deepcopy(layers[i]), config.control_mix, config.control_learn_mix)


def to_control_llm(model, blocks: list[int], mix: float, learn_mix: bool, divergence_weight: float):
    """A Llama turned into a ControlLlamaForCausalLM in place (same weights, trainable copies of
    `blocks` beside the originals); every other weight is frozen."""
    if not isinstance(model, ControlLlamaForCausalLM):
        if type(model) is not LlamaForCausalLM:
            raise UserError(f"adapter.kind: control_llm needs a Llama causal LM; {type(model).__name__} does not fit")
        if not 0.0 < mix < 1.0:
            raise UserError(f"adapter.mix must be strictly between 0 and 1, got {mix}")
        num_layers = len(decoder_layers(model))
        blocks = sorted(set(blocks)) if blocks else list(range(num_layers))
        bad = [b for b in blocks if not 0 <= b < num_layers]
        if bad:
            raise UserError(
                f"adapter.blocks: block index {bad[0]} out of range: the model has "
                f"{num_layers} blocks (0..{num_layers - 1})"
            )
        fields = {k: v for k, v in model.config.to_dict().items() if k not in ("model_type", "architectures")}
        config = ControlLlamaConfig(
            control_blocks=blocks,
            control_mix=mix,
            control_learn_mix=learn_mix,
            control_divergence_weight=divergence_weight,
            **fields,
        )
        config.architectures = [ControlLlamaForCausalLM.__name__]
        model.__class__ = ControlLlamaForCausalLM  # same modules and weights; new forward-time parts
        model.config = model.model.config = config
        _wrap_blocks(model, config)
    model.requires_grad_(False)
    for block in model.control_blocks():
        block.trained.requires_grad_(True)
        block.mix_logit.requires_grad_(model.config.control_learn_mix)
    return model


AutoConfig.register(ControlLlamaConfig.model_type, ControlLlamaConfig, exist_ok=True)
AutoModelForCausalLM.register(ControlLlamaConfig, ControlLlamaForCausalLM, exist_ok=True)
