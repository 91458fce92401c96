"""`posttrain generate`: answer prompts with a model directory, or chat interactively."""

from __future__ import annotations

import argparse

from transformers import AutoModelForCausalLM

from posttrain.data.chat import tokenize_prompt
from posttrain.model.generate import GenerationConfig, generate_text
from posttrain.model.load import load_tokenizer, loading_errors
from posttrain.model.paths import resolve_model_path


def generate_command(args: argparse.Namespace) -> None:
    path = resolve_model_path(args.model)
    tokenizer = load_tokenizer(path)
    with loading_errors(path):
        model = AutoModelForCausalLM.from_pretrained(path)
    cfg = GenerationConfig(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed, batch_size=8
    )
    system = [{"role": "system", "content": args.system}] if args.system else []
    if args.prompt:
        prompts = [_encode(tokenizer, system + [{"role": "user", "content": p}], args.no_chat) for p in args.prompt]
        for prompt, answer in zip(args.prompt, generate_text(model, tokenizer, prompts, cfg)):
            print(f">>> {prompt}\n{answer}")
        return
    _chat_loop(model, tokenizer, cfg, system, args.no_chat)


def _encode(tokenizer, messages: list[dict], raw: bool) -> list[int]:
    if raw:
        return tokenizer(messages[-1]["content"])["input_ids"]
    return tokenize_prompt(tokenizer, messages)


def _chat_loop(model, tokenizer, cfg: GenerationConfig, history: list[dict], raw: bool) -> None:
    print("interactive chat: an empty line or Ctrl-D ends it")
    while True:
        try:
            text = input("user> ").strip()
        except EOFError:
            return
        if not text:
            return
        history.append({"role": "user", "content": text})
        answer = generate_text(model, tokenizer, [_encode(tokenizer, history, raw)], cfg)[0]
        print(f"assistant> {answer}")
        history.append({"role": "assistant", "content": answer})
