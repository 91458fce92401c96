"""LM head + log-softmax + gather as autograd functions over chunks of positions, never holding more
than one chunk x vocabulary block of logits, with as few passes over that block as plain torch allows.

At Llama-3's 128K vocabulary the head dominates a small model's step, and besides its matmuls
the time goes to element-wise passes over the chunk x vocabulary logits (131 MB a chunk of 256
positions), which run at memory speed. `torch.logsumexp` + `log_softmax` + their backward make
about ten such passes and allocate new blocks; here a chunk's log-normaliser takes four in-place
passes (max, subtract, exp, sum), the softmax is exp(logits - lse) in place, and the one-hot term
and the upstream gradient are folded into the small matrices around the matmuls.

- SummedLogprobHead: for objectives whose loss is a scaled SUM of token log-probs (next-token NLL:
  pre-training, SFT). Every selected token gets the same upstream gradient, so the gradients of
  hidden states and head weight are formed in the forward pass while the logits are at hand, and
  backward only scales them: three vocabulary-sized matmuls, no logits rebuilt.
- RecomputedLogprobHead: any upstream gradient (DPO and the other preference losses, KTO, policy
  gradients). The forward keeps only the per-position log-normaliser; backward rebuilds each
  chunk's logits (four matmuls in all, as activation checkpointing would).

d logp_i / d logits_i = onehot(t_i) - softmax(logits_i), so for an upstream gradient g_i:
d/dh_i = g_i (onehot - p_i) @ W and d/dW = sum_i (onehot - p_i)^T g_i h_i.
"""

from __future__ import annotations

import torch


