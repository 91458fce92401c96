"""Model-merging operators: pure functions on state dicts (name -> tensor), no I/O, no models.

Every operator works tensor by tensor in float32 (float64 stays float64) and returns a new dict in
the dtype of its first input. Formulas (../shared/METHODS.md, "Merging"):

- linear / model soup (Wortsman et al. 2022): sum_i w_i theta_i (/ sum_i w_i when normalised).
- task arithmetic (Ilharco et al. 2023): base + lambda * sum_i w_i (theta_i - base).
- TIES (Yadav et al. 2023): per task vector tau_i = theta_i - base keep the top density fraction
  by magnitude (trim), elect the sign of sum_i w_i tau_i per entry, average only the weighted
  entries that agree with it (disjoint mean): sum_i w_i tau_i [agree] / sum_i w_i [agree].
- DARE (Yu et al. 2024): drop each entry of tau_i with probability p = 1 - density, rescale the
  survivors by 1 / (1 - p); then combine linearly (task arithmetic) or by TIES' sign election.
- SLERP (Shoemake 1985; as mergekit): per tensor, spherical interpolation between the flattened
  tensors' directions, linear interpolation of the raw tensors when they are nearly colinear.
- instruction residuals (Jindal et al. 2024, "Balancing continuous pre-training and instruction
  fine-tuning"): theta_cpt + scale * (theta_instruct - theta_base).

The conventions (trim per tensor with k = max(1, int(density * n)); TIES' disjoint mean divides by
the agreeing weights; the sign of a zero sum counts as +) follow mergekit's
generalized_task_arithmetic, so linear, task arithmetic, TIES and SLERP agree with mergekit tensor
for tensor (tests/unit/merging/test_mergekit_parity.py). DARE departs on purpose: it rescales by the
paper's 1 / (1 - p), where mergekit rescales to the task vector's L1 norm, and it draws its masks
from its own seeded generator, so a merge is reproducible from the recipe's seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

StateDict = dict[str, torch.Tensor]


def _work(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float64 else t.float()


def _same_keys(states: Sequence[StateDict]) -> list[str]:
    keys = list(states[0])
    for i, s in enumerate(states[1:], start=1):
        if set(s) != set(keys):
            missing = sorted(set(keys) ^ set(s))[:3]
            raise ValueError(f"state dict {i} has different tensors from state dict 0: {missing}")
        for k in keys:
            if s[k].shape != states[0][k].shape:
                raise ValueError(
                    f"tensor {k}: shape {tuple(s[k].shape)} in state dict {i}, "
                    f"{tuple(states[0][k].shape)} in state dict 0"
                )
    return keys


def linear(states: Sequence[StateDict], weights: Sequence[float], normalize: bool = True) -> StateDict:
    """Model soup: sum_i w_i theta_i, divided by sum_i w_i when normalize."""
    keys = _same_keys(states)
    total = float(sum(weights))
    if normalize and abs(total) < 1e-12:
        raise ValueError("linear merge: the weights sum to 0; cannot normalise")
    out = {}
    for k in keys:
        acc = sum(w * _work(s[k]) for w, s in zip(weights, states))
        out[k] = (acc / total if normalize else acc).to(states[0][k].dtype)
    return out


def magnitude_trim(delta: torch.Tensor, density: float) -> torch.Tensor:
    """TIES' trim: keep the k = max(1, int(density * n)) largest-magnitude entries, zero the rest."""
    if density >= 1:
        return delta
    if density <= 0 or delta.numel() == 0:
        return torch.zeros_like(delta)
    k = max(1, int(density * delta.numel()))
    flat = delta.reshape(-1)
    keep = torch.zeros_like(flat)
    keep[torch.argsort(flat.abs(), descending=True)[:k]] = 1
    return (flat * keep).reshape(delta.shape)


def dare_drop(delta: torch.Tensor, density: float, generator: torch.Generator) -> torch.Tensor:
    """DARE: keep each entry with probability density (drop p = 1 - density), rescale by 1/density."""
    if density >= 1:
        return delta
    if density <= 0:
        return torch.zeros_like(delta)
    mask = torch.bernoulli(torch.full(delta.shape, density, dtype=delta.dtype), generator=generator)
    return delta * mask / density


def elect_sign_mask(deltas: torch.Tensor) -> torch.Tensor:
    """TIES' sign election over stacked weighted task vectors [n, ...]: the sign of their sum
    (0 counts as +), and a mask of the entries whose sign agrees with it."""
    majority = torch.where(deltas.sum(dim=0) >= 0, 1.0, -1.0).to(deltas.dtype)
    return deltas.sign() == majority


