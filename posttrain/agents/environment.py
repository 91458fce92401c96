"""The environment interface and the lookup of an environment by name.

An environment plays one episode at a time:
    reset(task) -> the first observation (text), for a task row (a dict: the document)
    step(action) -> Step(observation, reward, done, info)
`instructions` is the system message an agent plays under. info may carry `success` (default:
the episode ended with a positive reward) and `progress` in [0, 1]: AgentBoard's progress rate
(Ma et al. 2024, "AgentBoard"), the fraction of the task's subgoals reached so far; the rollout
keeps its maximum over the episode. An environment that can make its own tasks has
`tasks(n, seed) -> list[dict]` (a class method), so the task kind needs no data file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Step:
    observation: str
    reward: float = 0.0
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class Environment(Protocol):
    instructions: str

    def reset(self, task: dict[str, Any]) -> str: ...

    def step(self, action: str) -> Step: ...
