"""PPO for `posttrain grpo` with grpo.algorithm: ppo: GRPO's rollouts, scored per token by a value function.

    posttrain grpo recipes/tiny/ppo.yaml      (grpo.algorithm: ppo)

The rollout plan of stages/grpo.py samples completions, scores them with the recipe's reward
terms (the no-EOS penalty included) and computes reference log-probs when grpo.kl_coef > 0; the
PPOPlan here takes each batch of micro-batches it yields and adds, once per batch (reused by the
grpo.updates_per_batch updates on it), what PPO needs: the old policy's token log-probs, the
critic's values V(s_t), per-token rewards (the sequence's total reward on its last token and, with
grpo.kl_in_reward, Tulu 3's -beta*(log pi_old - log ref) on every token), GAE advantages and
returns, the advantages whitened over the whole batch's response tokens, every process's together.
objectives/ppo.py has the formulas; model/value.py the critic (separate or a head on the policy).

Where this departs from Tulu 3 / open-instruct, and why:
- One optimizer steps the policy and the critic together on policy loss + vf_coef x value loss
  (the shared-loss form of Schulman et al. 2017), with one learning rate and one gradient-norm
  clip over both; open-instruct gives the value model its own optimizer. This keeps the one
  training loop, its checkpoint and exact resume (the critic's weights in auxiliary.safetensors,
  its optimizer state with the policy's, keyed by parameter name).
- grpo.group_size completions per prompt are sampled as for GRPO (Tulu 3's PPO samples one;
  set group_size: 1). The group advantages GRPO would use are ignored.
"""

from __future__ import annotations

import logging

import torch

from posttrain.checkpoint.io import load_auxiliary_state
from posttrain.data.batching import IGNORE
from posttrain.data.rollout_layout import rollout_forward
from posttrain.model.value import ActorCritic, build_actor_critic, load_value_state
from posttrain.objectives.ppo import PPOObjective, gae, kl_penalised_rewards, whiten

logger = logging.getLogger(__name__)


def ppo_parts(ctx, rollouts) -> tuple[ActorCritic, PPOPlan, PPOObjective]:
    """(the module the loop trains, the plan, the objective) of a PPO run."""
    cfg = ctx.recipe.grpo
    actor_critic = build_actor_critic(
        ctx.model,
        ctx.tokenizer,
        ctx.recipe.model,
        critic=cfg.critic,
        critic_model=cfg.critic_model,
        seed=ctx.recipe.seed,
        chunk_size=ctx.recipe.train.logprob_chunk_size,
    )
    if rollouts.share_prompts and not actor_critic.can_share_prompts():
        logger.warning(
            "data.pack: the critic's attention backend cannot take the shared-prefix mask; "
            "scoring one completion per row"
        )
        rollouts.share_prompts = False
    if ctx.resume_from is not None:
        load_value_state(actor_critic, load_auxiliary_state(ctx.resume_from), str(ctx.resume_from))
    eps_high = cfg.clip_eps if cfg.clip_eps_high is None else cfg.clip_eps_high
    objective = PPOObjective(
        eps_low=cfg.clip_eps,
        eps_high=eps_high,
        aggregation=cfg.aggregation,
        vf_coef=cfg.vf_coef,
        value_clip=cfg.value_clip,
        kl_coef=0.0 if cfg.kl_in_reward else cfg.kl_coef,
        kl_kind=cfg.kl_estimator,
        ignore_index=IGNORE,
        max_length=cfg.max_new_tokens,
    )
    acc = ctx.accelerator  # whitening statistics summed over processes: 2 processes whiten as 1 does
    reduce_sum = (lambda t: acc.reduce(t.to(acc.device), "sum").cpu()) if acc.num_processes > 1 else None
    return actor_critic, PPOPlan(rollouts, actor_critic, cfg, reduce_sum), objective


class PPOPlan:
    """Per optimizer step, the rollout plan's micro-batches with PPO's per-token quantities added."""

    def __init__(self, rollouts, actor_critic: ActorCritic, cfg, reduce_sum=None):
        self.rollouts, self.actor_critic, self.cfg = rollouts, actor_critic, cfg
        self.reduce_sum = reduce_sum  # a tensor -> its sum over processes; None with one process
        self.total_steps = rollouts.total_steps

    def steps(self, start: int = 0):
        source, scored = None, None
        for micro_batches in self.rollouts.steps(start):
            if micro_batches is not source:  # a new batch of samples (the same list for its mu updates)
                source, scored = micro_batches, self.score(micro_batches)
            yield scored

    @torch.no_grad()
    def score(self, micro_batches: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
        cfg, model = self.cfg, self.actor_critic
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            out = []
            for mb in micro_batches:
                mb = {k: v for k, v in mb.items() if k != "advantages"}
                mask = mb["labels"] != IGNORE
                logps, values = (x.cpu() for x in rollout_forward(model, mb, device))
                old = mb.get("old_logps", logps)  # the rollout plan's, when mu > 1: the same weights
                ref = mb.pop("ref_logps", None) if cfg.kl_in_reward else mb.get("ref_logps")
                rewards = kl_penalised_rewards(
                    mb["stat/reward"], old, ref if cfg.kl_in_reward else None, mask, cfg.kl_coef
                )
                advantages, returns = gae(rewards, values * mask, mask, cfg.gae_gamma, cfg.gae_lambda)
                if ref is not None and cfg.kl_in_reward:  # as a loss term, the objective logs it
                    mb["stat/kl"] = ((old - ref) * mask).sum(-1) / mask.sum(-1).clamp(min=1)
                out.append(
                    {
                        **mb,
                        "old_logps": old,
                        "old_values": values * mask,
                        "returns": returns,
                        "token_advantages": advantages,
                    }
                )
        finally:
            model.train(was_training)
        if cfg.whiten_advantages:
            _whiten_across(out, self.reduce_sum)
        return out


def _whiten_across(micro_batches: list[dict[str, torch.Tensor]], reduce_sum=None) -> None:
    """Whiten token_advantages over every response token of the batch (micro-batches differ in
    width), on every process with the statistics of all processes' tokens (reduce_sum)."""
    masks = [mb["labels"] != IGNORE for mb in micro_batches]
    flat = torch.cat([mb["token_advantages"][m] for mb, m in zip(micro_batches, masks)])
    white = whiten(flat, torch.ones_like(flat), reduce_sum=reduce_sum)
    start = 0
    for mb, m in zip(micro_batches, masks):
        n = int(m.sum())
        advantages = torch.zeros_like(mb["token_advantages"])
        advantages[m] = white[start : start + n]
        mb["token_advantages"], start = advantages, start + n
