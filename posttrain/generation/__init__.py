"""The generation layer: every caller that wants text or log-likelihoods from a model goes through
here (eval, `posttrain sample` and `serve`, synthesis, judges and density-ratio rewards, RL rollouts).

    backend.py         the Backend interface (GenerationRequest, Completion, RequestFailed,
                       log-likelihood requests) and HFBackend, in-process batched generation
    vllm_backend.py    the same interface on vLLM; openai_backend.py on any OpenAI-compatible server
    source.py          the one description of a model to sample from and how it samples
    factory.py         opening a backend from a model name, `sample`'s flags or a recipe section
    prompter.py        messages -> prompt ids, through the model's chat template or as plain text
    chat_model.py      ChatModel: a recipe role (teacher, judge, actor) asking for completions
    sample.py, serve.py, cli.py   `posttrain sample`, `posttrain serve`, `posttrain data concat`
"""
