"""The project's default tiny model: Llama architecture plus a byte-level BPE tokenizer trained here.

It is saved as an ordinary Hugging Face model directory, so every stage loads it through
AutoModelForCausalLM / AutoTokenizer.from_pretrained exactly like a hub model; nothing downstream
special-cases it. Special tokens carry Llama-3's names, and the chat template is Llama-3's, so the
same code paths (masks, generation stop ids) are exercised as with the real model.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from posttrain.checkpoint.permissions import apply_umask
from posttrain.errors import UserError

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

TINY_VERSION = "v1"  # bump when the build changes, so caches rebuild

# vocab_size is the BPE training target; the generated corpus saturates below it, and the model's
# vocabulary is the tokenizer's actual size (no unused embedding rows).
TINY_PRESETS: dict[str, dict] = {
    "default": dict(
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=688,
        vocab_size=4096,
        max_position_embeddings=512,
    ),
    "test": dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=1024,
        max_position_embeddings=256,
    ),
}

BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>"
HEADER_START, HEADER_END, EOT = "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
SPECIAL_TOKENS = [BOS, EOS, HEADER_START, HEADER_END, EOT, PAD]


def cache_root() -> Path:
    """$POSTTRAIN_CACHE, else ~/.cache/posttrain."""
    return Path(os.environ.get("POSTTRAIN_CACHE") or Path.home() / ".cache" / "posttrain")


def default_tiny_dir(preset: str = "default") -> Path:
    """Where ensure_tiny keeps a preset's build; the version suffix changes when the build does."""
    return cache_root() / f"tiny-{preset}-{TINY_VERSION}"


def _is_complete(path: Path) -> bool:
    """A build is published by one atomic rename, so its files being present means it is whole."""
    needed = ["config.json", "model.safetensors", "tokenizer.json", "generation_config.json"]
    return all((path / name).is_file() for name in needed)


def _preset(preset: str) -> dict:
    if preset not in TINY_PRESETS:
        raise UserError(f"unknown tiny model preset '{preset}'; choose one of {sorted(TINY_PRESETS)}")
    return TINY_PRESETS[preset]


def tokenizer_corpus(seed: int) -> list[str]:
    """Generated training text for the tokenizer: the quickstart's prose and chat content."""
    from posttrain.data.synth import arithmetic
    from posttrain.data.synth.english import english_sentences

    texts = [row["text"] for row in arithmetic.pretrain_rows(2000, seed)]
    for row in arithmetic.sft_rows(2000, seed + 1):
        texts.extend(m["content"] for m in row["messages"])
    texts.extend(english_sentences(4000, random.Random(seed)))
    return texts


def train_tokenizer(vocab_size: int, max_length: int, seed: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE with single-digit pre-splitting, wrapped as a transformers fast tokenizer."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    from posttrain.data.chat import LLAMA3_CHAT_TEMPLATE

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),  # arithmetic: one token per digit
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(seed), trainer)
    # Like Llama-3's tokenizer: tokenizer(text) prepends BOS; add_special_tokens=False does not.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens=[HEADER_START, HEADER_END, EOT],
        model_max_length=max_length,
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = LLAMA3_CHAT_TEMPLATE
    return wrapped


def _model(preset: dict, tokenizer: PreTrainedTokenizerFast, seed: int) -> LlamaForCausalLM:
    """A randomly initialised LlamaForCausalLM sized by the preset and the trained vocabulary."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in (BOS, EOS, PAD, EOT)}
    config = LlamaConfig(  # Llama-3-8B's choices: untied embeddings, rope_theta 500000, eps 1e-5
        **{**preset, "vocab_size": len(tokenizer)},
        tie_word_embeddings=False,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        bos_token_id=ids[BOS],
        eos_token_id=ids[EOS],
        pad_token_id=ids[PAD],
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(  # stop on end-of-text and end-of-turn, like Llama-3
        bos_token_id=ids[BOS], eos_token_id=[ids[EOS], ids[EOT]], pad_token_id=ids[PAD]
    )
    return model


def build_tiny(out_dir, preset: str = "default", seed: int = 0) -> Path:
    """Build the tiny model + tokenizer into out_dir (atomically); an existing complete build is kept."""
    out = Path(out_dir)
    spec = _preset(preset)
    if _is_complete(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the published model should be readable like any other
    try:
        tokenizer = train_tokenizer(spec["vocab_size"], spec["max_position_embeddings"], seed)
        model = _model(spec, tokenizer, seed)
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp, safe_serialization=True)
        apply_umask(tmp)  # model.safetensors is written 0600
        _rename_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _rename_into_place(tmp: Path, out: Path) -> None:
    """Atomic publish; if a concurrent builder won the race, keep theirs."""
    if out.exists() and not any(out.iterdir()):
        out.rmdir()  # an empty directory (e.g. made by a caller) is not a build
    try:
        os.rename(tmp, out)
    except OSError:
        if not _is_complete(out):
            raise UserError(f"cannot build the tiny model into {out}: it exists and is not a tiny model") from None


def ensure_tiny(preset: str = "default") -> Path:
    """The cached tiny model directory, built on first use."""
    path = default_tiny_dir(preset)
    return path if _is_complete(path) else build_tiny(path, preset=preset)
