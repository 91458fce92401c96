"""A trained reward model's score as a reward: r = RM(prompt + completion)[attribute].

The model is loaded once (posttrain/model/reward_model.py) when the recipe's reward terms are
built, and the conversation is rendered with the reward model's own chat template. A batch of
rollouts is scored together (the function's `batched` form), batch_size sequences per forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from posttrain.data.chat import tokenize_conversation
from posttrain.errors import UserError


def reward_model_score(
    path: str | None = None, attribute: int = 0, dtype: str | None = None, batch_size: int = 16
) -> Callable[[dict, str], float]:
    """A reward function scoring with the reward model saved at `path`."""
    if not path:
        raise UserError("reward 'reward_model' needs options: {path: <reward model directory>}")
    from posttrain.model.reward_model import load_reward_model_dir, score_sequences

    model, tokenizer = load_reward_model_dir(path, dtype)
    if not 0 <= attribute < model.config.num_labels:
        raise UserError(
            f"reward 'reward_model': attribute {attribute} out of range "
            f"(the model has {model.config.num_labels} outputs)"
        )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def batched(samples: Sequence[dict], completions: Sequence[str]) -> list[float]:
        sequences = [
            tokenize_conversation(tokenizer, list(sample["prompt"]) + [{"role": "assistant", "content": completion}])[0]
            for sample, completion in zip(samples, completions)
        ]
        return score_sequences(model, sequences, pad_id, batch_size)[:, attribute].tolist()

    def score(sample: dict, completion: str) -> float:
        return batched([sample], [completion])[0]

    score.batched = batched
    return score
