"""The only place a loss name is a string: name -> (pure function, what it needs from the stage).

A stage looks its recipe's loss name up here, reads the spec's flags to know which log-probs to
compute (reference model? a reference-policy sample? rollout rewards? unpaired data?) and calls
`spec.fn(batch, cfg)`. Nothing else in the package branches on a loss name.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from posttrain.errors import UserError
from posttrain.objectives import preference as po
from posttrain.objectives import reward as rm


@dataclass(frozen=True, kw_only=True, slots=True)
class LossSpec:
    """A preference objective and its inputs.
    needs_reference: reads ref_*_logps (a frozen reference model, or precomputed log-probs).
    length_normalised: divides log-probs by response lengths, so reads chosen/rejected_lengths
    (ipo does only when PreferenceConfig.ipo_average_logps; a stage can always pass them).
    needs_reference_sample: SELM's y_ref ~ ref(.|x) and its log-probs under policy and reference.
    paired: False for KTO, which takes UnpairedLogps instead of PairLogps.
    needs_rewards: REBEL's old-policy log-probs and reward scores r(x, y), r(x, y').
    hyperparameters: the PreferenceConfig fields it reads."""

    name: str
    fn: Callable[..., po.PreferenceOutput]
    needs_reference: bool
    length_normalised: bool
    needs_reference_sample: bool
    paired: bool
    needs_rewards: bool
    paper: str
    hyperparameters: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class RewardLossSpec:
    """A reward-model objective. pairwise: takes ScorePairs (else AttributeScores, one output per
    attribute); needs_margins / needs_strengths: which per-pair annotation it reads."""

    name: str
    fn: Callable[..., rm.RewardOutput]
    pairwise: bool
    needs_margins: bool
    needs_strengths: bool
    paper: str


def _pref(
    name: str,
    fn: Callable[..., po.PreferenceOutput],
    paper: str,
    hyperparameters: tuple[str, ...],
    *,
    reference: bool = True,
    lengths: bool = False,
    sample: bool = False,
    paired: bool = True,
    rewards: bool = False,
) -> LossSpec:
    return LossSpec(
        name=name,
        fn=fn,
        needs_reference=reference,
        length_normalised=lengths,
        needs_reference_sample=sample,
        paired=paired,
        needs_rewards=rewards,
        paper=paper,
        hyperparameters=hyperparameters,
    )


_PREFERENCE_SPECS = (
    _pref("sigmoid", po.sigmoid, "Rafailov et al. 2023, DPO", ("beta",)),
    _pref("robust", po.robust, "Chowdhury et al. 2024, Provably Robust DPO (rDPO)", ("beta", "label_noise")),
    _pref(
        "conservative",
        po.conservative,
        "Mitchell 2023, A note on DPO with noisy preferences (cDPO)",
        ("beta", "label_smoothing"),
    ),
    _pref("hinge", po.hinge, "Zhao et al. 2023, SLiC-HF", ("beta",)),
    _pref(
        "ipo",
        po.ipo,
        "Azar et al. 2024, A General Theoretical Paradigm to Understand Learning from Human Preferences (IPO)",
        ("beta", "ipo_average_logps"),
    ),
    _pref("dpo_norm", po.dpo_norm, "Lambert et al. 2024, Tulu 3 (length-normalised DPO)", ("beta",), lengths=True),
    _pref(
        "simpo",
        po.simpo,
        "Meng et al. 2024, SimPO",
        ("beta", "gamma", "gamma_beta_ratio"),
        reference=False,
        lengths=True,
    ),
    _pref(
        "cpo",
        po.cpo,
        "Xu et al. 2024, Contrastive Preference Optimization (CPO)",
        ("beta", "cpo_nll_weight"),
        reference=False,
        lengths=True,
    ),
    _pref(
        "logo",
        po.logo,
        "Tang et al. 2024, LOGO (several rejected responses per prompt)",
        ("beta", "gamma", "gamma_beta_ratio", "logo_sft_weight"),
        reference=False,
        lengths=True,
    ),
    _pref("orpo", po.orpo, "Hong et al. 2024, ORPO", ("orpo_lambda",), reference=False, lengths=True),
    _pref(
        "selm", po.selm, "Zhang et al. 2024, Self-Exploring Language Models (SELM)", ("beta", "selm_alpha"), sample=True
    ),
    _pref("rebel", po.rebel, "Gao et al. 2024, REBEL", ("rebel_eta",), reference=False, rewards=True),
    _pref(
        "kto",
        po.kto,
        "Ethayarajh et al. 2024, KTO",
        ("beta", "kto_desirable_weight", "kto_undesirable_weight"),
        paired=False,
    ),
)
PREFERENCE_LOSSES: dict[str, LossSpec] = {spec.name: spec for spec in _PREFERENCE_SPECS}

_REWARD_SPECS = (
    RewardLossSpec(
        name="bradley_terry",
        fn=rm.bradley_terry,
        pairwise=True,
        needs_margins=False,
        needs_strengths=False,
        paper="Bradley & Terry 1952; Ouyang et al. 2022 (InstructGPT)",
    ),
    RewardLossSpec(
        name="bt_margin",
        fn=rm.bt_margin,
        pairwise=True,
        needs_margins=True,
        needs_strengths=False,
        paper="Touvron et al. 2023, Llama 2",
    ),
    RewardLossSpec(
        name="scaled_bt",
        fn=rm.scaled_bt,
        pairwise=True,
        needs_margins=False,
        needs_strengths=True,
        paper="Wang et al. 2024, HelpSteer2-Preference",
    ),
    RewardLossSpec(
        name="regression",
        fn=rm.regression,
        pairwise=False,
        needs_margins=False,
        needs_strengths=False,
        paper="Dong et al. 2023, SteerLM; Wang et al. 2024, HelpSteer2",
    ),
)
REWARD_LOSSES: dict[str, RewardLossSpec] = {spec.name: spec for spec in _REWARD_SPECS}


def _lookup(kind: str, name: str, table: dict):
    if name in table:
        return table[name]
    nearest = difflib.get_close_matches(name, list(table), n=1, cutoff=0.0)
    hint = f"did you mean '{nearest[0]}'? " if nearest else ""
    raise UserError(f"unknown {kind} loss '{name}': {hint}(valid: {', '.join(table)})")


def get_preference_loss(name: str) -> LossSpec:
    """The spec of a preference objective; an unknown name raises UserError naming the nearest."""
    return _lookup("preference", name, PREFERENCE_LOSSES)


def get_reward_loss(name: str) -> RewardLossSpec:
    """The spec of a reward-model objective; an unknown name raises UserError naming the nearest."""
    return _lookup("reward", name, REWARD_LOSSES)


def _reference_cell(spec: LossSpec) -> str:
    if spec.needs_rewards:
        return "no (sampling-policy log-probs and rewards)"
    return "yes" if spec.needs_reference else "no"


def _reward_hyperparameters(spec: RewardLossSpec) -> str:
    if spec.needs_margins:
        return "per-pair margin m (data)"
    if spec.needs_strengths:
        return "per-pair strength m in {1,2,3} (data)"
    return "attribute mask (data)" if not spec.pairwise else "-"


def loss_table_markdown() -> str:
    """The README table of every objective: objective | paper | reference needed | key hyperparameters."""
    rows = ["| objective | paper | reference needed | key hyperparameters |", "| --- | --- | --- | --- |"]
    for spec in PREFERENCE_LOSSES.values():
        params = ", ".join(f"`{p}`" for p in spec.hyperparameters)
        rows.append(f"| `{spec.name}` | {spec.paper} | {_reference_cell(spec)} | {params} |")
    for reward_spec in REWARD_LOSSES.values():
        rows.append(
            f"| `{reward_spec.name}` (reward model) | {reward_spec.paper} | no | "
            f"{_reward_hyperparameters(reward_spec)} |"
        )
    return "\n".join(rows) + "\n"
