"""Batched generation for evaluation and RL rollouts: left padding, KV cache, reproducible sampling.

Decoder-only models continue from the last position of each row, so a batch of prompts of
different lengths must be padded on the LEFT (with an attention mask); right padding would make the
shorter prompts continue from pad tokens. Prompts are sorted by length so each batch pads little,
and results come back in the caller's order.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import transformers

from posttrain.errors import UserError


@dataclass
class GenerationConfig:
    """What to generate; temperature 0 means greedy decoding (then top_p and seed do not matter)."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop_strings: list[str] = field(default_factory=list)
    batch_size: int = 16


def generate_ids(
    model,
    prompts: list[list[int]],
    pad_id: int,
    eos_ids: list[int],
    cfg: GenerationConfig,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """New token ids for each prompt (up to, not including, the first eos), in the order of `prompts`.

    The model runs in eval mode under inference_mode and gets its previous mode back afterwards.
    Sampling is seeded from cfg.seed inside a forked RNG, so the caller's (training) random stream is
    left untouched and the same call gives the same output. on_batch(n) is told after each batch of
    n prompts (a progress bar).
    """
    check_generation_config(cfg)
    if any(len(prompt) == 0 for prompt in prompts):
        raise UserError("cannot generate from an empty prompt: every prompt needs at least one token")
    hf_config = _hf_generation_config(cfg, pad_id, eos_ids)
    order = sorted(range(len(prompts)), key=lambda index: len(prompts[index]))
    results: list[list[int]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    try:
        with _seeded_rng(cfg.seed, _device_of(model)), torch.inference_mode():
            for start in range(0, len(order), cfg.batch_size):
                batch_indices = order[start : start + cfg.batch_size]
                batch_outputs = _generate_batch(model, [prompts[i] for i in batch_indices], pad_id, hf_config)
                for index, new_ids in zip(batch_indices, batch_outputs):
                    results[index] = cut_at_eos(new_ids, eos_ids)
                if on_batch is not None:
                    on_batch(len(batch_indices))
    finally:
        model.train(was_training)
    return results


def generate_text(model, tokenizer, prompts: list[list[int]], cfg: GenerationConfig) -> list[str]:
    """Completions as text (special tokens dropped), each cut before the first of cfg.stop_strings.

    Stop ids are the tokenizer's eos plus every id in model.generation_config.eos_token_id (Llama-3
    instruct models end turns with <|eot_id|>, which is only listed there).
    """
    eos_ids = stop_token_ids(model, tokenizer)
    new_ids = generate_ids(model, prompts, padding_id(tokenizer, eos_ids), eos_ids, cfg)
    texts = tokenizer.batch_decode(new_ids, skip_special_tokens=True)
    return [cut_at_stop_strings(text, cfg.stop_strings) for text in texts]


def padding_id(tokenizer, eos_ids: list[int]) -> int:
    """The tokenizer's pad id; without one, eos (pad positions are masked out, so any id works)."""
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return eos_ids[0] if eos_ids else 0


def stop_token_ids(model, tokenizer) -> list[int]:
    """The tokenizer's eos id and the model's generation eos id(s), without duplicates, in that order."""
    candidates = [tokenizer.eos_token_id]
    generation_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    candidates += generation_eos if isinstance(generation_eos, list) else [generation_eos]
    return list(dict.fromkeys(token for token in candidates if token is not None))


def cut_at_stop_strings(text: str, stop_strings: list[str]) -> str:
    """`text` up to (not including) the earliest occurrence of any stop string."""
    positions = [text.find(stop) for stop in stop_strings if stop]
    cut = min((position for position in positions if position >= 0), default=len(text))
    return text[:cut]


def check_generation_config(cfg: GenerationConfig) -> None:
    if cfg.max_new_tokens < 1:
        raise UserError(f"max_new_tokens must be >= 1, got {cfg.max_new_tokens}")
    if cfg.temperature < 0:
        raise UserError(f"temperature must be >= 0 (0 = greedy), got {cfg.temperature}")
    if not 0 < cfg.top_p <= 1:
        raise UserError(f"top_p must be in (0, 1], got {cfg.top_p}")
    if cfg.batch_size < 1:
        raise UserError(f"generation batch_size must be >= 1, got {cfg.batch_size}")


def _hf_generation_config(cfg: GenerationConfig, pad_id: int, eos_ids: list[int]) -> transformers.GenerationConfig:
    """A transformers config that pins every setting we control.

    Unset (None) fields are filled from the model's generation_config.json and then transformers'
    defaults, so e.g. Llama-3 instruct's temperature 0.6 / top_p 0.9 or the default top_k 50 would
    otherwise change what was asked for. Sampling-only fields stay None under greedy decoding, where
    transformers ignores them (and warns if they are set).
    """
    sampling = cfg.temperature > 0
    return transformers.GenerationConfig(
        max_new_tokens=cfg.max_new_tokens,
        do_sample=sampling,
        temperature=cfg.temperature if sampling else 1.0,
        top_p=cfg.top_p if sampling else 1.0,
        top_k=0 if sampling else None,  # 0 switches top-k off: only top_p restricts sampling
        typical_p=1.0 if sampling else None,
        num_beams=1,
        repetition_penalty=1.0,
        min_new_tokens=0,
        pad_token_id=pad_id,
        eos_token_id=list(eos_ids) or None,
        use_cache=True,
    )


def _generate_batch(model, prompts: list[list[int]], pad_id: int, hf_config) -> list[list[int]]:
    """Left-pad one batch, run model.generate, return each row's generated part (pads and eos kept)."""
    width = max(len(prompt) for prompt in prompts)
    input_ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], dtype=torch.long)
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long)
    device = _device_of(model)
    output = model.generate(
        input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), generation_config=hf_config
    )
    return output[:, width:].tolist()


def cut_at_eos(token_ids: list[int], eos_ids: list[int]) -> list[int]:
    """Tokens before the first eos; what follows it in a batch is pad filler (and vLLM keeps the
    eos it stopped at in its token ids)."""
    eos = set(eos_ids)
    for position, token in enumerate(token_ids):
        if token in eos:
            return token_ids[:position]
    return token_ids


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def _seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the generators sampling draws from (CPU and the model's GPU) inside a fork that puts the
    caller's state back on exit. torch.manual_seed is avoided: it would reseed every GPU, not only this one."""
    cuda_index = None
    if device.type == "cuda":
        cuda_index = device.index if device.index is not None else torch.cuda.current_device()
    with torch.random.fork_rng(devices=[] if cuda_index is None else [cuda_index]):
        torch.random.default_generator.manual_seed(seed)
        if cuda_index is not None:
            with torch.cuda.device(cuda_index):
                torch.cuda.manual_seed(seed)
        yield
