"""Locret's retaining heads (Huang et al. 2024, "Locret: Accelerating Long-Context LLM Inference
with Retaining Heads"), trained on a frozen backbone.

Each attention layer i gets a small FFN R_i(x) = W2 act(W1 x) over x = [q; k; v], the layer's
query, key and value projections of one token (all heads concatenated), with one output per KV
head: the predicted causal importance score (CIS) of that token's cache unit. The label of prompt
token k in layer i, KV head j is S_j[k] = max over the answer's query positions p and over the
query heads h of group j of (q_p . k_k) / sqrt(d), the pre-softmax attention logit (the paper's
label; max over the GQA group as the paper does). The loss is
    SmoothL1(S~[k], S[k]) + alpha * (S~[k] - S~[k-1])^2
summed over layers and heads, averaged over prompt tokens (the second term keeps neighbouring
predictions smooth). The backbone is frozen: only the heads train.

Choices the paper leaves open (said here, per the project's rule): q, k, v are the projections'
outputs before RoPE (position-free content); act is SiLU (Llama's own activation); the heads'
width defaults to 256 at the tiny scale (the paper's Llama-3.1-8B heads are wider).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
from torch import nn


class RetainingHeads(nn.Module):
    """One FFN per layer: [q; k; v] (width q_dim + 2 kv_dim) -> one score per KV head."""

    def __init__(self, layers: int, in_dim: int, hidden: int, kv_heads: int):
        super().__init__()
        self.config = {"layers": layers, "in_dim": in_dim, "hidden": hidden, "kv_heads": kv_heads}
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, kv_heads)) for _ in range(layers)
        )

    def forward(self, layer: int, qkv: torch.Tensor) -> torch.Tensor:
        """qkv: [B, T, in_dim] -> scores [B, kv_heads, T]."""
        return self.heads[layer](qkv.float()).transpose(1, 2)


def heads_for(model, hidden: int = 256, seed: int = 0) -> RetainingHeads:
    """Retaining heads sized for `model`'s attention layers."""
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    torch.manual_seed(seed)
    return RetainingHeads(
        c.num_hidden_layers,
        head_dim * (c.num_attention_heads + 2 * c.num_key_value_heads),
        hidden,
        c.num_key_value_heads,
    )


@contextlib.contextmanager
def capture_qkv(model):
    """Forward hooks on every layer's q/k/v projections; yields {layer: [B, T, q+k+v dims]} of the
    latest forward (the concatenation happens on read, per layer)."""
    parts: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    for index, layer in enumerate(model.model.layers):
        attn = layer.self_attn
        for name in ("q_proj", "k_proj", "v_proj"):

            def hook(_module, _inputs, output, key=(index, name)):
                parts[key] = output.detach()

            handles.append(getattr(attn, name).register_forward_hook(hook))

    class _View(dict):
        def __missing__(self, layer: int) -> torch.Tensor:
            return torch.cat([parts[(layer, n)] for n in ("q_proj", "k_proj", "v_proj")], dim=-1)

    try:
        yield _View()
    finally:
        for h in handles:
            h.remove()


def locret_loss(predicted: torch.Tensor, labels: torch.Tensor, alpha: float) -> torch.Tensor:
    """SmoothL1(pred, label) + alpha * (pred[k] - pred[k-1])^2, both averaged; [B, H, T] inputs."""
    fit = nn.functional.smooth_l1_loss(predicted, labels)
    smooth = (predicted[..., 1:] - predicted[..., :-1]).pow(2).mean() if predicted.shape[-1] > 1 else 0.0
    return fit + alpha * smooth


@torch.no_grad()
def cis_features(model, prompt_ids: list[int], answer_ids: list[int]) -> tuple[dict, dict]:
    """One frozen forward over prompt + answer: per layer the prompt tokens' [q; k; v] and their
    CIS labels (max logit from the answer's queries). Needs the recording attention
    (attention.use_recording_attention)."""
    from posttrain.inference.kv_eviction.attention import AttentionRecorder, recording

    n_q = len(prompt_ids)
    ids = torch.tensor([prompt_ids + answer_ids])
    rows = torch.arange(n_q - 1, n_q + len(answer_ids) - 1)  # the queries that predict the answer
    with capture_qkv(model) as qkv, recording(AttentionRecorder(logit_rows=rows)) as rec:
        model(input_ids=ids, use_cache=False)
        layers = range(len(model.model.layers))
        return ({i: qkv[i][:, :n_q] for i in layers}, {i: rec.max_logits[i][..., :n_q] for i in layers})


def train_heads(
    model,
    examples: list[tuple[list[int], list[int]]],
    steps: int,
    lr: float = 1e-3,
    hidden: int = 256,
    alpha: float = 0.025,
    seed: int = 0,
    progress: bool = False,
) -> tuple[RetainingHeads, list[float]]:
    """Fit retaining heads on (prompt_ids, answer_ids) examples, one example per step (cycled);
    the frozen backbone's features are computed once. Returns the heads and the loss per step."""
    from tqdm import tqdm

    from posttrain.inference.kv_eviction.attention import use_recording_attention

    use_recording_attention(model)
    model.eval().requires_grad_(False)
    data = [cis_features(model, p, a) for p, a in tqdm(examples, desc="CIS labels", disable=not progress)]
    heads = heads_for(model, hidden, seed)
    optimizer = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for step in tqdm(range(steps), desc="retaining heads", disable=not progress):
        features, labels = data[step % len(data)]
        loss = sum(locret_loss(heads(i, features[i]), labels[i], alpha) for i in features)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return heads.eval(), losses


def save_heads(heads: RetainingHeads, path: str | Path) -> Path:
    """safetensors with the heads' shape in the metadata; written through a temp file + rename."""
    import os

    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    save_file(
        {k: v.contiguous() for k, v in heads.state_dict().items()},
        str(tmp),
        metadata={"locret": json.dumps(heads.config)},
    )
    os.replace(tmp, path)
    return path


def load_heads(path: str | Path) -> RetainingHeads:
    from safetensors import safe_open

    from posttrain.errors import UserError

    try:
        with safe_open(str(path), framework="pt") as f:
            config = json.loads((f.metadata() or {})["locret"])
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a retaining-heads file written by `posttrain kv train-heads` ({e})") from None
    heads = RetainingHeads(**config)
    heads.load_state_dict(state)
    return heads.eval()
