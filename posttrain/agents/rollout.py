"""Multi-turn episodes: the model acts through its chat template and any generation backend
(HFBackend in-process, an OpenAI-compatible server, vLLM); the environment answers each action.

All open episodes advance one turn per backend call, so a turn is one batch. The conversation is
system (the environment's instructions, or the task's / row's system message), then the first
observation as the user turn, then assistant action / user observation pairs: exactly the
`messages` rows the sft stage reads, which is what rejection sampling (AgentGen, RFT) trains on.
An environment that raises ends its episode as a failure with the reason recorded; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from posttrain.generation.backend import GenerationRequest, RequestFailed


@dataclass(frozen=True)
class RolloutSettings:
    max_turns: int = 6
    max_new_tokens: int = 32
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int = 0  # turn t samples with seed + t, so turns do not repeat one random stream


@dataclass
class Episode:
    task: dict[str, Any]
    messages: list[dict[str, str]] = field(default_factory=list)
    reward: float = 0.0  # the sum of the step rewards
    success: bool = False
    progress: float = 0.0  # AgentBoard's progress rate: the most of the subgoals reached at any turn
    turns: int = 0
    invalid_actions: int = 0
    error: str | None = None  # why the environment failed, if it did
    done: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "reward": self.reward,
            "success": self.success,
            "progress": self.progress,
            "turns": self.turns,
            "invalid_actions": self.invalid_actions,
            "error": self.error,
        }


def run_episodes(
    backend,
    prompter,
    make_env: Callable[[], Any],
    tasks: Sequence[dict[str, Any]],
    settings: RolloutSettings,
    system: Callable[[dict, Any], str | None] = lambda task, env: None,
    desc: str = "agent",
) -> list[Episode]:
    """One episode per task (repeat a task for several). `system(task, env)` overrides the
    environment's instructions as the system message when it returns a string."""
    envs, episodes = [], []
    for task in tasks:
        episode, env = Episode(task), None
        try:
            env = make_env()
            observation = env.reset(task)
            chosen = system(task, env)
            text = chosen if chosen is not None else getattr(env, "instructions", "")
            episode.messages = ([{"role": "system", "content": text}] if text else []) + [
                {"role": "user", "content": observation}
            ]
        except Exception as err:  # a broken task row or environment: recorded, the run goes on
            _fail(episode, "reset", err)
        envs.append(env)
        episodes.append(episode)
    for turn in range(settings.max_turns):
        open_ids = [i for i, e in enumerate(episodes) if not e.done]
        if not open_ids:
            break
        requests = [_request(prompter, episodes[i].messages, settings) for i in open_ids]
        answers = backend.complete(requests, desc=f"{desc}: turn {turn + 1}", seed=settings.seed + turn)
        for i, answer in zip(open_ids, answers):
            if isinstance(answer, RequestFailed):  # the model's server gave no answer: this episode ends
                _fail(episodes[i], f"turn {turn + 1}", RuntimeError(answer.error))
            else:
                _advance(episodes[i], envs[i], answer.text)
    for env in envs:
        getattr(env, "close", lambda: None)()
    return episodes


def _request(prompter, messages: list[dict[str, str]], settings: RolloutSettings) -> GenerationRequest:
    return GenerationRequest(
        prompter.encode(messages),
        settings.max_new_tokens,
        settings.stop,
        settings.temperature,
        messages=tuple(messages),
    )


def _advance(episode: Episode, env, action: str) -> None:
    episode.messages.append({"role": "assistant", "content": action.strip()})
    episode.turns += 1
    try:
        step = env.step(action)
    except Exception as err:
        return _fail(episode, f"step {episode.turns}", err)
    episode.reward += float(step.reward)
    episode.invalid_actions += int(step.info.get("valid") is False)
    solved = step.done and step.reward > 0  # what success means when the environment does not say
    episode.progress = max(episode.progress, float(step.info.get("progress", float(solved))))
    episode.success = bool(step.info.get("success", solved))
    if step.done:
        episode.done = True
    else:
        episode.messages.append({"role": "user", "content": step.observation})


def _fail(episode: Episode, where: str, err: Exception) -> None:
    episode.error, episode.done, episode.success = f"{where}: {type(err).__name__}: {err}", True, False


def sft_rows(episodes: Sequence[Episode], successful_only: bool = True) -> list[dict[str, Any]]:
    """{messages, ...} rows for the sft stage: each (successful) episode's conversation, ending on
    the agent's last action (the final observation is not something to learn to say)."""
    return [
        {"messages": _ending_on_an_action(e.messages), "reward": e.reward, "progress": e.progress, "success": e.success}
        for e in episodes
        if e.error is None and e.turns and (e.success or not successful_only)
    ]


def _ending_on_an_action(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    return messages[:-1] if messages and messages[-1]["role"] == "user" else list(messages)
