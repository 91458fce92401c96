"""MLP neurons read through the LM head, and clamped during generation.

An MLP neuron j of layer l writes its activation a_j times the column W_down[:, j] into the
residual stream. Read directly through the final norm's weight g and the unembedding W_U (the
logit lens applied to one neuron: Geva et al. 2022, "Transformer Feed-Forward Layers Build
Predictions by Promoting Concepts in the Vocabulary Space"; Gurnee et al. 2024, "Universal Neurons
in GPT2 Language Models"), the neuron promotes the tokens with the largest entries of
    W_U @ (g * W_down[:, j])            (vocab,)
(the norm's 1/rms scale is common to all tokens, so it does not change their order). Clamping
sets a_j (the input of down_proj) to a chosen value at every position, to see what the neuron does
to generation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from posttrain.errors import UserError

NEURON_CHUNK = 1024  # neurons projected at once: vocab x chunk floats, not vocab x d_ff


def decoder_layers(model) -> Sequence[torch.nn.Module]:
    body = getattr(model, "model", None)
    layers = getattr(body, "layers", None)
    if layers is None or not hasattr(layers[0], "mlp") or not hasattr(layers[0].mlp, "down_proj"):
        raise UserError("neuron analysis needs a Llama-style model (model.layers[i].mlp.down_proj)")
    return layers


def down_proj(model, layer: int) -> torch.nn.Linear:
    layers = decoder_layers(model)
    if not 0 <= layer < len(layers):
        raise UserError(f"layer {layer}: the model has layers 0..{len(layers) - 1}")
    return layers[layer].mlp.down_proj


def readout(model) -> tuple[torch.Tensor, torch.Tensor]:
    """(final norm weight g (d_model,), unembedding W_U (vocab, d_model)) in float32."""
    norm = getattr(model.model, "norm", None)
    if norm is None or getattr(norm, "weight", None) is None:
        raise UserError("neuron analysis needs the model's final norm weight (model.model.norm.weight)")
    return norm.weight.detach().float(), model.get_output_embeddings().weight.detach().float()


def check_neurons(model, layer: int, neurons: Sequence[int]) -> None:
    width = down_proj(model, layer).weight.shape[1]
    bad = [j for j in neurons if not 0 <= j < width]
    if bad:
        raise UserError(f"neuron {bad[0]}: layer {layer} has neurons 0..{width - 1}")


@torch.no_grad()
def neuron_logits(model, layer: int, neurons: Sequence[int]) -> torch.Tensor:
    """W_U @ (g * W_down[:, neurons]): (vocab, len(neurons)), each column one neuron's token logits."""
    check_neurons(model, layer, neurons)
    g, unembed = readout(model)
    columns = down_proj(model, layer).weight.detach().float()[:, list(neurons)]
    return unembed @ (g[:, None] * columns.to(g.device))


@torch.no_grad()
def top_tokens(model, layer: int, neurons: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
    """Each neuron's k most promoted tokens, (token id, logit), best first."""
    out = []
    for start in range(0, len(neurons), NEURON_CHUNK):
        logits = neuron_logits(model, layer, neurons[start : start + NEURON_CHUNK])
        values, ids = logits.topk(min(k, logits.shape[0]), dim=0)
        out += [list(zip(ids[:, j].tolist(), values[:, j].tolist())) for j in range(logits.shape[1])]
    return out


@torch.no_grad()
def neurons_for_token(model, token_id: int, k: int) -> list[tuple[int, int, float]]:
    """The k neurons (over all layers) that most promote `token_id`: (layer, neuron, logit)."""
    g, unembed = readout(model)
    if not 0 <= token_id < unembed.shape[0]:
        raise UserError(f"token id {token_id} is outside the vocabulary of {unembed.shape[0]}")
    direction = unembed[token_id] * g  # W_U[t] . (g * w_j) = (W_U[t] * g) . w_j
    scored = []
    for index, block in enumerate(decoder_layers(model)):
        logits = direction @ block.mlp.down_proj.weight.detach().float().to(direction.device)
        values, ids = logits.topk(min(k, logits.shape[0]))
        scored += [(index, j, v) for j, v in zip(ids.tolist(), values.tolist())]
    return sorted(scored, key=lambda item: -item[2])[:k]


@torch.no_grad()
def strongest_neurons(model, layer: int, k: int) -> list[int]:
    """The layer's k neurons with the largest top logit (the most token-specific writers)."""
    width = down_proj(model, layer).weight.shape[1]
    best = torch.cat(
        [
            neuron_logits(model, layer, range(s, min(s + NEURON_CHUNK, width))).max(dim=0).values
            for s in range(0, width, NEURON_CHUNK)
        ]
    )
    return best.topk(min(k, width)).indices.tolist()


@contextmanager
def clamped(model, layer: int, values: dict[int, float]) -> Iterator[None]:
    """Within the block, neuron j of `layer` has activation values[j] at every position (a forward
    pre-hook on down_proj, whose input is the MLP's activation act(gate(x)) * up(x))."""
    check_neurons(model, layer, list(values))
    index = torch.tensor(list(values), dtype=torch.long)
    fill = torch.tensor(list(values.values()))

    def hook(_module, inputs):
        activation = inputs[0].clone()
        activation[..., index.to(activation.device)] = fill.to(activation.device, activation.dtype)
        return (activation, *inputs[1:])

    handle = down_proj(model, layer).register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()