def _shifted_exp_(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits -> exp(logits - max) in place; (max, sum of that) [N, 1]: lse = max + log(sum), and
    the softmax is the block / sum. The same arithmetic as torch.logsumexp, without its buffers."""
    peak = logits.amax(dim=-1, keepdim=True)
    total = logits.sub_(peak).exp_().sum(dim=-1, keepdim=True)
    return peak, total


class _LogitsBuffer:
    """One chunk x vocabulary float32 block reused by every chunk of a call: a fresh block of that
    size (131 MB at 128K) is a new mapping on the CPU, and touching its pages cost about as much as
    a pass over it, for every chunk."""

    def __init__(self, rows: int, weight: torch.Tensor):
        self.weight = weight
        self.block = (
            weight.new_empty((rows, weight.shape[0]), dtype=torch.float32) if weight.dtype == torch.float32 else None
        )

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """h @ weight^T in the head's dtype, as float32: into the reused block when both are float32
        outside autocast (under autocast the matmul runs in autocast's dtype, as head(h) would)."""
        if self.block is None or h.dtype != torch.float32 or torch.is_autocast_enabled(h.device.type):
            return (h @ self.weight.T).float()
        return torch.mm(h, self.weight.T, out=self.block[: h.shape[0]])


def chunk_logprobs(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(targets[i] | hidden[i]), log-normaliser [N]) in float32, chunk by chunk, no gradient.
    The logits are computed in the head's dtype and read as float32, as head(hidden).float() is."""
    out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    lse = torch.empty_like(out)
    buffer = _LogitsBuffer(min(chunk_size, hidden.shape[0]), weight)
    for start in range(0, hidden.shape[0], chunk_size):
        stop = start + chunk_size
        logits = buffer.logits(hidden[start:stop])
        picked = logits.gather(1, targets[start:stop, None]).squeeze(1)
        peak, total = _shifted_exp_(logits)
        lse[start:stop] = (peak + total.log()).squeeze(1)
        out[start:stop] = picked - lse[start:stop]
    return out, lse


class SummedLogprobHead(torch.autograd.Function):
    """log p(targets[i] | hidden[i]), with both gradients formed in forward (float32); backward scales
    them by the upstream gradient, which must be one value for all rows (checked)."""

    @staticmethod
    def forward(
        ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_size: int
    ) -> torch.Tensor:
        w32 = weight.float()
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty_like(hidden)
        grad_w = torch.zeros_like(w32)
        buffer = _LogitsBuffer(min(chunk_size, hidden.shape[0]), w32)
        for start in range(0, hidden.shape[0], chunk_size):
            stop = start + chunk_size
            h, t = hidden[start:stop].float(), targets[start:stop, None]
            logits = buffer.logits(h)
            picked = logits.gather(1, t).squeeze(1)
            peak, total = _shifted_exp_(logits)
            out[start:stop] = picked - (peak + total.log()).squeeze(1)
            # block = exp(logits - peak) = total * p; minus total at the target: total * (p - onehot)
            block = logits.scatter_add_(1, t, -total)
            scale = -total.reciprocal()  # (onehot - p) = block * scale, row by row
            grad_h[start:stop] = ((block @ w32) * scale).to(hidden.dtype)
            grad_w.addmm_(block.T, h * scale)
        ctx.save_for_backward(grad_h, grad_w.to(weight.dtype))
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        if grad_out.numel() == 0:
            return torch.zeros_like(grad_h), torch.zeros_like(grad_w), None, None
        g = grad_out[0]
        if not torch.equal(grad_out, g.expand_as(grad_out)):
            raise RuntimeError(
                "SummedLogprobHead needs one upstream gradient for every token "
                "(a scaled sum of log-probs); use the generic chunked path"
            )
        # Scaled in place: the buffers are used once, and a copy would cost another vocab x hidden.
        return grad_h.mul_(grad_out[:, None].to(grad_h.dtype)), grad_w.mul_(g.to(grad_w.dtype)), None, None


class RecomputedLogprobHead(torch.autograd.Function):
    """log p(targets[i] | hidden[i]) for any upstream gradient: forward keeps the log-normaliser,
    backward rebuilds each chunk's logits, turns them into the softmax in place and applies the
    gradient through the small matrices."""

    @staticmethod
    def forward(
        ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_size: int
    ) -> torch.Tensor:
        out, lse = chunk_logprobs(hidden, weight, targets, chunk_size)
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.chunk_size = chunk_size
        # backward rebuilds the logits as forward made them: under the same autocast state
        device = hidden.device.type
        ctx.autocast = (device, torch.get_autocast_dtype(device), torch.is_autocast_enabled(device))
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        hidden, weight, targets, lse = ctx.saved_tensors
        grad_h = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        buffer = _LogitsBuffer(min(ctx.chunk_size, hidden.shape[0]), weight)
        for start in range(0, hidden.shape[0], ctx.chunk_size):
            stop = start + ctx.chunk_size
            h, t, g = hidden[start:stop], targets[start:stop, None], grad_out[start:stop, None].float()
            # p - onehot = -(d logp / d logits), float32, in place of the rebuilt logits
            with torch.autocast(ctx.autocast[0], dtype=ctx.autocast[1], enabled=ctx.autocast[2]):
                logits = buffer.logits(h)
            block = logits.sub_(lse[start:stop, None]).exp_()
            block.scatter_add_(1, t, torch.full_like(g, -1.0))
            if grad_h is not None:
                grad_h[start:stop] = ((block.to(weight.dtype) @ weight).float() * -g).to(hidden.dtype)
            if grad_w is not None:
                grad_w.addmm_(block.T, h.float() * -g)
        grad_w = grad_w.to(weight.dtype) if grad_w is not None else None
        return grad_h, grad_w, None, None


def can_fuse(head: torch.nn.Module, softcap: float | None) -> bool:
    """A plain bias-free linear head holding an ordinary tensor (not sharded by FSDP, not wrapped
    by an adapter), and no logit soft-capping."""
    if softcap or type(head) is not torch.nn.Linear or head.bias is not None:
        return False
    return type(head.weight.data) is torch.Tensor
