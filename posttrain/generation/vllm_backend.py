"""The vLLM backend (GPU only): the same requests as HFBackend, answered by vllm.LLM.

vllm is imported when the backend is built, never at module import, so the package works without
it. Log-likelihoods come from prompt_logprobs (the log-prob vLLM reports for each prompt token);
generation passes token ids, so the chat template and BOS handling are the engine's, not vLLM's.
Every request gets its own sampling seed (the backend's seed + its index): one shared seed would
make the G samples of a GRPO group identical.

For RL rollouts (stages/grpo.py, grpo.backend: vllm) the engine runs in the training process,
beside the policy on the same GPU, and sync_weights copies the policy's weights into it before
each batch of rollouts (LoRA adapters merged first). That needs the engine's model object in
this process: the V1 engine's multiprocessing is switched off (VLLM_ENABLE_V1_MULTIPROCESSING=0).
Not exercised by the CPU test suite: check it on a GPU machine with vllm installed
(`posttrain eval MODEL --backend vllm --tasks arithmetic` should match the HF backend's greedy
exact match up to kernel-level numeric differences).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from posttrain.errors import UserError
from posttrain.generation.backend import (
    Completion,
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from posttrain.model.generate import cut_at_eos
from posttrain.model.inference import has_own_chat_template


class VLLMBackend:
    def __init__(
        self,
        path: str,
        tokenizer: Any = None,
        seed: int = 0,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        **engine_kwargs: Any,
    ):
        try:
            import vllm
            from vllm.inputs import TokensPrompt
        except ImportError:
            raise UserError("backend 'vllm' needs vllm installed (a GPU machine): pip install vllm") from None
        from posttrain.model.load import load_tokenizer

        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # sync_weights needs the model in-process
        self._vllm, self._tokens_prompt = vllm, TokensPrompt
        self.tokenizer = tokenizer or load_tokenizer(path)
        self.is_chat = has_own_chat_template(self.tokenizer)
        self.seed = seed
        self.llm = vllm.LLM(
            model=path,
            tokenizer=path,
            dtype=dtype,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            **engine_kwargs,
        )
        self.max_length = _max_model_len(self.llm, path)
        self.eos_ids = _stop_ids(path, self.tokenizer)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], desc: str = "") -> list[LoglikelihoodResult]:
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        prompts = [self._tokens(r.context + r.continuation) for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=bool(desc))
        results = []
        for request, output in zip(requests, outputs):
            start = len(request.context)
            ids = request.context + request.continuation
            total = sum(output.prompt_logprobs[t][ids[t]].logprob for t in range(start, len(ids)))
            results.append(LoglikelihoodResult(float(total), len(request.continuation)))
        return results

    def generate(self, requests: Sequence[GenerationRequest], desc: str = "") -> list[str]:
        """Text cut at the stop strings by the engine itself (it stops generating there)."""
        return [output.text for output in self._run(requests, desc, self.seed, with_stop_strings=True)]

    def generate_tokens(
        self, requests: Sequence[GenerationRequest], desc: str = "", seed: int | None = None
    ) -> list[list[int]]:
        outputs = self._run(requests, desc, self.seed if seed is None else seed, with_stop_strings=False)
        return [cut_at_eos(list(output.token_ids), self.eos_ids) for output in outputs]

    def complete(
        self, requests: Sequence[GenerationRequest], desc: str = "", seed: int | None = None, logprobs: bool = False
    ) -> list[Completion]:
        """Text cut by the engine at the stop strings; the log-prob is vLLM's cumulative_logprob of
        the sampled tokens (raw model log-probs in vLLM's default logprobs_mode)."""
        outputs = self._run(
            requests, desc, self.seed if seed is None else seed, with_stop_strings=True, logprobs=logprobs
        )
        return [
            Completion(
                o.text,
                "length" if o.finish_reason == "length" else "stop",
                len(o.token_ids),
                o.cumulative_logprob if logprobs else None,
                tuple(o.token_ids),
            )
            for o in outputs
        ]

    def sync_weights(self, model) -> None:
        """Load `model`'s current weights (HF names; a peft model's adapters merged) into the engine."""
        from posttrain.model.adapters import merged_weights

        _engine_model(self.llm).load_weights(merged_weights(model).items())
        reset = getattr(self.llm, "reset_prefix_cache", None)
        if reset is not None:  # cached prompt KV was computed with the old weights
            reset()

    def _run(
        self,
        requests: Sequence[GenerationRequest],
        desc: str,
        seed: int,
        with_stop_strings: bool,
        logprobs: bool = False,
    ):
        """Each request's first completion output, in request order."""
        params = [
            self._vllm.SamplingParams(
                max_tokens=r.max_new_tokens,
                temperature=r.temperature,
                top_p=r.top_p,
                seed=seed + index,
                stop=(list(r.stop) or None) if with_stop_strings else None,
                stop_token_ids=self.eos_ids,
                logprobs=0 if logprobs else None,
            )
            for index, r in enumerate(requests)
        ]
        generated = self.llm.generate([self._tokens(r.prompt) for r in requests], params, use_tqdm=bool(desc))
        return [output.outputs[0] for output in generated]

    def _tokens(self, ids: list[int]):
        return self._tokens_prompt(prompt_token_ids=list(ids))


def _engine_model(llm):
    """The torch module inside the engine (where it lives differs between vLLM versions)."""
    paths = [
        ("llm_engine", "model_executor", "driver_worker", "worker", "model_runner", "model"),
        ("llm_engine", "model_executor", "driver_worker", "model_runner", "model"),
    ]
    for path in paths:
        obj = llm
        for name in path:
            obj = getattr(obj, name, None)
        if obj is not None:
            return obj
    raise UserError(
        "this vLLM version does not expose its model in-process, so rollouts cannot use "
        "the policy's weights: set grpo.backend: hf"
    )


def _stop_ids(path: str, tokenizer) -> list[int]:
    """The tokenizer's eos and the model's generation-config eos ids (Llama-3: <|eot_id|> too)."""
    from transformers import GenerationConfig

    ids = [tokenizer.eos_token_id]
    try:
        generation_eos = GenerationConfig.from_pretrained(path).eos_token_id
    except OSError:  # no generation_config.json
        generation_eos = None
    ids += generation_eos if isinstance(generation_eos, list) else [generation_eos]
    return list(dict.fromkeys(i for i in ids if i is not None))


def _max_model_len(llm, path: str) -> int:
    """The engine's context length; the model config's when this vLLM version hides it."""
    try:
        return int(llm.llm_engine.model_config.max_model_len)
    except AttributeError:
        from transformers import AutoConfig

        return int(getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", 2048))
