"""What a task asks of a model, and the Hugging Face backend that answers it.

Every task kind reduces to two kinds of request, so a backend (HF here, vLLM in vllm_backend.py)
only implements these two:
  loglikelihood: log p(continuation | context), summed over the continuation's tokens;
  generate: a completion of a prompt, cut at stop strings.
Requests carry token ids, built by the task with the model's own tokenizer (and chat template),
so every backend scores exactly the same tokens. RL rollouts (stages/grpo.py) use the same
backends through two more calls: generate_tokens (the completion's token ids, which the policy
is then trained on) and sync_weights (generate with the policy's current weights). Data
generation (`posttrain sample`, `posttrain serve`) asks for `complete`: text plus finish reason,
token count and the completion's log-prob under the model. A backend that answers over the network
(openai_backend.py) may return a RequestFailed for a request instead of a Completion.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from posttrain.data.batching import IGNORE
from posttrain.errors import UserError
from posttrain.model.generate import (
    GenerationConfig,
    cut_at_stop_strings,
    generate_ids,
    padding_id,
    stop_token_ids,
)
from posttrain.model.load import context_length
from posttrain.model.logprobs import token_logprobs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoglikelihoodRequest:
    context: list[int]  # at least one token (BOS at least): the first token is never scored
    continuation: list[int]


@dataclass(frozen=True)
class LoglikelihoodResult:
    logprob: float  # sum over the continuation's tokens
    n_tokens: int


@dataclass(frozen=True)
class GenerationRequest:
    prompt: list[int]
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    messages: tuple | None = None  # the chat the prompt was rendered from (for chat-only HTTP servers)
    text: str | None = None  # a prompt sent as written to an HTTP completions endpoint (no template)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop": eos or a stop string; "length": max_new_tokens reached
    num_tokens: int
    logprob: float | None = None  # sum of the model's log-probs of the completion's tokens
    token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class RequestFailed:
    """A request that got no answer after the backend's retries, and why."""

    error: str


class Backend(Protocol):
    """A model that answers requests; `tokenizer` is the one the requests were built with."""

    tokenizer: Any
    is_chat: bool  # the tokenizer came with its own chat template (an instruct model)
    max_length: int  # the model's context length in tokens

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], desc: str = "") -> list[LoglikelihoodResult]: ...

    def generate(self, requests: Sequence[GenerationRequest], desc: str = "") -> list[str]: ...

    def generate_tokens(
        self, requests: Sequence[GenerationRequest], desc: str = "", seed: int | None = None
    ) -> list[list[int]]:
        """Completion token ids, up to (not including) the stop token; `seed` overrides the backend's."""
        ...

    def sync_weights(self, model) -> None:
        """Generate from now on with `model`'s current weights (the policy being trained)."""
        ...

    def complete(
        self, requests: Sequence[GenerationRequest], desc: str = "", seed: int | None = None, logprobs: bool = False
    ) -> list[Completion | RequestFailed]: ...


