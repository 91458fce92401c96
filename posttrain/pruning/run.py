"""`posttrain prune RECIPE.yaml`: Puzzle in small form (Bercovich et al. 2024).

1. the replacement library: for every layer, each attention alternative (fewer KV heads,
   mean-pooled; no-op) and FFN alternative (channels kept by importance; no-op), built from the
   parent's weights (pruning/alternatives.py);
2. blockwise local distillation of each alternative on the parent's activations, then the
   replace-one-block KL score of every (attention, FFN) variant (pruning/local_distill.py);
3. the exact MIP selection of one variant per layer under the parameter budget and optionally a
   KV-cache budget (pruning/select.py);
4. the selected heterogeneous model (pruning/hetero_llama.py) written to OUTPUT/selected, then,
   when the recipe has `uptrain`, global distillation from the parent through `posttrain distill`
   (its loop and objectives) into OUTPUT/uptrain/final.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from posttrain.checkpoint.io import save_model_dir, write_text_atomically
from posttrain.config.recipe import ModelConfig
from posttrain.data.chat import ensure_chat_template
from posttrain.data.prepare import check_sources, conversation_examples
from posttrain.errors import UserError
from posttrain.model.hetero_llama import PuzzleLlamaForCausalLM, puzzle_config
from posttrain.model.load import load_model, load_tokenizer, loading_errors
from posttrain.model.paths import resolve_model_path
from posttrain.pruning import alternatives as alt
from posttrain.pruning.local_distill import (
    branch_error,
    local_distill,
    next_token_logprobs,
    parent_activations,
    score_variants,
)
from posttrain.pruning.recipe import PruneRecipe
from posttrain.pruning.select import select_variants


def parent_config(path: str):
    """The parent's config, which must be a plain Llama's (read before any weights load)."""
    from transformers import AutoConfig

    with loading_errors(path):
        config = AutoConfig.from_pretrained(resolve_model_path(path))
    if config.model_type != "llama":
        raise UserError(
            f"model {path}: model_type '{config.model_type}'; posttrain prune prunes a "
            f"Llama causal LM (model_type llama)"
        )
    return config


def variant_choices(config, alternatives) -> list[alt.Choice]:
    """Every (attention, FFN) pair; index 0 is the parent's own block."""
    return [
        alt.Choice(kv, width)
        for kv in alt.attention_options(config, alternatives.attention)
        for width in alt.ffn_options(config, alternatives.ffn)
    ]


def budgets(recipe: PruneRecipe, config, choices: list[alt.Choice], total_params: int):
    """(costs, limits, names) of the MIP: parameters, and the KV cache when kv_budget is set."""
    layers = config.num_hidden_layers
    params = np.array([[alt.block_params(config, c) for c in choices]] * layers, dtype=float)
    outside_blocks = total_params - params[:, 0].sum()
    smallest = outside_blocks + params.min(axis=1).sum()
    if recipe.budget * total_params < smallest:
        raise UserError(
            f"budget {recipe.budget} ({recipe.budget * total_params:.0f} of {total_params} "
            f"parameters) is below the smallest choice: {smallest:.0f} parameters (embeddings, "
            f"LM head and the cheapest variant of every block), a budget of at least "
            f"{math.ceil(1000 * smallest / total_params) / 1000}"
        )
    costs, limits = [params], [recipe.budget * total_params - outside_blocks]
    names = [f"budget {recipe.budget} ({recipe.budget * total_params:.0f} of {total_params} parameters)"]
    if recipe.kv_budget is not None:
        costs.append(np.array([[c.kv_heads for c in choices]] * layers, dtype=float))
        limits.append(recipe.kv_budget * layers * config.num_key_value_heads)
        names.append(f"kv_budget {recipe.kv_budget} (KV heads over all layers)")
    return costs, limits, names


