"""The HTTP environment adapter against a real loopback environment server (http_env.py's server
wrapping the built-in grid): the same episodes as in-process, server-side failures recorded per
episode with the reason, an API key sent as a bearer token."""

import threading

import pytest

from posttrain.agents.grid import GridEnv
from posttrain.agents.http_env import EnvironmentServerError, HTTPEnvironment, environment_server
from posttrain.agents.rollout import RolloutSettings, run_episodes
from posttrain.generation.prompter import Prompter
from tests.unit.agents.policies import ScriptedPolicy, greedy_grid


@pytest.fixture()
def grid_server():
    server = environment_server(GridEnv)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_episodes_over_http_match_the_in_process_ones(grid_server, tiny_dir):
    from transformers import AutoTokenizer

    prompter = Prompter(AutoTokenizer.from_pretrained(tiny_dir), True)
    tasks = [{"start": [0, 0], "goal": [1, 1]}, {"start": [2, 0], "goal": [0, 0]}, {"start": [0, 0], "goal": [9, 9]}]
    remote = run_episodes(
        ScriptedPolicy(greedy_grid), prompter, lambda: HTTPEnvironment(grid_server), tasks, RolloutSettings(max_turns=3)
    )
    local = run_episodes(ScriptedPolicy(greedy_grid), prompter, GridEnv, tasks[:2], RolloutSettings(max_turns=3))
    assert [e.messages for e in remote[:2]] == [e.messages for e in local]
    assert [e.success for e in remote[:2]] == [True, True]
    assert remote[2].error.startswith(
        "reset: EnvironmentServerError: environment server /reset: status 500: ValueError: 'goal' must be [row, column]"
    )


def test_protocol_errors_and_the_api_key(grid_server, monkeypatch):
    env = HTTPEnvironment(grid_server)
    with pytest.raises(EnvironmentServerError, match="status 404: no episode"):
        env.step("1")  # no reset yet
    assert (
        env.reset({"start": [0, 0], "goal": [0, 1]}) == "You 0,0. Goal 0,1."
        and env.instructions == GridEnv.instructions
    )
    assert env.step("4").done
    with pytest.raises(EnvironmentServerError, match="no episode"):
        env.step("4")  # a finished episode is gone from the server
    with pytest.raises(EnvironmentServerError, match="ConnectError"):
        HTTPEnvironment("http://127.0.0.1:9", timeout_s=2).reset({})
    monkeypatch.setenv("ENV_SERVER_KEY", "s3cret")
    assert HTTPEnvironment(grid_server, api_key_env="ENV_SERVER_KEY").client.headers["Authorization"] == "Bearer s3cret"
    from posttrain.errors import UserError

    with pytest.raises(UserError, match="NO_SUCH_KEY"):
        HTTPEnvironment(grid_server, api_key_env="NO_SUCH_KEY")
