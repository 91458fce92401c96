"""ChatML (SmolLM2-Instruct's template, verbatim) on a small tokenizer with SmolLM2's special tokens
(bos <|im_start|>, eos <|im_end|>, documents <|endoftext|>): assistant masks include the trained
<|im_end|>, pre-training documents are not wrapped in turn markers (trial defect 5), and a
converted model stops generating at <|im_end|> and <|endoftext|>."""

import pytest

from posttrain.data.chat import IGNORE_INDEX, tokenize_conversation, tokenize_prompt, tokenize_text
from posttrain.data.documents import document_boundaries
from posttrain.model.gguf_convert import stop_token_ids

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CONVERSATION = [
    {"role": "user", "content": "What is 47 + 38?"},
    {"role": "assistant", "content": "47 + 38 = 85."},
    {"role": "user", "content": "And 85 - 20?"},
    {"role": "assistant", "content": "85 - 20 = 65."},
]


@pytest.fixture(scope="module")
def chatml_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2 as in SmolLM2
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [m["content"] for m in CONVERSATION] + ["system user assistant You are a helpful AI"]
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    wrapped.chat_template = SMOLLM2_TEMPLATE
    return wrapped


def test_documents_end_with_endoftext_not_turn_markers(chatml_tokenizer):
    ids = tokenize_text(chatml_tokenizer, "A plain document.")
    assert document_boundaries(chatml_tokenizer) == (None, 0)
    assert chatml_tokenizer.convert_ids_to_tokens(ids[-1]) == "<|endoftext|>"
    assert ids[:-1] == chatml_tokenizer("A plain document.", add_special_tokens=False)["input_ids"]
    assert 1 not in ids and 2 not in ids  # no <|im_start|>, no <|im_end|>


def test_llama3_names_keep_bos_and_eos(tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)  # bos <|begin_of_text|>, eos <|end_of_text|>
    assert document_boundaries(tok) == (tok.bos_token_id, tok.eos_token_id)


def test_chatml_assistant_masks_train_im_end(chatml_tokenizer):
    ids, labels = tokenize_conversation(chatml_tokenizer, CONVERSATION)
    text = chatml_tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.count("<|im_start|>") == 5  # one per turn, no BOS added in front
    spans, current = [], []
    for token, label in zip(ids, labels):
        if label != IGNORE_INDEX:
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    spans.append(current) if current else None
    assert [chatml_tokenizer.decode(s) for s in spans] == ["47 + 38 = 85.<|im_end|>\n", "85 - 20 = 65.<|im_end|>\n"]


def test_chatml_generation_prompt_ends_with_assistant_header(chatml_tokenizer):
    prompt = tokenize_prompt(chatml_tokenizer, CONVERSATION[:1])
    assert chatml_tokenizer.decode(prompt).endswith("What is 47 + 38?<|im_end|>\n<|im_start|>assistant\n")


def test_stop_tokens_are_im_end_and_endoftext(chatml_tokenizer):
    assert stop_token_ids(chatml_tokenizer) == [2, 0]