@dataclass
class HFBackend:
    """A transformers causal LM in-process: batches sorted by length, results in request order."""

    model: Any
    tokenizer: Any
    batch_size: int = 16
    seed: int = 0
    is_chat: bool = True
    show_progress: bool = True
    logprob_chunk_size: int = 1024
    max_length: int = field(init=False, default=0)
    _warned_truncation: bool = field(init=False, default=False)
    _warned_cap: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {self.batch_size}")
        self.max_length = context_length(self.model)
        self.eos_ids = stop_token_ids(self.model, self.tokenizer)
        self.pad_id = padding_id(self.tokenizer, self.eos_ids)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], desc: str = "") -> list[LoglikelihoodResult]:
        """Longest first, so the first batch shows at once whether memory suffices; right padding
        is harmless here (causal attention: pads come after every scored token)."""
        order = sorted(range(len(requests)), key=lambda i: -_total_length(requests[i]))
        results: list[LoglikelihoodResult | None] = [None] * len(requests)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for batch in self._batches(order, desc or "loglikelihood"):
                    rows = [self._fit(requests[i]) for i in batch]
                    for index, result in zip(batch, self._score_batch(rows)):
                        results[index] = result
        finally:
            self.model.train(was_training)
        return results  # type: ignore[return-value]

    def generate(self, requests: Sequence[GenerationRequest], desc: str = "") -> list[str]:
        """Completions as text (special tokens dropped), each cut before its first stop string."""
        texts = self.tokenizer.batch_decode(self.generate_tokens(requests, desc), skip_special_tokens=True)
        return [cut_at_stop_strings(text, list(request.stop)) for text, request in zip(texts, requests)]

    def generate_tokens(
        self, requests: Sequence[GenerationRequest], desc: str = "", seed: int | None = None
    ) -> list[list[int]]:
        """Requests sharing settings are generated in one seeded generate_ids call (which batches
        prompts of similar length together, left-padded); results in request order."""
        outputs: list[list[int]] = [[] for _ in requests]
        requests = self.fit_requests(requests)
        with self._progress(len(requests), desc or "generate") as bar:
            for (max_new, _, temperature, top_p), indices in group_by_settings(requests).items():
                cfg = GenerationConfig(
                    max_new_tokens=max_new,
                    temperature=temperature,
                    top_p=top_p,
                    seed=self.seed if seed is None else seed,
                    batch_size=self.batch_size,
                )
                prompts = [requests[i].prompt for i in indices]
                completions = generate_ids(self.model, prompts, self.pad_id, self.eos_ids, cfg, on_batch=bar.update)
                for index, ids in zip(indices, completions):
                    outputs[index] = ids
        return outputs

    def complete(
        self, requests: Sequence[GenerationRequest], desc: str = "", seed: int | None = None, logprobs: bool = False
    ) -> list[Completion]:
        """generate_tokens, then each completion cut at its stop strings; `logprobs` adds one scoring
        pass: the sum of log p(token | prefix) at temperature 1 over the kept tokens."""
        requests = self.fit_requests(requests)  # the capped max_new_tokens decides "length"
        generated = self.generate_tokens(requests, desc, seed)
        done = [completion_from_ids(self.tokenizer, ids, r) for ids, r in zip(generated, requests)]
        if not logprobs:
            return done
        scored = self.loglikelihood(
            [
                LoglikelihoodRequest(self._fit_prompt(r.prompt, max(len(c.token_ids), 1)), list(c.token_ids))
                for r, c in zip(requests, done)
            ]
        )
        return [replace(c, logprob=s.logprob) for c, s in zip(done, scored)]

    def sync_weights(self, model) -> None:
        """Nothing to copy when this backend generates with the training model object itself."""
        if model is not self.model:
            self.model.load_state_dict(model.state_dict())

    def fit_requests(self, requests: Sequence[GenerationRequest]) -> list[GenerationRequest]:
        """Each request within the context: max_new_tokens capped to the room its whole prompt
        leaves (with a warning); a prompt that fills the context alone keeps its last tokens and
        leaves half the context (at most max_new_tokens) for the answer. Never a prompt cut to a
        token or two because max_new_tokens asked for the whole context."""
        fitted = []
        for r in requests:
            room = self.max_length - len(r.prompt)
            if r.max_new_tokens <= room:
                fitted.append(r)
            elif room >= 1:
                self._warn_cap(r.max_new_tokens, room)
                fitted.append(replace(r, max_new_tokens=room))
            else:
                new = min(r.max_new_tokens, self.max_length // 2)
                fitted.append(replace(r, prompt=self._fit_prompt(r.prompt, new), max_new_tokens=new))
        return fitted

    def _warn_cap(self, asked: int, room: int) -> None:
        if not self._warned_cap:
            log.warning(
                "max_new_tokens %d does not fit the model's context of %d tokens after the "
                "prompt: capped to %d (shown once; other prompts get the room they leave)",
                asked,
                self.max_length,
                room,
            )
            self._warned_cap = True

    def _fit_prompt(self, prompt: list[int], max_new_tokens: int) -> list[int]:
        """Keep the prompt's last tokens when prompt plus answer would exceed the context."""
        room = self.max_length - max_new_tokens
        if len(prompt) > room:
            if not self._warned_truncation:
                log.warning(
                    "prompts longer than the model's context less max_new_tokens (%d) lose their first tokens", room
                )
                self._warned_truncation = True
            return prompt[-room:]
        return prompt

    def _fit(self, request: LoglikelihoodRequest) -> LoglikelihoodRequest:
        """Drop the oldest context tokens when a request exceeds the model's context."""
        if not request.context:
            raise ValueError("a log-likelihood request needs at least one context token")
        excess = _total_length(request) - self.max_length
        if excess <= 0:
            return request
        if excess >= len(request.context):
            raise UserError(
                f"a continuation of {len(request.continuation)} tokens does not fit the "
                f"model's context of {self.max_length}"
            )
        return LoglikelihoodRequest(request.context[excess:], request.continuation)

    def _score_batch(self, rows: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        width = max(_total_length(row) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            ids, start = row.context + row.continuation, len(row.context)
            input_ids[r, : len(ids)] = torch.tensor(ids)
            labels[r, start : len(ids)] = torch.tensor(row.continuation, dtype=torch.long)
            attention[r, : len(ids)] = 1
        device = next(self.model.parameters()).device
        logprobs = token_logprobs(
            self.model,
            input_ids.to(device),
            labels.to(device),
            attention_mask=attention.to(device),
            chunk_size=self.logprob_chunk_size,
        )
        sums = logprobs.sum(dim=1).tolist()
        return [LoglikelihoodResult(total, len(row.continuation)) for total, row in zip(sums, rows)]

    def _batches(self, order: list[int], desc: str) -> Iterator[list[int]]:
        with self._progress(len(order), desc) as bar:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                yield batch
                bar.update(len(batch))

    def _progress(self, total: int, desc: str):
        return tqdm(
            total=total,
            desc=desc,
            unit="req",
            disable=not self.show_progress or total == 0,
            leave=False,
            dynamic_ncols=True,
        )


def completion_from_ids(tokenizer, ids: list[int], request: GenerationRequest) -> Completion:
    """Text (special tokens dropped) cut before the first stop string, with the tokens that made it:
    up to the token at which a stop string appeared (as servers count them), else all of them."""
    text = tokenizer.decode(ids, skip_special_tokens=True)
    cut = cut_at_stop_strings(text, list(request.stop))
    if len(cut) == len(text):
        reason = "length" if len(ids) >= request.max_new_tokens else "stop"
        return Completion(text, reason, len(ids), token_ids=tuple(ids))
    kept = _tokens_until_stop(tokenizer, ids, list(request.stop))
    return Completion(cut, "stop", kept, token_ids=tuple(ids[:kept]))


def _tokens_until_stop(tokenizer, ids: list[int], stop: list[str]) -> int:
    for k in range(1, len(ids) + 1):
        text = tokenizer.decode(ids[:k], skip_special_tokens=True)
        if len(cut_at_stop_strings(text, stop)) < len(text):
            return k
    return len(ids)


def group_by_settings(requests: Sequence[GenerationRequest]) -> dict[tuple, list[int]]:
    """Request indices by (max_new_tokens, stop, temperature, top_p): one generation call each."""
    groups: dict[tuple, list[int]] = {}
    for index, request in enumerate(requests):
        key = (request.max_new_tokens, request.stop, request.temperature, request.top_p)
        groups.setdefault(key, []).append(index)
    return groups


def _total_length(request: LoglikelihoodRequest) -> int:
    return len(request.context) + len(request.continuation)
