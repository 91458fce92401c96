"""Row filters: length (characters, tokens), language (py3langid), perplexity under a model.

    posttrain curate filter --set input=train.jsonl --set out=kept.jsonl --set max_chars=8000 \\
        --set 'languages=[en]' --set perplexity_model=tiny --set max_perplexity=2000

Each row's text (`text`: all messages, the user turns or the assistant turns, as in rows.row_text)
goes through the filters that are set, cheapest first: length, then language, then perplexity;
a row is removed by the first it fails, and the report and the manifest's removed_by name it.
Language: py3langid's top language with probability normalised over its 97 languages (Lui and
Baldwin 2012, langid.py); a row is kept when that language is in `languages` and its probability
is >= min_language_prob. Perplexity: exp(-mean_t log p(x_t | x_<t)) over the text's tokens after
the first (BOS added by the tokenizer), computed with model/logprobs.token_logprobs on at most
perplexity_max_tokens tokens; high perplexity marks noise, very low marks repetition (the filters
of CCNet, Wenzek et al. 2020, and of Magpie's data filtering use the same score).
"""

from __future__ import annotations

from typing import Literal

from posttrain.config.base import NonNegative, Positive, PositiveFloat, Ratio, Section

NAME = "filter"
HELP = "remove rows by length (chars/tokens), language (py3langid) or perplexity under a model"


class Recipe(Section):
    input: str  # a .jsonl/.parquet file or a folder of shards
    out: str  # same format as input (a folder for a folder)
    text: Literal["all", "prompt", "response"] = "all"
    min_chars: NonNegative = 0
    max_chars: Positive | None = None
    min_tokens: NonNegative = 0
    max_tokens: Positive | None = None
    tokenizer: str | None = None  # for token counts; default: perplexity_model's
    languages: list[str] = []  # ISO 639-1 codes to keep; [] = no language filter
    min_language_prob: Ratio = 0.5
    perplexity_model: str | None = None  # a model directory, adapter directory, or 'tiny'
    min_perplexity: PositiveFloat | None = None
    max_perplexity: PositiveFloat | None = None
    perplexity_max_tokens: Positive = 1024
    batch_size: Positive = 16
    dtype: str = "float32"


def perplexities(model, tokenizer, texts: list[str], max_tokens: int) -> list[float]:
    """exp(-mean log p(token | earlier tokens)) of each text, one padded batch (right padding,
    masked; the padded positions carry no label)."""
    import torch

    from posttrain.data.batching import IGNORE
    from posttrain.model.logprobs import token_logprobs

    encoded = [
        tokenizer(t, truncation=True, max_length=max_tokens)["input_ids"] or [tokenizer.eos_token_id] for t in texts
    ]
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(texts), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(texts), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(texts), width), dtype=torch.long)
    for i, ids in enumerate(encoded):
        input_ids[i, : len(ids)] = labels[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
    device = next(model.parameters()).device
    with torch.no_grad():
        logprobs = token_logprobs(model, input_ids.to(device), labels.to(device), attention_mask=mask.to(device))
    counts = (mask[:, 1:].sum(dim=1)).clamp(min=1).to(device)
    return torch.exp(-logprobs[:, 1:].sum(dim=1) / counts).tolist()


class Filters:
    """The recipe's filters, loaded once (tokenizer, language model, perplexity model)."""

    def __init__(self, recipe: Recipe):
        from posttrain.errors import UserError

        self.recipe = recipe
        self.wants_tokens = recipe.min_tokens > 0 or recipe.max_tokens is not None
        self.wants_ppl = recipe.min_perplexity is not None or recipe.max_perplexity is not None
        if not (recipe.min_chars or recipe.max_chars or self.wants_tokens or recipe.languages or self.wants_ppl):
            raise UserError(
                "filter: no filter set: give min_chars/max_chars, min_tokens/max_tokens, "
                "languages, or min_perplexity/max_perplexity"
            )
        if self.wants_ppl and not recipe.perplexity_model:
            raise UserError("filter: min_perplexity/max_perplexity need perplexity_model")
        if self.wants_tokens and not (recipe.tokenizer or recipe.perplexity_model):
            raise UserError("filter: min_tokens/max_tokens need tokenizer (or perplexity_model)")
        self.model = self.tokenizer = self.languages = None
        if self.wants_ppl:
            from posttrain.model.inference import load_model_and_tokenizer

            self.model, self.tokenizer = load_model_and_tokenizer(recipe.perplexity_model, recipe.dtype)
        if self.wants_tokens and recipe.tokenizer:
            from posttrain.model.load import load_tokenizer

            self.tokenizer = load_tokenizer(recipe.tokenizer)
        if recipe.languages:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            self.languages = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def cheap(self, text: str) -> dict | None:
        """The length and language verdicts of one text."""
        r = self.recipe
        if len(text) < r.min_chars or (r.max_chars is not None and len(text) > r.max_chars):
            return {"filter": "length_chars", "chars": len(text)}
        if self.wants_tokens:
            n = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if n < r.min_tokens or (r.max_tokens is not None and n > r.max_tokens):
                return {"filter": "length_tokens", "tokens": n}
        if self.languages is not None:
            language, prob = self.languages.classify(text)
            if language not in r.languages or prob < r.min_language_prob:
                return {"filter": "language", "language": language, "probability": round(float(prob), 4)}
        return None

    def judge(self, texts: list[str]) -> list[dict | None]:
        verdicts = [self.cheap(t) for t in texts]
        if not self.wants_ppl:
            return verdicts
        todo = [i for i, v in enumerate(verdicts) if v is None]
        scores = (
            perplexities(self.model, self.tokenizer, [texts[i] for i in todo], self.recipe.perplexity_max_tokens)
            if todo
            else []
        )
        low, high = self.recipe.min_perplexity, self.recipe.max_perplexity
        for i, ppl in zip(todo, scores):
            if (low is not None and ppl < low) or (high is not None and ppl > high):
                verdicts[i] = {"filter": "perplexity", "perplexity": round(ppl, 3)}
        return verdicts


def run(recipe: Recipe) -> int:
    from posttrain.curation.rows import PassSpec, row_text, run_pass

    filters = Filters(recipe)

    def judge(batch):
        return filters.judge([row_text(row, recipe.text, where.shard, where.number) for where, row in batch])

    spec = PassSpec(
        recipe.input,
        recipe.out,
        NAME,
        recipe.model_dump(exclude={"input", "out", "batch_size"}),
        desc="filter",
        batch_size=recipe.batch_size if filters.wants_ppl else 256,
    )
    counts = run_pass(spec, judge)["counts"]
    print(f"filter: kept {counts['kept']} of {counts['rows_in']} rows (removed: {counts['removed_by']})")
    return 0
