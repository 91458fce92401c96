"""Distillation through the chunked LM head: the student's (and an on-the-fly teacher's)
full-vocabulary log-probs exist for one chunk of loss positions at a time, never for the batch.

Per chunk: student logits -> log-softmax at the temperature; the teacher's log-probs of the same
positions (its head applied to its hidden states, or rows of the top-k cache); both restricted to
the cache's support when there is one; the divergence (objectives/distill.py) summed. The chunk is
recomputed in backward (activation checkpointing), as in model/logprobs.py.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from posttrain.objectives.distill import (
    generalized_jsd,
    restrict_to_support,
    scaled_logprobs,
)


def _chunk_divergence(
    head: nn.Module,
    hidden: torch.Tensor,
    teacher_logp: torch.Tensor,
    support: torch.Tensor | None,
    beta: float,
    temperature: float,
) -> torch.Tensor:
    student = scaled_logprobs(head(hidden), temperature)
    if support is not None:
        student = restrict_to_support(student, support)
    return generalized_jsd(student, teacher_logp, beta).sum()


def divergence_sum(
    head: nn.Module, hidden: torch.Tensor, teacher_chunk, beta: float, temperature: float, chunk_size: int = 256
) -> torch.Tensor:
    """Sum over the rows of `hidden` [N, H] of the divergence between the student's distribution
    and the teacher's. teacher_chunk(start, end) -> (teacher log-probs [n, K], support ids [n, K]
    or None for the full vocabulary), already restricted and renormalised."""
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk_size):
        end = min(start + chunk_size, hidden.shape[0])
        teacher_logp, support = teacher_chunk(start, end)
        args = (head, hidden[start:end], teacher_logp, support, beta, temperature)
        if torch.is_grad_enabled() and hidden.requires_grad:
            total = total + checkpoint(_chunk_divergence, *args, use_reentrant=False)
        else:
            total = total + _chunk_divergence(*args)
    return total


class TeacherOnTheFly:
    """A frozen teacher run on each micro-batch: its decoder once (no grad), its head per chunk."""

    def __init__(self, model: nn.Module, temperature: float):
        self.model, self.temperature = model.eval().requires_grad_(False), temperature
        self.hidden: torch.Tensor | None = None

    @torch.no_grad()
    def prepare(self, mb: dict[str, torch.Tensor]) -> None:
        from posttrain.model.logprobs import loss_hidden

        self.hidden = loss_hidden(
            self.model, mb["input_ids"], mb["labels"], mb.get("position_ids"), mb.get("attention_mask")
        )[0]

    @torch.no_grad()
    def chunk(self, mb: dict[str, torch.Tensor], start: int, end: int):
        logits = self.model.get_output_embeddings()(self.hidden[start:end])
        return scaled_logprobs(logits, self.temperature), None


class TeacherFromCache:
    """Top-k teacher log-probs of a micro-batch's loss positions (rows collated from the
    memory-mapped cache, in the same row-major order as the student's loss positions)."""

    def prepare(self, mb: dict[str, torch.Tensor]) -> None:
        pass

    def chunk(self, mb: dict[str, torch.Tensor], start: int, end: int):
        logp = mb["teacher_logps"][start:end].float()
        return logp - torch.logsumexp(logp, dim=-1, keepdim=True), mb["teacher_ids"][start:end].long()


class DistillPolicy(nn.Module):
    """Wraps the student so that the training loop's prepared module (DDP, FSDP) runs the whole
    distillation forward: decoder once, then the chunked divergence against `teacher`."""

    def __init__(self, model: nn.Module, chunk_size: int = 256):
        super().__init__()
        self.model, self.chunk_size = model, chunk_size
        self._no_split_modules = getattr(model, "_no_split_modules", None)

    def forward(self, mb: dict[str, torch.Tensor], teacher, beta: float, temperature: float) -> torch.Tensor:
        from posttrain.model.logprobs import loss_hidden

        hidden = loss_hidden(
            self.model, mb["input_ids"], mb["labels"], mb.get("position_ids"), mb.get("attention_mask")
        )[0]
        teacher.prepare(mb)
        return divergence_sum(
            self.model.get_output_embeddings(),
            hidden,
            lambda start, end: teacher.chunk(mb, start, end),
            beta,
            temperature,
            self.chunk_size,
        )
