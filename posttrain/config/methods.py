"""Recipe sections of the method stages (dpo, reward, grpo, distill): their objectives and
hyperparameters. The general sections (model, data, train, eval, log) and the loading of recipes
are in config.py, which re-exports these names.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from posttrain.config.base import (
    NonNegative,
    NonNegFloat,
    Positive,
    PositiveFloat,
    Section,
)


class PreferenceSection(Section):
    """`posttrain dpo`: which objective (objectives/registry.py) and its hyperparameters."""

    loss: str = "sigmoid"
    beta: PositiveFloat = 0.1
    label_smoothing: Annotated[float, Field(ge=0, le=0.5)] = 0.0  # conservative (cDPO)
    label_noise: Annotated[float, Field(ge=0, lt=0.5)] = 0.0  # robust (rDPO)
    gamma: float | None = None  # simpo margin
    gamma_beta_ratio: float | None = None  # simpo margin as gamma / beta
    ipo_average_logps: bool = False
    cpo_nll_weight: NonNegFloat = 1.0
    orpo_lambda: NonNegFloat = 0.1
    selm_alpha: NonNegFloat = 0.001
    rebel_eta: PositiveFloat = 1.0
    kto_desirable_weight: NonNegFloat = 1.0
    kto_undesirable_weight: NonNegFloat = 1.0
    logo_sft_weight: NonNegFloat = 0.1  # logo: weight of the SFT term NLL(y_w)
    # LOGO's positional-index synthesis (data/positions.py): prompts' position ids spread over
    # this many positions in `position_chunks` chunks; null: ordinary positions
    position_synthesis_length: Positive | None = None
    position_chunks: Positive = 2
    reference: str | None = None  # another reference model; default: the initial policy
    sample_max_new_tokens: Positive = 128  # selm: the reference-policy sample per prompt
    sample_temperature: NonNegFloat = 1.0
    shared_prefix: bool = True  # one row per pair, prompt computed once (data/shared_prefix.py)


class RewardSection(Section):
    """`posttrain reward`: which objective (objectives/registry.py), its head and its annotations."""

    loss: str = "bradley_terry"  # bradley_terry | bt_margin | scaled_bt | regression
    attributes: list[str] = []  # regression: one head output per attribute, e.g. HelpSteer2's five
    score_attribute: str | None = None  # pairwise on a multi-attribute head: the output that scores
    margin_field: str = "margin"  # bt_margin: the data field holding each pair's margin m
    strength_field: str = "strength"  # scaled_bt: the data field holding each pair's m in {1,2,3}
    reset_head: bool = False  # re-initialise an initial reward model's head (always when its size differs)


class RewardTermConfig(Section):
    """One reward term of `posttrain grpo` (posttrain/rewards lists the names and options)."""

    name: str  # a registered reward (math, countdown, ifeval, similarity, format, exploration,
    # reward_model) or a user function by dotted path, e.g. my_pkg.rewards:score
    weight: float = 1.0
    label: str | None = None  # its name in the logs; default: name
    verifier: bool | None = None  # decides accuracy; default: the registry's (user functions: True)
    options: dict[str, Any] = {}  # keyword arguments of the reward function


class GrpoSection(Section):
    """`posttrain grpo`: online RL with verifiable rewards (objectives/policy_gradient.py)."""

    rewards: list[RewardTermConfig] = [RewardTermConfig(name="math")]
    group_size: Positive = 8  # completions sampled per prompt (G)
    prompts_per_step: Positive = 8  # prompts per batch of samples (across processes)
    advantage: Literal["group_std", "none", "rloo"] = "group_std"  # rloo: leave-one-out baseline
    clip_eps: NonNegFloat = 0.2
    clip_eps_high: NonNegFloat | None = None  # DAPO's clip-higher; default: clip_eps
    kl_coef: NonNegFloat = 0.0  # beta; 0 switches the KL term (and the reference model) off
    kl_estimator: Literal["k1", "k3"] = "k3"
    aggregation: Literal["sequence_mean", "token", "dr_grpo"] = "sequence_mean"  # GRPO, DAPO, Dr. GRPO
    updates_per_batch: Positive = 1  # mu: optimizer steps on each batch of samples
    temperature: NonNegFloat = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    max_new_tokens: Positive = 64
    no_eos_reward: float | None = None  # the reward of a completion cut at max_new_tokens (Tulu 3: -10)
    backend: Literal["hf", "vllm"] = "hf"  # rollout engine (generation/backend.py); vllm: GPU, colocated
    vllm_gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.3  # its share of the GPU
    generation_batch_size: Positive = 64  # hf backend
    samples_every: NonNegative = 10  # steps between writes of samples.jsonl (0: never)
    # PPO with a value function (objectives/ppo.py), Tulu 3's RLVR algorithm
    algorithm: Literal["grpo", "ppo"] = "grpo"
    critic: Literal["separate", "head"] = "separate"  # ppo: a critic model, or a value head on the policy
    critic_model: str | None = None  # ppo, separate: its initial weights (a reward model); default: the policy's
    gae_gamma: Annotated[float, Field(ge=0, le=1)] = 1.0  # ppo: discount
    gae_lambda: Annotated[float, Field(ge=0, le=1)] = 0.95  # ppo: GAE lambda
    vf_coef: NonNegFloat = 0.1  # ppo: weight of the value loss
    value_clip: NonNegFloat = 0.2  # ppo: the value may move this far from the rollout's value before clipping
    whiten_advantages: bool = True  # ppo
    # ppo: -kl_coef*(log pi_old - log ref) per token in the reward (Tulu 3); false: a loss term as in GRPO
    kl_in_reward: bool = True

    @model_validator(mode="after")
    def _rloo_needs_siblings(self) -> GrpoSection:
        if self.advantage == "rloo" and self.group_size < 2:
            raise ValueError("advantage rloo needs group_size >= 2 (each completion's baseline is its siblings' mean)")
        return self


class DistillSection(Section):
    """`posttrain distill`: logit distillation from a teacher (objectives/distill.py)."""

    teacher: str | None = None  # the teacher's model directory; its tokenizer must be the student's
    loss: Literal["forward_kl", "reverse_kl", "jsd"] = "forward_kl"
    beta: float = Field(0.5, ge=0.0, le=1.0)  # jsd: 0 is forward KL, 1 reverse KL
    temperature: float = Field(1.0, gt=0.0)
    top_k: int | None = Field(None, gt=0)  # cache the teacher's top-k log-probs once; None: on the fly
    lmbda: float = Field(0.0, ge=0.0, le=1.0)  # GKD: share of steps on the student's own samples
    max_new_tokens: int = Field(64, gt=0)  # on-policy samples
    sample_temperature: float = 1.0

    @model_validator(mode="after")
    def _on_policy_needs_live_teacher(self) -> DistillSection:
        if self.lmbda > 0 and self.top_k:
            raise ValueError(
                "distill.lmbda > 0 scores fresh student samples, which a top-k cache cannot hold: unset distill.top_k"
            )
        return self
