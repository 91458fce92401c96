"""Where a pre-training document starts and ends, in tokens.

Base models mark documents with their bos/eos tokens. Chat-tuned tokenizers often repurpose those
for turns: SmolLM2-Instruct's bos and eos are <|im_start|> and <|im_end|> (ChatML), while its
documents were separated by <|endoftext|>. Wrapping prose in turn markers would teach the model
that a document is an unfinished chat turn, so turn markers are replaced by the vocabulary's
document token where it has one.
"""

from __future__ import annotations

# Tokens that open or close a chat turn in common templates (ChatML, Llama-3, Gemma, Phi-3).
TURN_MARKERS = frozenset(
    {
        "<|im_start|>",
        "<|im_end|>",
        "<|eot_id|>",
        "<|start_header_id|>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<|end|>",
        "<|user|>",
        "<|assistant|>",
    }
)
# End-of-document tokens, most specific first.
DOCUMENT_TOKENS = ("<|endoftext|>", "<|end_of_text|>", "</s>")


def _document_token_id(tokenizer) -> int | None:
    vocab = tokenizer.get_vocab()
    for name in DOCUMENT_TOKENS:
        if name in vocab:
            return vocab[name]
    return None


def document_boundaries(tokenizer) -> tuple[int | None, int | None]:
    """(start id or None, end id or None) of a pre-training document: bos and eos, except that a
    chat turn marker in either place gives way to the document token (none at the start, since
    such models separate documents by one token)."""
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    if tokenizer.bos_token in TURN_MARKERS:
        start = None
    if tokenizer.eos_token in TURN_MARKERS:
        end = _document_token_id(tokenizer)
    return start, end
