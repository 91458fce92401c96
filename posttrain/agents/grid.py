"""A grid text game: walk from the start cell to the goal cell of a small grid.

Each turn the agent answers one digit: 1 up, 2 down, 3 left, 4 right (the first such digit in its
reply counts, so a model learns the format quickly; a reply without one is an invalid move that
still uses the turn). Progress (AgentBoard) is the fraction of the starting distance covered:
1 - |manhattan(position, goal)| / manhattan(start, goal). Success: standing on the goal.
"""

from __future__ import annotations

import random
import re
from typing import Any

from posttrain.agents.environment import Step
from posttrain.errors import UserError

MOVES = {"1": (-1, 0, "up"), "2": (1, 0, "down"), "3": (0, -1, "left"), "4": (0, 1, "right")}
_MOVE = re.compile(r"[1-4]")


def _distance(a: tuple[int, int], b: tuple[int, int]) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


class GridEnv:
    instructions = "Reach the goal. Reply 1 up, 2 down, 3 left or 4 right."

    def __init__(self, size: int = 3):
        if size < 2:
            raise UserError(f"grid environment: size must be at least 2, got {size}")
        self.size = size

    @classmethod
    def tasks(cls, n: int, seed: int, size: int = 3, max_distance: int = 2) -> list[dict[str, Any]]:
        """n (start, goal) pairs, goal 1..max_distance moves away, seeded."""
        rng = random.Random(seed)
        cells = [(r, c) for r in range(size) for c in range(size)]
        out = []
        while len(out) < n:
            start, goal = rng.choice(cells), rng.choice(cells)
            if 1 <= _distance(start, goal) <= max_distance:
                out.append({"start": list(start), "goal": list(goal)})
        return out

    def reset(self, task: dict[str, Any]) -> str:
        self.position, self.goal = self._cell(task, "start"), self._cell(task, "goal")
        self.start_distance = _distance(self.position, self.goal)
        if self.start_distance == 0:
            raise ValueError("start and goal are the same cell")
        return self._where()

    def step(self, action: str) -> Step:
        found = _MOVE.search(action)
        if found is None:
            return Step(f"Invalid. {self._where()}", 0.0, False, self._info(valid=False))
        dr, dc, _ = MOVES[found.group()]
        row, col = self.position[0] + dr, self.position[1] + dc
        moved = 0 <= row < self.size and 0 <= col < self.size
        if moved:
            self.position = (row, col)
        if self.position == self.goal:
            return Step("Goal reached.", 1.0, True, self._info(valid=True))
        return Step(self._where() if moved else f"Wall. {self._where()}", 0.0, False, self._info(valid=True))

    def _where(self) -> str:
        (r, c), (gr, gc) = self.position, self.goal
        return f"You {r},{c}. Goal {gr},{gc}."  # short: a tiny model's context holds several turns

    def _info(self, valid: bool) -> dict[str, Any]:
        progress = 1.0 - _distance(self.position, self.goal) / self.start_distance
        return {"valid": valid, "progress": max(0.0, progress), "success": self.position == self.goal}

    def _cell(self, task: dict[str, Any], key: str) -> tuple[int, int]:
        value = task.get(key)
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(v, int) and 0 <= v < self.size for v in value)
        ):
            raise ValueError(f"'{key}' must be [row, column] inside a {self.size}x{self.size} grid, got {value!r}")
        return int(value[0]), int(value[1])
