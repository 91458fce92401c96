"""The vLLM backend (GPU only): the same two requests as HFBackend, answered by vllm.LLM.

vllm is imported when the backend is built, never at module import, so the package works without
it. Log-likelihoods come from prompt_logprobs (the log-prob vLLM reports for each prompt token);
generation passes token ids, so the chat template and BOS handling are the engine's, not vLLM's.
Not exercised by the CPU test suite: check it on a GPU machine with vllm installed
(`posttrain eval MODEL --backend vllm --tasks arithmetic` should match the HF backend's greedy
exact match up to kernel-level numeric differences).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from posttrain.errors import UserError
from posttrain.eval.backend import (GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult,
                                    group_by_settings)
from posttrain.eval.load import has_own_chat_template


class VLLMBackend:
    def __init__(self, path: str, tokenizer: Any = None, seed: int = 0, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.9, **engine_kwargs: Any):
        try:
            import vllm
            from vllm.inputs import TokensPrompt
        except ImportError:
            raise UserError("backend 'vllm' needs vllm installed (a GPU machine): pip install vllm") from None
        from posttrain.model.load import load_tokenizer

        self._vllm, self._tokens_prompt = vllm, TokensPrompt
        self.tokenizer = tokenizer or load_tokenizer(path)
        self.is_chat = has_own_chat_template(self.tokenizer)
        self.seed = seed
        self.llm = vllm.LLM(model=path, tokenizer=path, dtype=dtype, seed=seed,
                            gpu_memory_utilization=gpu_memory_utilization, **engine_kwargs)
        self.max_length = _max_model_len(self.llm, path)

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
        outputs = [""] * len(requests)
        for (max_new, stop, temperature, top_p), indices in group_by_settings(requests).items():
            params = self._vllm.SamplingParams(max_tokens=max_new, temperature=temperature, top_p=top_p,
                                               stop=list(stop) or None, seed=self.seed)
            generated = self.llm.generate([self._tokens(requests[i].prompt) for i in indices], params,
                                          use_tqdm=bool(desc))
            for index, output in zip(indices, generated):
                outputs[index] = output.outputs[0].text
        return outputs

    def _tokens(self, ids: list[int]):
        return self._tokens_prompt(prompt_token_ids=list(ids))


def _max_model_len(llm, path: str) -> int:
    """The engine's context length; the model config's when this vLLM version hides it."""
    try:
        return int(llm.llm_engine.model_config.max_model_len)
    except AttributeError:
        from transformers import AutoConfig

        return int(getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", 2048))
