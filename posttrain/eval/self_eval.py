"""Capability-aware self-evaluation (Manvi, Singh and Ermon 2024, "Adaptive Inference-Time
Compute: LLMs Can Predict if They Can Do Better, Even Mid-Generation").

After its own response the model is asked, as a new user turn, whether starting over would give a
better answer (SELF_EVAL_QUESTION, the project's wording), and its self-estimate is
    P(no better) = softmax(logits at the first answer position)[first token of "No."]
over the whole vocabulary, read with a one-token log-likelihood request (as Llama Guard's P(unsafe)).

Training target (the paper's capability-aware definition): response y_i of prompt x, scored r_i by
a verifier or reward model among N on-policy samples, should be answered "No." with the probability
that a fresh sample y' ~ pi(.|x) is not better, P(r(y') <= r_i) (a tie is no better). Estimated
from the other N-1 samples: one SFT row per (i, j != i) pair, "No." when r_j <= r_i, else "Yes.";
the cross-entropy optimum of the answer token over those rows is exactly the win-or-tie rate
#{j != i: r_j <= r_i} / (N - 1). The response turn carries `weight: 0`, so only the answer is
trained. A correct answer of a 0/1 verifier is always "No."; a wrong one is "Yes." as often as the
model answers the prompt correctly: the model learns when resampling can help, not only whether
its answer is right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from posttrain.errors import UserError
from posttrain.generation.backend import Backend, LoglikelihoodRequest
from posttrain.generation.prompter import Prompter

SELF_EVAL_QUESTION = (
    "Could a new attempt at this question give a better answer than the one above? Reply with 'Yes.' or 'No.'"
)
NO_BETTER, BETTER = "No.", "Yes."


def win_or_tie_targets(scores: Sequence[float]) -> list[list[bool]]:
    """For each response i, one target per other response j: True ("No.": j is not better) when
    scores[j] <= scores[i]."""
    return [[scores[j] <= s for j in range(len(scores)) if j != i] for i, s in enumerate(scores)]


def self_eval_messages(prompt: list[dict], response: str, no_better: bool) -> list[dict]:
    """One SFT conversation: the prompt, the response as untrained context, the question, the answer."""
    return [
        *prompt,
        {"role": "assistant", "content": response, "weight": 0},
        {"role": "user", "content": SELF_EVAL_QUESTION},
        {"role": "assistant", "content": NO_BETTER if no_better else BETTER},
    ]


def no_better_token(prompter: Prompter) -> int:
    no, yes = prompter.continuation_ids(NO_BETTER)[0], prompter.continuation_ids(BETTER)[0]
    if no == yes:
        raise UserError("this tokenizer starts 'Yes.' and 'No.' with the same token: the self-evaluation is undefined")
    return no


def no_better_probabilities(
    backend: Backend, prompter: Prompter, conversations: Sequence[Sequence[tuple[str, str]]]
) -> list[float]:
    """P(no better) for each conversation, given as (user, assistant) turns ending with the prompt
    and the response (few-shot turns first, if any): the question is asked after it and the
    full-vocabulary probability of the first token of "No." read at the answer position."""
    token = no_better_token(prompter)
    requests = [
        LoglikelihoodRequest(prompter.prompt(SELF_EVAL_QUESTION, list(turns)), [token]) for turns in conversations
    ]
    return [math.exp(r.logprob) for r in backend.loglikelihood(requests, desc="self-evaluation")]
