"""The vocabulary commands of `posttrain surgery` (parsers in surgery/cli.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from posttrain.errors import UserError


def read_texts(path: str) -> list[str]:
    """Lines of a text file, or the 'text' field of each row of a .jsonl file."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{path}: no such file")
    lines = [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if file.suffix != ".jsonl":
        return lines
    texts = []
    for n, line in enumerate(lines, 1):
        try:
            texts.append(json.loads(line)["text"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{path}: row {n}: field text: missing or not JSON") from None
    return texts


def write_text_rows(path: Path, texts: list[str]) -> Path:
    """{"text": ...} rows, written to a temporary file and renamed (never seen half-written)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    os.replace(tmp, path)
    return path


def run_make_language(args) -> int:
    from posttrain.checkpoint.output_dir import write_output_dir
    from posttrain.data.synth.second_language import second_language_sentences

    def write(tmp: Path) -> None:
        for name, n, seed in (("train", args.train, 0), ("heldout", args.heldout, 1)):
            write_text_rows(tmp / f"{name}.jsonl", second_language_sentences(n, seed))

    out = write_output_dir(args.out, "surgery make-language", [], args.overwrite, write)
    for name in ("train", "heldout"):
        print(f"{name}: {out / f'{name}.jsonl'}")
    return 0


def run_extend_vocab(args) -> int:
    from posttrain.model.load import load_tokenizer
    from posttrain.model.surgery.vocab import add_listed_tokens, extend_bpe, extend_embeddings
    from posttrain.surgery.loading import load_for_surgery, save_surgery_output, surgery_inputs

    inputs = surgery_inputs(args, args.model, files=(args.corpus, args.tokens, args.keep))
    model, old_tok, path = load_for_surgery(args.model)
    work_tok = load_tokenizer(path)  # a second copy: adding tokens changes it in place
    if args.corpus:
        keep = read_texts(args.keep) if args.keep else []
        new_tok, tokens = extend_bpe(work_tok, read_texts(args.corpus), args.num_tokens, keep)
    else:
        if not Path(args.tokens).is_file():
            raise UserError(f"{args.tokens}: no such file")
        tokens = [t for t in Path(args.tokens).read_text(encoding="utf-8").splitlines() if t]
        new_tok, tokens = add_listed_tokens(work_tok, tokens, args.tokens)
    if not tokens:
        raise UserError("no new tokens: the corpus adds nothing the vocabulary lacks")
    extend_embeddings(model, old_tok, new_tok, tokens, args.init, args.seed)
    out = save_surgery_output(args, inputs, model, new_tok)
    print(f"{out}: {len(tokens)} new tokens (vocabulary {len(old_tok)} -> {len(new_tok)}), init {args.init}")
    return 0


def run_lep(args) -> int:
    import torch

    from posttrain.model.surgery.lep import propagate
    from posttrain.surgery.loading import load_for_surgery, save_surgery_output, surgery_inputs

    inputs = surgery_inputs(args, args.base, args.adapted, args.instruct)
    base, _, _ = load_for_surgery(args.base)
    adapted, adapted_tok, _ = load_for_surgery(args.adapted)
    instruct, instruct_tok, _ = load_for_surgery(args.instruct)
    tied = instruct.get_output_embeddings().weight is instruct.get_input_embeddings().weight
    pairs = [(m.get_input_embeddings().weight for m in (adapted, instruct, base))]
    if not tied:
        pairs.append(m.get_output_embeddings().weight for m in (adapted, instruct, base))
    new = [propagate(*(w.detach() for w in triple), args.method) for triple in pairs]
    instruct.resize_token_embeddings(new[0].shape[0], mean_resizing=False)
    with torch.no_grad():
        instruct.get_input_embeddings().weight.copy_(new[0])
        if not tied:
            instruct.get_output_embeddings().weight.copy_(new[1])
    if getattr(instruct_tok, "chat_template", None):  # the instruct model's own chat format
        adapted_tok.chat_template = instruct_tok.chat_template
    out = save_surgery_output(args, inputs, instruct, adapted_tok)
    print(f"{out}: instruct model with {new[0].shape[0]} embedding rows ({args.method})")
    return 0
