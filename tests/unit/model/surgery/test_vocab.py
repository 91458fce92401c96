"""Vocabulary extension and LEP: new BPE merges, embedding inits against their formulas, collisions,
and the three propagation rules on hand-made matrices."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from posttrain.data.synth.english import english_sentences
from posttrain.data.synth.second_language import (
    second_language_sentences,
    words_per_text,
)
from posttrain.errors import UserError
from posttrain.model.surgery.lep import propagate
from posttrain.model.surgery.vocab import (
    add_listed_tokens,
    extend_bpe,
    extend_embeddings,
    initial_rows,
    pieces,
    train_only_embeddings,
)


@pytest.fixture(scope="module")
def extended(tiny_dir):
    old = AutoTokenizer.from_pretrained(tiny_dir)
    new, tokens = extend_bpe(AutoTokenizer.from_pretrained(tiny_dir), second_language_sentences(300), 60)
    return old, new, tokens


def _tokens_per_word(tok, texts):
    return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts) / words_per_text(texts)


def test_new_merges_shorten_the_new_language_and_leave_english_alone(extended):
    import random

    old, new, tokens = extended
    assert len(tokens) == 60 and not set(tokens) & set(old.get_vocab())
    held = second_language_sentences(50, seed=1)
    assert _tokens_per_word(new, held) < 0.7 * _tokens_per_word(old, held)
    assert all(new.decode(new(t)["input_ids"], skip_special_tokens=True) == t for t in held[:5])
    english = english_sentences(20, random.Random(5))
    assert [old(t)["input_ids"] for t in english] == [new(t)["input_ids"] for t in english]
    chat = [{"role": "user", "content": "What is 47 + 38?"}, {"role": "assistant", "content": "85"}]
    assert old.apply_chat_template(chat) == new.apply_chat_template(chat)  # headers kept


def test_keep_texts_tokenise_as_before(tiny_dir):
    """Without `keep`, a merge learned on Nordl re-segments this English word; with it, it does not."""
    old = AutoTokenizer.from_pretrained(tiny_dir)
    corpus = second_language_sentences(300)
    plain, _ = extend_bpe(AutoTokenizer.from_pretrained(tiny_dir), corpus, 60)
    changed = [w for w in ("A kitten sat.", "The dark river.") if plain(w) != old(w)]
    assert changed
    kept, _ = extend_bpe(AutoTokenizer.from_pretrained(tiny_dir), corpus, 60, keep_texts=changed)
    assert [kept(w)["input_ids"] for w in changed] == [old(w)["input_ids"] for w in changed]


def test_initial_rows_formulas():
    old = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    torch.testing.assert_close(initial_rows(old, [[0, 1], [2]], "mean"), torch.tensor([[2.0, 4.0], [5.0, 10.0]]))
    torch.testing.assert_close(initial_rows(old, [[0], [1]], "mean_all"), torch.tensor([[3.0, 6.0]] * 2))
    big = torch.randn(4000, 3) * torch.tensor([1.0, 2.0, 0.5]) + torch.tensor([1.0, -1.0, 0.0])
    rows = initial_rows(big, [[0]] * 4000, "random")
    torch.testing.assert_close(rows.mean(0), big.mean(0), atol=0.1, rtol=0)
    torch.testing.assert_close(rows.std(0), big.std(0), atol=0.1, rtol=0)
    with pytest.raises(UserError, match="--init must be one of"):
        initial_rows(old, [[0]], "zeros")


def test_extend_embeddings_keeps_old_rows_and_means_new_ones(tiny_dir, extended):
    old_tok, new_tok, tokens = extended
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    ids = torch.tensor([[0, 17, 42, 99, 300]])
    before_logits = model(ids).logits
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    new_ids = extend_embeddings(model, old_tok, new_tok, tokens, "mean")
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert emb.shape[0] == len(new_tok) and torch.equal(emb[: old_in.shape[0]], old_in)
    spelled = pieces(old_tok, new_tok, tokens[7])
    assert len(spelled) >= 2
    torch.testing.assert_close(emb[new_ids[7]], old_in[spelled].mean(0))
    torch.testing.assert_close(head[new_ids[7]], old_out[spelled].mean(0))
    torch.testing.assert_close(model(ids).logits[..., : old_in.shape[0]], before_logits)


def test_listed_tokens_and_collisions(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    word = next(t for t in sorted(tok.get_vocab()) if t.isalpha() and t.isascii() and len(t) > 2)
    with pytest.raises(UserError, match=rf"--tokens: 1 new token\(s\) already in the vocabulary, e.g. '{word}'"):
        add_listed_tokens(tok, ["skåkhar", word])
    tok, added = add_listed_tokens(tok, ["skåkhar", "drënlin"])
    assert tok("skåkhar drënlin", add_special_tokens=False)["input_ids"][0] == tok.convert_tokens_to_ids("skåkhar")


def test_embeddings_kind_trains_only_the_embeddings(tiny_dir):
    model = train_only_embeddings(AutoModelForCausalLM.from_pretrained(tiny_dir))
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "model.embed_tokens.weight",
        "lm_head.weight",
    }


def test_lep_rules_on_hand_made_matrices():
    """instruct = base @ W exactly, so least squares recovers W and projection gives adapted @ W."""
    torch.manual_seed(0)
    base = torch.randn(30, 4)
    w = torch.randn(4, 4)
    instruct = base @ w
    adapted = torch.cat([base + 0.1 * torch.randn(30, 4), torch.randn(5, 4)])  # 5 new tokens
    assert torch.equal(propagate(adapted, instruct, base, "swap"), adapted)
    overlap = propagate(adapted, instruct, base, "overlap")
    assert torch.equal(overlap[:30], instruct) and torch.equal(overlap[30:], adapted[30:])
    torch.testing.assert_close(propagate(adapted, instruct, base, "projection"), adapted @ w, atol=1e-4, rtol=1e-4)
    with pytest.raises(UserError, match="adapted must extend base"):
        propagate(torch.randn(10, 4), instruct, base, "swap")


def test_special_tokens_after_the_bpe_vocabulary_keep_their_ids():
    """Llama-3's layout: BPE ids 0..V-1, special tokens from V on. New tokens go after them and no
    special token moves (the tokenizers library would renumber them from the model's size)."""
    import random

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(
        english_sentences(300, random.Random(0)),
        trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False),
    )
    specials = ["<|begin_of_text|>", "<|eot_id|>"]
    backend.add_special_tokens(specials)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=specials[0], eos_token=specials[1])
    special_ids = tok.convert_tokens_to_ids(specials)
    assert min(special_ids) >= backend.get_vocab_size(with_added_tokens=False)
    new, tokens = extend_bpe(tok, second_language_sentences(200), 30)
    assert new.convert_tokens_to_ids(specials) == special_ids
    assert min(new.convert_tokens_to_ids(tokens)) > max(special_ids)
    text = second_language_sentences(3, seed=1)[2]
    assert new.decode(new(text)["input_ids"], skip_special_tokens=True) == text
