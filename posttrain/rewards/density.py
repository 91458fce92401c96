"""CDR's density ratio as a scorer (Xu et al. 2024, "Strong Preferences Affect the Robustness of
Preference Models and Value Alignment" / "Contrastive Density Ratio" reward):

    r(x, y) = log p_strong(y | x') - log p_weak(y | x)

with two local models: `strong` better aligned (e.g. an instruct model), `weak` less (its base).
The paper customises the reward by conditioning only the strong model: x' = x preceded by domain
criteria (`strong_system`: text, or a file, as a system message) and in-context exemplars
(`exemplars`: a .jsonl of {prompt, response} rows, shown as earlier user/assistant turns).
`length_normalise` divides each log-likelihood by the response's token count (a per-token
ratio) instead of summing. Each model renders with its own chat template (a base model without
one: plain text, as posttrain eval does).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from posttrain.errors import UserError


def _text_or_file(value: str | None) -> str | None:
    if value and "\n" not in value and Path(value).is_file():
        return Path(value).read_text(encoding="utf-8").strip()
    return value


def _exemplar_turns(path: str | None) -> list[dict]:
    if not path:
        return []
    if not Path(path).is_file():
        raise UserError(f"scorer 'density_ratio': exemplars file {path} not found")
    turns = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if not isinstance(row.get("prompt"), str) or not isinstance(row.get("response"), str):
                raise UserError(f"{path}: row {number}: expected string fields 'prompt' and 'response'")
            turns += [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]
    return turns


class _Scorer:
    """log p(y | prefix + x) for one model, batched through its HFBackend."""

    def __init__(self, path: str, batch_size: int, dtype: str, prefix: list[dict]):
        from posttrain.generation.backend import HFBackend
        from posttrain.generation.prompter import Prompter
        from posttrain.model.inference import (
            has_own_chat_template,
            load_model_and_tokenizer,
        )

        model, tokenizer = load_model_and_tokenizer(path, dtype)
        self.backend = HFBackend(
            model, tokenizer, batch_size, is_chat=has_own_chat_template(tokenizer), show_progress=False
        )
        self.prompter, self.prefix = Prompter(tokenizer, self.backend.is_chat), prefix

    def logprobs(self, samples: Sequence[dict], completions: Sequence[str]) -> list[tuple[float, int]]:
        from posttrain.generation.backend import LoglikelihoodRequest

        requests = [
            LoglikelihoodRequest(
                self.prompter.encode(self._messages(s["prompt"])),
                self.prompter.continuation_ids(c) or [self.backend.pad_id],
            )
            for s, c in zip(samples, completions)
        ]
        return [(r.logprob, r.n_tokens) for r in self.backend.loglikelihood(requests)]

    def _messages(self, prompt) -> list[dict]:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        system = [m for m in messages if m["role"] == "system"] + [m for m in self.prefix if m["role"] == "system"]
        turns = [m for m in self.prefix if m["role"] != "system"] + [m for m in messages if m["role"] != "system"]
        merged = "\n\n".join(m["content"] for m in system)
        return ([{"role": "system", "content": merged}] if merged else []) + turns


def density_ratio(
    strong: str | None = None,
    weak: str | None = None,
    strong_system: str | None = None,
    exemplars: str | None = None,
    length_normalise: bool = False,
    batch_size: int = 8,
    dtype: str = "float32",
) -> Callable:
    """A scorer returning log p_strong(y|x') - log p_weak(y|x) (per token with length_normalise)."""
    if not strong or not weak:
        raise UserError("scorer 'density_ratio' needs options: strong=<model dir>, weak=<model dir>")
    system = _text_or_file(strong_system)
    prefix = ([{"role": "system", "content": system}] if system else []) + _exemplar_turns(exemplars)
    strong_scorer = _Scorer(strong, batch_size, dtype, prefix)
    weak_scorer = _Scorer(weak, batch_size, dtype, [])

    def batched(samples: Sequence[dict], completions: Sequence[str]) -> list[float]:
        out = []
        for (s, ns), (w, nw) in zip(
            strong_scorer.logprobs(samples, completions), weak_scorer.logprobs(samples, completions)
        ):
            out.append(s / ns - w / nw if length_normalise else s - w)
        return out

    def score(sample: dict, completion: str) -> float:
        return batched([sample], [completion])[0]

    score.batched = batched
    return score