def _combine(
    base: StateDict,
    states: Sequence[StateDict],
    weights: Sequence[float],
    sparsify,
    sign_consensus: bool,
    normalize: bool,
    scale: float,
) -> StateDict:
    """base + scale * combination of the (sparsified, weighted) task vectors, tensor by tensor."""
    keys = _same_keys([base, *states])
    out = {}
    for k in keys:
        b = _work(base[k])
        deltas = torch.stack([sparsify(_work(s[k]) - b) for s in states])
        w = torch.tensor(list(weights), dtype=deltas.dtype).reshape(-1, *[1] * b.dim())
        deltas = deltas * w
        if sign_consensus:
            agree = elect_sign_mask(deltas).to(deltas.dtype)
            mixed = (deltas * agree).sum(dim=0)
            divisor = (w * agree).sum(dim=0)
            divisor[divisor == 0] = 1
        else:
            mixed = deltas.sum(dim=0)
            divisor = w.sum(dim=0).expand_as(mixed).clone()
            divisor[divisor.abs() < 1e-8] = 1
        if normalize:
            mixed = mixed / divisor
        out[k] = (b + scale * mixed).to(base[k].dtype)
    return out


def task_arithmetic(
    base: StateDict, states: Sequence[StateDict], weights: Sequence[float], scale: float = 1.0
) -> StateDict:
    """base + scale * sum_i w_i (theta_i - base)."""
    return _combine(base, states, weights, lambda d: d, False, False, scale)


def ties(
    base: StateDict,
    states: Sequence[StateDict],
    weights: Sequence[float],
    density: float,
    scale: float = 1.0,
    normalize: bool = True,
) -> StateDict:
    """TIES-merging: trim each task vector to `density`, elect signs, disjoint (weighted) mean."""
    return _combine(base, states, weights, lambda d: magnitude_trim(d, density), True, normalize, scale)


def dare(
    base: StateDict,
    states: Sequence[StateDict],
    weights: Sequence[float],
    density: float,
    seed: int,
    combine: str = "linear",
    scale: float = 1.0,
) -> StateDict:
    """DARE drop-and-rescale of each task vector (seeded: the same seed gives the same merge),
    then combine 'linear' (task arithmetic) or 'ties' (sign election, disjoint sum)."""
    if combine not in ("linear", "ties"):
        raise ValueError(f"dare combine must be 'linear' or 'ties', got {combine!r}")
    generator = torch.Generator().manual_seed(seed)
    return _combine(base, states, weights, lambda d: dare_drop(d, density, generator), combine == "ties", False, scale)


def slerp_tensor(
    a: torch.Tensor, b: torch.Tensor, t: float, dot_threshold: float = 0.9995, eps: float = 1e-8
) -> torch.Tensor:
    """Spherical interpolation of two tensors as flat vectors: with cos(omega) the cosine of their
    directions, (sin((1-t) omega) a + sin(t omega) b) / sin(omega); (1-t) a + t b when
    |cos(omega)| > dot_threshold (nearly colinear: the sphere formula is ill-conditioned)."""
    x, y = _work(a).reshape(-1), _work(b).reshape(-1)
    na, nb = x.norm(), y.norm()
    na = na if na > eps else torch.ones_like(na)
    nb = nb if nb > eps else torch.ones_like(nb)
    dot = ((x / na) * (y / nb)).sum().clamp(-1, 1)
    if dot.abs() > dot_threshold:
        mixed = (1 - t) * x + t * y
    else:
        omega = torch.acos(dot)
        mixed = (torch.sin((1 - t) * omega) * x + torch.sin(t * omega) * y) / torch.sin(omega)
    return mixed.reshape(a.shape).to(a.dtype)


def slerp(first: StateDict, second: StateDict, t: float) -> StateDict:
    """SLERP between two models, tensor by tensor; t = 0 gives `first`, t = 1 gives `second`."""
    keys = _same_keys([first, second])
    return {k: slerp_tensor(first[k], second[k], t) for k in keys}


def instruction_residual(target: StateDict, instruct: StateDict, base: StateDict, scale: float = 1.0) -> StateDict:
    """theta_target + scale * (theta_instruct - theta_base): the instruction residual of an
    instruct model over its base, added to a continued-pre-trained version of that base."""
    keys = _same_keys([target, instruct, base])
    return {k: (_work(target[k]) + scale * (_work(instruct[k]) - _work(base[k]))).to(target[k].dtype) for k in keys}
