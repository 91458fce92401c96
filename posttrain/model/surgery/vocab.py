"""Vocabulary extension (Chinese-LLaMA, "LLaMA Beyond English" Zhao et al. 2024, ChocoLlama,
LEP Tikhomirov & Chernyshev 2024): new tokens for a language, their embeddings initialised from
the old ones, then trained (adapter.kind: embeddings).

New tokens come from a byte-level BPE trained on the new language's corpus with the old
tokenizer's own pipeline (`train_new_from_iterator`); its merges are appended after the old
merges, each adding one token whose two parts already exist, so old text keeps its old merges'
priority and the result is an ordinary BPE tokenizer.json. A merge that would change how the chat
template or a given keep-text (e.g. English samples) tokenises is skipped, so those stay exact. A
user's own token list is added as added tokens instead; a token already in the vocabulary is an error.

Initialisation of each new row (input embedding and, when untied, output embedding):
  mean      mean of the old rows of the old-tokenizer pieces that spell the token (the papers')
  mean_all  mean of all old rows
  random    normal with the old rows' mean and per-dimension std
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from posttrain.errors import UserError

INITS = ("mean", "mean_all", "random")


def _merge_parts(merge) -> tuple[str, str]:
    return tuple(merge) if isinstance(merge, list) else tuple(merge.split(" ", 1))


def kept_pairs(tokenizer, keep_texts: list[str]) -> set[tuple[str, str]]:
    """Adjacent token pairs of the old tokenisation of `keep_texts` and of the chat template's
    rendering. An appended merge (ranked after every old one) can only act on a word once the old
    merges are done, so a new merge whose pair never occurs there leaves these texts as they were."""
    texts = list(keep_texts)
    if getattr(tokenizer, "chat_template", None):
        turns = [{"role": r, "content": "x"} for r in ("system", "user", "assistant")]
        try:
            texts.append(tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=False))
        except Exception:  # noqa: BLE001  a template without a system turn: keep user/assistant
            texts.append(tokenizer.apply_chat_template(turns[1:], tokenize=False, add_generation_prompt=False))
    pairs: set[tuple[str, str]] = set()
    for text in texts:
        tokens = tokenizer.tokenize(text)
        pairs.update(zip(tokens, tokens[1:]))
    return pairs


def extend_bpe(tokenizer, texts: list[str], num_tokens: int, keep_texts: list[str] = ()):
    """(extended tokenizer, new token strings): up to num_tokens merges learned on `texts`; the chat
    template's rendering and `keep_texts` (e.g. English samples) tokenise exactly as before."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec["model"]
    if model.get("type") != "BPE":
        raise UserError(f"vocabulary extension from a corpus needs a BPE tokenizer, not {model.get('type')}")
    if num_tokens < 1:
        raise UserError(f"--num-tokens must be >= 1, got {num_tokens}")
    learned = tokenizer.train_new_from_iterator(texts, vocab_size=512 + 4 * num_tokens, show_progress=False)
    vocab = model["vocab"]
    for added in spec.get("added_tokens", []):
        # The tokenizers library numbers added tokens that the model vocabulary lacks from the
        # model's size on: with new entries there, Llama-3's specials (ids 128000..) would shift.
        # As vocabulary entries (no merge produces them) they keep their ids.
        vocab.setdefault(added["content"], added["id"])
    next_id = max(vocab.values()) + 1
    as_list = isinstance(model["merges"][0], list) if model["merges"] else True
    keep = kept_pairs(tokenizer, list(keep_texts))
    new_tokens = []
    for merge in json.loads(learned.backend_tokenizer.to_str())["model"]["merges"]:
        left, right = _merge_parts(merge)
        token = left + right
        if token in vocab or left not in vocab or right not in vocab or (left, right) in keep:
            continue  # known already, a part was skipped, or it would change a kept text
        vocab[token] = next_id
        next_id += 1
        model["merges"].append([left, right] if as_list else f"{left} {right}")
        new_tokens.append(token)
        if len(new_tokens) == num_tokens:
            break
    return _rebuild(tokenizer, spec), new_tokens


def _rebuild(tokenizer, spec: dict):
    """The same tokenizer (special tokens, chat template) with a new tokenizer.json."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        (Path(tmp) / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
        return AutoTokenizer.from_pretrained(tmp)


def add_listed_tokens(tokenizer, tokens: list[str], source: str = "--tokens"):
    """A user's tokens as added tokens; one already in the vocabulary is a one-line error."""
    vocab = tokenizer.get_vocab()
    # a clash: the token is already a vocabulary entry, or the tokenizer already reads it as one token
    clashes = [t for t in tokens if t in vocab or len(tokenizer(t, add_special_tokens=False)["input_ids"]) == 1]
    if clashes:
        raise UserError(f"{source}: {len(clashes)} new token(s) already in the vocabulary, e.g. '{clashes[0]}'")
    if len(set(tokens)) != len(tokens):
        raise UserError(f"{source}: a token is listed twice")
    tokenizer.add_tokens(list(tokens))
    return tokenizer, list(tokens)


def pieces(old_tokenizer, new_tokenizer, token: str) -> list[int]:
    """Old-tokenizer ids that spell a new token's text."""
    text = new_tokenizer.convert_tokens_to_string([token])
    return list(old_tokenizer(text, add_special_tokens=False)["input_ids"])


@torch.no_grad()
def initial_rows(old: torch.Tensor, spellings: list[list[int]], method: str, seed: int = 0) -> torch.Tensor:
    """[len(spellings), H] rows for new tokens from the old embedding matrix `old` [V, H]."""
    if method not in INITS:
        raise UserError(f"--init must be one of {', '.join(INITS)}, got '{method}'")
    if method == "mean_all":
        return old.float().mean(0).expand(len(spellings), -1).to(old.dtype).clone()
    if method == "random":
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(len(spellings), old.shape[1], generator=gen)
        return (old.float().mean(0) + noise * old.float().std(0)).to(old.dtype)
    if any(not ids for ids in spellings):
        raise UserError("a new token has no old-tokenizer spelling (empty text): use --init mean_all")
    return torch.stack([old[ids].float().mean(0) for ids in spellings]).to(old.dtype)


@torch.no_grad()
def extend_embeddings(model, old_tokenizer, new_tokenizer, new_tokens: list[str], method: str, seed: int = 0):
    """Grow the model's input (and untied output) embeddings to the new tokenizer and initialise
    the new tokens' rows; old rows are untouched."""
    spellings = [pieces(old_tokenizer, new_tokenizer, t) for t in new_tokens]
    new_ids = new_tokenizer.convert_tokens_to_ids(new_tokens)
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    model.resize_token_embeddings(max(len(new_tokenizer), old_in.shape[0]), mean_resizing=False)
    model.get_input_embeddings().weight[new_ids] = initial_rows(old_in, spellings, method, seed)
    if not tied:
        model.get_output_embeddings().weight[new_ids] = initial_rows(old_out, spellings, method, seed + 1)
    return new_ids


def train_only_embeddings(model):
    """adapter.kind embeddings: the input and output embeddings train, every other weight is frozen
    (the embeddings-first stage of vocabulary extension)."""
    model.requires_grad_(False)
    model.get_input_embeddings().requires_grad_(True)
    head = model.get_output_embeddings()
    if head is not None:  # a sequence classifier has no output embeddings
        head.requires_grad_(True)
    return model
