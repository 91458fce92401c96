"""LM head + log-softmax + gather with the gradient computed in the forward pass, for objectives
whose loss is a scaled SUM of token log-probs (next-token NLL: pre-training and SFT).

The generic chunked path recomputes each chunk's logits in backward (activation checkpointing):
four vocabulary-sized matmuls per chunk. When every selected token receives the same upstream
gradient, the gradients of hidden states and head weight can be formed while the logits are at
hand, so backward only scales them: three matmuls, and no logits are ever rebuilt. At Llama-3's
128K vocabulary the head dominates a small model's step, so this is most of the step time.
"""

from __future__ import annotations

import torch


class SummedLogprobHead(torch.autograd.Function):
    """log p(targets[i] | hidden[i]) = (hidden @ W^T).log_softmax()[targets[i]], chunk by chunk.
    d logp_i / d logits_i = onehot(t_i) - softmax(logits_i), so
    d/dh_i = (onehot - p_i) @ W and d/dW = sum_i (onehot - p_i)^T h_i, scaled in backward by the
    upstream gradient, which must be one value for all rows (checked)."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                chunk_size: int) -> torch.Tensor:
        w32 = weight.float()
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty_like(hidden)
        grad_w = torch.zeros_like(w32)
        for start in range(0, hidden.shape[0], chunk_size):
            h = hidden[start : start + chunk_size].float()
            t = targets[start : start + chunk_size]
            logits = h @ w32.T
            lse = torch.logsumexp(logits, dim=-1, keepdim=True)
            rows = torch.arange(t.shape[0], device=t.device)
            out[start : start + chunk_size] = logits[rows, t] - lse.squeeze(-1)
            d = logits.sub_(lse).exp_().neg_()  # -softmax, in place of the logits
            d[rows, t] += 1.0
            grad_h[start : start + chunk_size] = (d @ w32).to(hidden.dtype)
            grad_w.addmm_(d.T, h)
        ctx.save_for_backward(grad_h, grad_w.to(weight.dtype))
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        if grad_out.numel() == 0:
            return torch.zeros_like(grad_h), torch.zeros_like(grad_w), None, None
        g = grad_out[0]
        if not torch.equal(grad_out, g.expand_as(grad_out)):
            raise RuntimeError("SummedLogprobHead needs one upstream gradient for every token "
                               "(a scaled sum of log-probs); use the generic chunked path")
        # Scaled in place: the buffers are used once, and a copy would cost another vocab x hidden.
        return grad_h.mul_(grad_out[:, None].to(grad_h.dtype)), grad_w.mul_(g.to(grad_w.dtype)), None, None


def can_fuse(head: torch.nn.Module, softcap: float | None) -> bool:
    """A plain bias-free linear head holding an ordinary tensor (not sharded by FSDP, not wrapped
    by an adapter), and no logit soft-capping."""
    if softcap or type(head) is not torch.nn.Linear or head.bias is not None:
        return False
    return type(head.weight.data) is torch.Tensor
