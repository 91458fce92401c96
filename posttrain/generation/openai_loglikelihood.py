"""Log-likelihood requests answered by an OpenAI-compatible server: /v1/completions with `echo`
and `logprobs`, which returns the log-prob of every prompt token (vLLM does; llama.cpp's server
does not correctly: see _echoes_past_the_prompt; OpenAI's hosted models no longer do).

The prompt is context + continuation and one token is generated (max_tokens 0 means "until the
context is full" on some servers); the continuation's score is the sum of the log-probs of its
tokens. With token ids (a server known to accept them) the continuation is exactly its last
len(continuation) prompt tokens. With text, the server tokenises the joined text itself, so the
continuation is every echoed token that ends after the context's text and starts before the
generated token: a token straddling the boundary is counted (the server's tokenisation decides;
n_tokens says how many tokens were summed). A server that returns no prompt log-probs makes the
first request a one-line refusal, never a silently wrong score.
"""

from __future__ import annotations

from collections.abc import Sequence

from posttrain.errors import UserError
from posttrain.generation.backend import LoglikelihoodRequest, LoglikelihoodResult
from posttrain.generation.openai_replies import HTTPFailure, is_logprob

REFUSAL = (
    "{url} does not return the log-probs of a prompt's tokens (/v1/completions with echo and "
    "logprobs: {why}): tasks scored by log-likelihood need such a server (vLLM's) or --backend hf/vllm"
)


def prompt_text(tokenizer, ids: Sequence[int]) -> str:
    """The text of token ids as rendered locally, special tokens kept (a chat template's markers
    are text the server tokenises back), less a leading BOS: servers add their own."""
    text = tokenizer.decode(list(ids), skip_special_tokens=False)
    bos = tokenizer.bos_token
    if bos and ids and ids[0] == tokenizer.bos_token_id and text.startswith(bos):
        text = text[len(bos) :]
    return text


class EchoScorer:
    def __init__(self, client, model: str, tokenizer, send_ids: bool):
        self.client, self.model, self.tokenizer, self.send_ids = client, model, tokenizer, send_ids

    def score(self, requests: Sequence[LoglikelihoodRequest], desc: str = "") -> list[LoglikelihoodResult]:
        if not requests:
            return []
        first = self._one(requests[0])  # one request first: an unsupporting server refuses at once
        return [first] + self.client.map(self._one, list(requests[1:]), desc)

    def _one(self, request: LoglikelihoodRequest) -> LoglikelihoodResult:
        if self.send_ids:
            prompt, context_chars = list(request.context) + list(request.continuation), None
        else:
            context = prompt_text(self.tokenizer, request.context)
            prompt = context + self.tokenizer.decode(list(request.continuation), skip_special_tokens=False)
            context_chars = len(context)
        body = {"model": self.model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1}
        try:
            reply = self.client.post("/completions", body)
        except HTTPFailure as err:
            raise UserError(self._refusal(str(err))) from None
        logprobs = ((reply.get("choices") or [{}])[0] or {}).get("logprobs")
        if not isinstance(logprobs, dict):
            raise UserError(self._refusal("the reply has no logprobs"))
        if not _echoes_past_the_prompt(logprobs, prompt):
            raise UserError(
                self._refusal(
                    "the echoed tokens stop at the prompt, without the generated "
                    "token; llama-cpp-python's echo is so, and shifts the prompt's "
                    "log-probs by one token"
                )
            )
        if self.send_ids:
            start = len(request.context)
            values = (logprobs.get("token_logprobs") or [])[start : start + len(request.continuation)]
        else:
            values = _continuation_values(logprobs, context_chars, len(prompt))
        if not values or not all(is_logprob(v) for v in values):
            raise UserError(self._refusal("no log-probs for the prompt's tokens"))
        return LoglikelihoodResult(float(sum(values)), len(values))

    def _refusal(self, why: str) -> str:
        return REFUSAL.format(url=self.client.base_url, why=why)


def _echoes_past_the_prompt(logprobs: dict, prompt: str | list[int]) -> bool:
    """The standard echo lists the prompt's tokens and then the generated one. A server whose list
    ends at the prompt (llama-cpp-python 0.3.36) was found to give each prompt token the log-prob
    of the distribution after it: such replies are refused rather than summed into wrong scores."""
    tokens = logprobs.get("tokens") or logprobs.get("token_logprobs") or []
    if isinstance(prompt, list):
        return len(tokens) > len(prompt)
    offsets = logprobs.get("text_offset")
    if isinstance(offsets, list) and offsets:
        return max(o for o in offsets if isinstance(o, int)) >= len(prompt)
    return sum(len(str(t)) for t in tokens) > len(prompt)


def _continuation_values(logprobs: dict, context_chars: int, prompt_chars: int) -> list:
    """Log-probs of the echoed tokens that end after the context and start inside the prompt."""
    tokens = logprobs.get("tokens") or []
    values = logprobs.get("token_logprobs") or []
    offsets = logprobs.get("text_offset")
    if not isinstance(offsets, list) or len(offsets) != len(tokens):
        offsets, at = [], 0
        for token in tokens:  # servers that send no offsets: the tokens' text laid end to end
            offsets.append(at)
            at += len(str(token))
    return [
        value
        for token, value, start in zip(tokens, values, offsets)
        if start < prompt_chars and start + len(str(token)) > context_chars
    ]