def calibration_blocks(recipe: PruneRecipe, tokenizer) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Calibration conversations, tokenised with the chat template, concatenated in a seeded order
    and cut into blocks of sequence_length; (training batches, held-out batches)."""
    ensure_chat_template(tokenizer)
    check_sources(recipe.calibration, "conversation")
    stream: list[int] = []
    examples = [ex for source in recipe.calibration for ex in conversation_examples(tokenizer, source, 1 << 30, "fail")]
    for i in torch.randperm(len(examples), generator=torch.Generator().manual_seed(recipe.seed)).tolist():
        stream += list(examples[i].input_ids)
        if len(stream) >= recipe.calibration_tokens:
            break
    n = min(len(stream), recipe.calibration_tokens) // recipe.sequence_length
    if n < 2:
        raise UserError(
            f"calibration: {len(stream)} tokens make fewer than 2 blocks of sequence_length "
            f"{recipe.sequence_length}; add data or lower sequence_length"
        )
    blocks = torch.tensor(stream[: n * recipe.sequence_length]).view(n, recipe.sequence_length)
    held = max(1, round(recipe.holdout_fraction * n))
    split = lambda x: list(x.split(recipe.batch_size))  # noqa: E731
    return split(blocks[held:]), split(blocks[:held])


def layer_variants(layer, config, act, choices: list[alt.Choice], recipe: PruneRecipe, report: dict):
    """Build and locally distil this layer's attention and FFN alternatives; one (attention, FFN)
    pair per choice, sharing the trained branches."""
    with torch.no_grad():
        mlp_inputs = torch.cat([layer.post_attention_layernorm(act.middle(i)) for i in range(len(act.inputs))])
        importance = alt.channel_importance(layer.mlp, mlp_inputs)
    branches = {}
    for kind, option in sorted(
        {("attention", c.kv_heads) for c in choices} | {("ffn", c.intermediate_size) for c in choices}
    ):
        branch = (
            alt.attention_branch(layer, config, option)
            if kind == "attention"
            else alt.ffn_branch(layer, config, option, importance)
        )
        before = branch_error(branch, act)
        is_parent = option == (config.num_key_value_heads if kind == "attention" else config.intermediate_size)
        if not is_parent:  # the parent's own sub-block already imitates itself exactly
            local_distill(branch, act, recipe.bld_steps, recipe.bld_lr, recipe.seed)
        report[f"{kind}={option}"] = {"error_init": before, "error_bld": branch_error(branch, act)}
        branches[kind, option] = branch
    return [(branches["attention", c.kv_heads], branches["ffn", c.intermediate_size]) for c in choices]


def build_library(parent, choices, train, held, recipe: PruneRecipe):
    """Per layer: the trained variants and their scores; plus the per-layer report."""
    acts = parent_activations(parent, train)
    parent_logps = next_token_logprobs(parent, held)
    variants, scores, report = [], [], []
    for index in tqdm(range(len(acts)), desc="local distillation + scoring", unit="layer"):
        layer_report: dict = {}
        options = layer_variants(parent.model.layers[index], parent.config, acts[index], choices, recipe, layer_report)
        scores.append(score_variants(parent, index, options, held, parent_logps))
        layer_report["kl"] = dict(zip([c.name() for c in choices], scores[-1]))
        variants.append(options)
        report.append(layer_report)
        acts[index] = None  # free the layer's activations
    return variants, np.array(scores), report


def assemble(parent, config, picked: list[alt.Choice], variants, chosen: list[int]) -> PuzzleLlamaForCausalLM:
    """The heterogeneous model: the parent with each layer's chosen trained branches."""
    for layer, options, i in zip(parent.model.layers, variants, chosen):
        alt.install(layer, *options[i])
    model = PuzzleLlamaForCausalLM(puzzle_config(config, [c.block_config() for c in picked]))
    model.load_state_dict(parent.state_dict(), strict=True)
    # The parent's stop tokens (e.g. Llama-3's <|eot_id|> beside <|end_of_text|>): a config
    # derived from the model's config alone would stop only at eos_token_id.
    model.generation_config = copy.deepcopy(parent.generation_config)
    return model.to(parent.dtype)


def run_prune(recipe: PruneRecipe, out: str | None = None) -> Path:
    if not (out or recipe.output):
        raise UserError("no output directory: set output: DIR in the recipe or pass --out DIR")
    out_dir = Path(out or recipe.output)
    config = parent_config(recipe.model)
    choices = variant_choices(config, recipe.alternatives)
    torch.manual_seed(recipe.seed)
    parent = load_model(ModelConfig(path=recipe.model, dtype=recipe.dtype)).eval()
    parent.requires_grad_(False)
    total = sum(p.numel() for p in parent.parameters())
    costs, limits, names = budgets(recipe, config, choices, total)
    select_variants(np.zeros(costs[0].shape), costs, limits, names)  # budget errors before any work
    tokenizer = load_tokenizer(recipe.model)
    train, held = calibration_blocks(recipe, tokenizer)
    variants, scores, layer_report = build_library(parent, choices, train, held, recipe)
    chosen = select_variants(scores, costs, limits, names)
    picked = [choices[i] for i in chosen]
    model = assemble(parent, config, picked, variants, chosen)
    params = sum(p.numel() for p in model.parameters())
    selected = save_model_dir(out_dir / "selected", model, tokenizer)
    report = {
        "parent": recipe.model,
        "parent_params": total,
        "params": params,
        "share": params / total,
        "blocks": [c.block_config() for c in picked],
        "layers": layer_report,
        "selected": str(selected),
    }
    write_text_atomically(out_dir / "prune_report.json", json.dumps(report, indent=2))
    print(
        f"selected: {params} of {total} parameters ({params / total:.1%}): "
        + "; ".join(f"layer {i}: {c.name()}" for i, c in enumerate(picked))
    )
    if recipe.uptrain is not None:
        return uptrain(recipe, selected, out_dir)
    return selected


def uptrain(recipe: PruneRecipe, selected: Path, out_dir: Path) -> Path:
    """Global distillation of the selection from the parent: `posttrain distill` as it is."""
    from posttrain.stages import distill

    student = recipe.uptrain.model.model_copy(update={"path": str(selected)})
    teacher = recipe.uptrain.distill.model_copy(update={"teacher": recipe.model})
    distill_recipe = recipe.uptrain.model_copy(update={"model": student, "distill": teacher})
    distill.run(distill_recipe, output_dir=str(out_dir / "uptrain"))
    return out_dir / "uptrain" / "final"
