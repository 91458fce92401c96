"""Task verifiers that read structured fields of the sample.

countdown (Cognitive Behaviors, Gandhi et al. 2025): sample['numbers'], sample['target'];
    1.0 when the answer expression (inside <answer></answer> if present) uses each number at
    most once and evaluates exactly to the target, else 0.0.
ifeval (Tulu 3 RLVR's IFEval-style constraints): sample['instruction_id_list'] and
    sample['kwargs'] (one dict per instruction, IFEval's layout); 1.0 when every instruction is
    followed (strict, or loose as IFEval's loose accuracy), else 0.0.
"""

from __future__ import annotations

from posttrain.errors import UserError
from posttrain.rewards import ifeval_checks
from posttrain.rewards.countdown import extract_expression, is_solution


def _field(sample: dict, name: str, reward: str):
    if name not in sample:
        raise UserError(f"reward '{reward}' needs a '{name}' field in every prompt row")
    return sample[name]


def countdown(sample: dict, completion: str) -> float:
    numbers = [int(n) for n in _field(sample, "numbers", "countdown")]
    target = int(_field(sample, "target", "countdown"))
    return float(is_solution(extract_expression(completion), numbers, target))


def ifeval(sample: dict, completion: str, loose: bool = False) -> float:
    ids = _field(sample, "instruction_id_list", "ifeval")
    kwargs_list = sample.get("kwargs") or [{} for _ in ids]
    check = ifeval_checks.check_loose if loose else ifeval_checks.check
    for instruction_id, kwargs in zip(ids, kwargs_list):
        result = check(instruction_id, completion, {k: v for k, v in (kwargs or {}).items() if v is not None})
        if result is None:
            raise UserError(f"reward 'ifeval': instruction '{instruction_id}' cannot be checked here")
        if not result:
            return 0.0
    return 1.0
