"""PPO's value function: a separate critic model or a value head on the policy, and the
actor-critic module the training loop trains.

    V(s_t) = w . h_{t-1}      h_{t-1}: the last-layer state that predicts response token t

Separate critic: a sequence-classification model (eval-free use of model/reward_model.py's
loader) whose linear score head is applied at every position instead of at the last token only.
Initialised from a reward model (its head kept), as Tulu 3 initialises the value model from its
reward model, or from any causal LM (a fresh head), by default the policy's initial weights.
Value head on the policy: one linear layer on the policy's own last hidden states (the decoder
runs once for log-probs and values), zero-initialised so every value starts at 0.

The critic reads the policy's tokens, so a critic whose tokenizer differs from the policy's is a
one-line error. Its weights (and the head's) are saved beside the policy in every checkpoint
(auxiliary.safetensors, checkpoint/io.py) and its optimizer state with the policy's.
"""

from __future__ import annotations

import torch
from torch import nn

from posttrain.config.recipe import ModelConfig
from posttrain.data.shared_prefix import SEGMENTS_PER_PAIR
from posttrain.errors import UserError
from posttrain.model.load import load_tokenizer
from posttrain.model.logprobs import logprobs_from_hidden, token_logprobs
from posttrain.model.reward_model import load_reward_model
from posttrain.model.segment_mask import segment_attention_mask, supports_segment_mask


def state_values(per_position: torch.Tensor) -> torch.Tensor:
    """[B, T] head outputs at every position -> V(s_t) aligned with the labels: the value of the
    state before token t is the head's output at position t - 1 (0 at t = 0, never a response token)."""
    out = torch.zeros_like(per_position, dtype=torch.float32)
    out[:, 1:] = per_position[:, :-1].float()
    return out


class ValueModel(nn.Module):
    """A sequence-classification model read at every position: [B, T] -> per-position values."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        per_unit: int = SEGMENTS_PER_PAIR,
    ) -> torch.Tensor:
        mask = None if segment_ids is None else segment_attention_mask(segment_ids, self.classifier.dtype, per_unit)
        hidden = self.classifier.base_model(
            input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        return self.classifier.score(hidden).squeeze(-1)


class ActorCritic(nn.Module):
    """forward(input_ids, labels) -> (token log-probs, V(s_t)) [B, T], both aligned with labels.
    `.model` is the policy the loop saves; every other submodule is auxiliary state."""

    def __init__(
        self,
        model: nn.Module,
        chunk_size: int = 256,
        critic: ValueModel | None = None,
        value_head: nn.Linear | None = None,
    ):
        super().__init__()
        if (critic is None) == (value_head is None):
            raise ValueError("an ActorCritic needs exactly one of critic and value_head")
        self.model, self.chunk_size = model, chunk_size
        self.critic, self.value_head = critic, value_head
        self._no_split_modules = getattr(model, "_no_split_modules", None)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        per_unit: int = SEGMENTS_PER_PAIR,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """segment_ids: the shared-prefix layout (data/rollout_layout.py), for the policy and the critic."""
        if self.value_head is not None:
            mask = None if segment_ids is None else segment_attention_mask(segment_ids, self.model.dtype, per_unit)
            hidden = self.model.get_decoder()(
                input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False
            ).last_hidden_state
            logps = logprobs_from_hidden(self.model, hidden, labels, self.chunk_size)
            return logps, state_values(self.value_head(hidden).squeeze(-1))
        logps = token_logprobs(
            self.model,
            input_ids,
            labels,
            position_ids,
            chunk_size=self.chunk_size,
            segment_ids=segment_ids,
            per_unit=per_unit,
        )
        return logps, state_values(self.critic(input_ids, position_ids, segment_ids, per_unit))

    def can_share_prompts(self) -> bool:
        """Whether the policy and the critic both take the shared-prefix mask."""
        return supports_segment_mask(self.model) and (
            self.critic is None or supports_segment_mask(self.critic.classifier)
        )


def check_same_tokenizer(policy_tokenizer, critic_path: str) -> None:
    """The critic scores the policy's token ids: their vocabularies must be identical."""
    critic_vocab, policy_vocab = load_tokenizer(critic_path).get_vocab(), policy_tokenizer.get_vocab()
    if critic_vocab != policy_vocab:
        differing = sorted(set(critic_vocab.items()) ^ set(policy_vocab.items()), key=lambda kv: kv[1])[:1]
        raise UserError(
            f"grpo.critic_model {critic_path}: its tokenizer differs from the policy's "
            f"({len(critic_vocab)} vs {len(policy_vocab)} tokens; e.g. {differing[0]!r}): "
            "the critic must read the policy's token ids"
        )


def value_head_for(model: nn.Module) -> nn.Linear:
    """A zero-initialised linear value head on the policy's hidden size, in its dtype and device."""
    weight = model.get_output_embeddings().weight
    head = nn.Linear(model.config.hidden_size, 1, dtype=weight.dtype, device=weight.device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def load_value_state(actor_critic: ActorCritic, saved: dict[str, torch.Tensor] | None, where: str) -> None:
    """Put a checkpoint's value-function weights (its auxiliary state) into actor_critic."""
    if saved is None:
        raise UserError(
            f"{where}: the checkpoint holds no value-function weights "
            "(was it saved by a PPO run with the same grpo.critic?)"
        )
    missing = [k for k in actor_critic.state_dict() if not k.startswith("model.") and k not in saved]
    if missing:
        raise UserError(
            f"{where}: the checkpoint's value function lacks {missing[0]} (saved with another grpo.critic?)"
        )
    actor_critic.load_state_dict(saved, strict=False)


def build_actor_critic(
    model: nn.Module,
    tokenizer,
    model_cfg: ModelConfig,
    *,
    critic: str,
    critic_model: str | None,
    chunk_size: int,
    seed: int,
) -> ActorCritic:
    """The policy with its value function as the recipe asks (critic: separate | head)."""
    if critic == "head":
        actor_critic = ActorCritic(model, chunk_size, value_head=value_head_for(model))
    else:
        path = critic_model or model_cfg.path
        check_same_tokenizer(tokenizer, path)
        classifier = load_reward_model(
            ModelConfig(path=path, dtype=model_cfg.dtype), ["value"], tokenizer.pad_token_id, seed
        )
        actor_critic = ActorCritic(model, chunk_size, critic=ValueModel(classifier))
    return actor_critic
