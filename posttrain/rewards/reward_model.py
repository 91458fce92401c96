"""A trained reward model's score as a reward: r = RM(prompt + completion)[attribute].

The model is loaded once (posttrain/model/reward_model.py) when the recipe's reward terms are
built, and the conversation is rendered with the reward model's own chat template. Samples are
scored one at a time (the interface is per completion); batching is left to a future version.
"""

from __future__ import annotations

from collections.abc import Callable

from posttrain.data.chat import tokenize_conversation
from posttrain.errors import UserError


def reward_model_score(path: str | None = None, attribute: int = 0, dtype: str | None = None
                       ) -> Callable[[dict, str], float]:
    """A reward function scoring with the reward model saved at `path`."""
    if not path:
        raise UserError("reward 'reward_model' needs options: {path: <reward model directory>}")
    from posttrain.model.reward_model import load_reward_model_dir, score_sequences

    model, tokenizer = load_reward_model_dir(path, dtype)
    if not 0 <= attribute < model.config.num_labels:
        raise UserError(f"reward 'reward_model': attribute {attribute} out of range "
                        f"(the model has {model.config.num_labels} outputs)")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def score(sample: dict, completion: str) -> float:
        messages = list(sample["prompt"]) + [{"role": "assistant", "content": completion}]
        ids, _ = tokenize_conversation(tokenizer, messages)
        return float(score_sequences(model, [ids], pad_id, 1)[0, attribute])

    return score
