"""Greedy generation on SmolLM2 ends its turn with <|im_end|> (the converted generation config's
first stop token), and posttrain's generation stops there and drops it."""

from posttrain.data.chat import tokenize_prompt
from posttrain.model.generate import GenerationConfig, generate_text, stop_token_ids

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer with one word."}]
BUDGET = 24


def test_generation_stops_at_im_end(smollm2):
    model, tok = smollm2
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert stop_token_ids(model, tok)[0] == im_end
    prompt = tokenize_prompt(tok, QUESTION)
    [text] = generate_text(model, tok, [prompt], GenerationConfig(max_new_tokens=BUDGET, batch_size=1))
    assert "Paris" in text and "<|im_end|>" not in text and "<|im_start|>" not in text
    # the same greedy continuation, raw: the token after the answer is <|im_end|>, within the budget
    import torch

    raw = model.generate(torch.tensor([prompt]), max_new_tokens=BUDGET, do_sample=False)[0, len(prompt) :].tolist()
    assert im_end in raw and tok.decode(raw[: raw.index(im_end)]).strip() == text.strip()
