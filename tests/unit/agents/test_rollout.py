"""Multi-turn rollouts: the conversation the model sees (system, observations, its own actions),
success and progress per episode, environment failures recorded per episode while the others go
on, and the SFT rows written from the trajectories."""

import pytest

from posttrain.agents.environment import Step
from posttrain.agents.grid import GridEnv
from posttrain.agents.rollout import RolloutSettings, run_episodes, sft_rows
from posttrain.generation.prompter import Prompter
from tests.unit.agents.policies import ScriptedPolicy, greedy_grid


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


def test_a_right_policy_solves_each_task_and_the_prompt_is_the_chat(tokenizer):
    policy = ScriptedPolicy(greedy_grid)
    tasks = [{"start": [0, 0], "goal": [1, 1]}, {"start": [2, 2], "goal": [2, 1]}]
    episodes = run_episodes(policy, Prompter(tokenizer, True), GridEnv, tasks, RolloutSettings(max_turns=4, seed=5))
    assert [(e.success, e.turns, e.progress, e.reward) for e in episodes] == [(True, 2, 1.0, 1.0), (True, 1, 1.0, 1.0)]
    assert episodes[0].messages == [
        {"role": "system", "content": GridEnv.instructions},
        {"role": "user", "content": "You 0,0. Goal 1,1."},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "You 1,0. Goal 1,1."},
        {"role": "assistant", "content": "4"},
    ]
    # turn 2 asks only the open episode; its prompt is the chat template over the conversation so far
    assert len(policy.requests) == 3 and policy.seeds == [5, 6]
    second_turn = policy.requests[2]
    assert second_turn.prompt == Prompter(tokenizer, True).encode(episodes[0].messages[:4])
    assert "You 1,0. Goal 1,1." in tokenizer.decode(second_turn.prompt)


def test_a_wrong_policy_gets_partial_progress_and_no_success(tokenizer):
    # goal two steps right: one right move then invalid replies -> progress 1/2, never success
    replies = iter(["4", "no idea", "still no"])
    episodes = run_episodes(
        ScriptedPolicy(lambda m: next(replies)),
        Prompter(tokenizer, True),
        GridEnv,
        [{"start": [0, 0], "goal": [0, 2]}],
        RolloutSettings(max_turns=3),
    )
    e = episodes[0]
    assert (e.success, e.progress, e.turns, e.invalid_actions, e.error) == (False, 0.5, 3, 2, None)
    assert sft_rows(episodes) == []  # rejection sampling keeps successes only
    (row,) = sft_rows(episodes, successful_only=False)
    assert row["messages"][-1] == {"role": "assistant", "content": "still no"}  # ends on an action


class Exploding:
    """Raises on its second step for tasks marked `explode`; reset fails for `broken` ones."""

    instructions = "Count."

    def reset(self, task):
        if task.get("broken"):
            raise KeyError("broken")
        self.task, self.steps = task, 0
        return "0"

    def step(self, action):
        self.steps += 1
        if self.task.get("explode") and self.steps == 2:
            raise RuntimeError("simulator crashed")
        return Step(str(self.steps), float(self.steps == 2), self.steps == 2)


def test_environment_failures_are_recorded_per_episode_and_the_run_goes_on(tokenizer):
    tasks = [{"explode": True}, {}, {"broken": True}]
    episodes = run_episodes(
        ScriptedPolicy(lambda m: "go"), Prompter(tokenizer, True), Exploding, tasks, RolloutSettings(max_turns=3)
    )
    assert episodes[0].error == "step 2: RuntimeError: simulator crashed" and not episodes[0].success
    assert episodes[1].success and episodes[1].error is None and episodes[1].turns == 2
    assert episodes[2].error == "reset: KeyError: 'broken'" and episodes[2].turns == 0
    assert [r["messages"][1]["content"] for r in sft_rows(episodes, successful_only=False)] == ["0"]  # no failures


def test_a_failed_model_request_ends_only_its_episode(tokenizer):
    calls = iter(["go", None, "go"])  # the second request of turn 1 gets no answer
    episodes = run_episodes(
        ScriptedPolicy(lambda m: next(calls, "go")),
        Prompter(tokenizer, True),
        Exploding,
        [{}, {}, {}],
        RolloutSettings(max_turns=2),
    )
    assert [e.error for e in episodes] == [None, "turn 1: RuntimeError: server said 503", None]
    assert [e.success for e in episodes] == [True, False, True]


def test_system_override_and_plain_text_models(tokenizer):
    policy = ScriptedPolicy(greedy_grid)
    episodes = run_episodes(
        policy,
        Prompter(tokenizer, False),
        GridEnv,
        [{"start": [0, 0], "goal": [0, 1]}],
        RolloutSettings(),
        system=lambda task, env: "Be quick.",
    )
    assert episodes[0].messages[0] == {"role": "system", "content": "Be quick."}
    text = tokenizer.decode(policy.requests[0].prompt)
    assert "Be quick." in text and "<|start_header_id|>" not in text
