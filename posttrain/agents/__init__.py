"""Agent environments: a model acts over several turns, an environment answers each action.

    environment.py  the interface (reset -> observation; step(action) -> Step) and the lookup of an
                    environment by name: a built-in one, a Python entry point `module:Class`, or
                    an HTTP environment server (http_env.py)
    grid.py, calculator.py  the two built-in text environments a tiny model can learn
    rollout.py      multi-turn episodes through the chat template and any generation backend,
                    success and AgentBoard's progress rate, trajectories as SFT conversations
The `agent` eval task kind (eval/tasks/agent.py) runs them from `posttrain eval`.
"""
