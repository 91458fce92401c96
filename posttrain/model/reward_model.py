"""Reward models: a causal LM's decoder with a linear head on the last real token's hidden state.

    r_a(x, y) = w_a . h_T     h_T: last-layer state of the last token of prompt + response
                               (Llama-3: the response's <|eot_id|>), one output a per attribute

The model is Hugging Face's AutoModelForSequenceClassification (num_labels = number of outputs,
their names in config.id2label), so a saved run is an ordinary directory that RewardBench, TRL's
PPO or this package's `score` read. Its pooling takes the rightmost token that is not the pad id;
batches are right-padded with that id and attention is causal, so a sequence in a batch gets
exactly the score it gets alone (no real token attends to a pad).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from posttrain.config.recipe import AdapterConfig, ModelConfig, RewardSection
from posttrain.data.reward import pad_right
from posttrain.errors import UserError
from posttrain.model.adapters import (
    adapter_base,
    add_adapter,
    is_adapter_dir,
    load_adapter,
)
from posttrain.model.load import (
    enable_activation_checkpointing,
    instantiate,
    load_tokenizer,
    loading_errors,
)
from posttrain.model.paths import DTYPES, resolve_model_path
from posttrain.model.segment_mask import segment_attention_mask

log = logging.getLogger(__name__)

SCALAR_LABEL = "reward"  # the name of a scalar reward model's one output


def reward_model_labels(path: str) -> list[str] | None:
    """The output names of a saved reward model (a sequence-classification config), else None."""
    try:
        config = AutoConfig.from_pretrained(resolve_model_path(path))
    except (OSError, ValueError):
        return None  # not loadable here: the model load reports it
    if not any(a.endswith("ForSequenceClassification") for a in config.architectures or []):
        return None
    return [config.id2label[i] for i in range(config.num_labels)]


def head_labels(reward: RewardSection, pairwise: bool, init_labels: list[str] | None) -> list[str]:
    """The head's outputs. Regression: one per reward.attributes. Pairwise: one scalar, or, when
    reward.score_attribute names one output to compare, the attributes (or the initial model's)."""
    if not pairwise:
        if not reward.attributes:
            raise UserError(
                "reward.loss regression needs reward.attributes (the data fields to "
                "predict, e.g. [helpfulness, correctness, coherence, complexity, verbosity])"
            )
        return list(reward.attributes)
    if reward.score_attribute is None:
        if len(reward.attributes) > 1:
            raise UserError(
                "a pairwise reward loss on several reward.attributes needs "
                "reward.score_attribute: the output that scores a response"
            )
        return list(reward.attributes) or [SCALAR_LABEL]
    labels = list(reward.attributes) or init_labels or []
    if reward.score_attribute not in labels:
        raise UserError(
            f"reward.score_attribute '{reward.score_attribute}' is not an output of the "
            f"head (outputs: {labels or 'none'}); list it in reward.attributes"
        )
    return labels


def load_reward_model(
    cfg: ModelConfig,
    labels: list[str],
    pad_token_id: int,
    seed: int = 0,
    adapter: AdapterConfig | None = None,
    reset_head: bool = False,
    resume_from: str | Path | None = None,
):
    """A sequence-classification model with len(labels) outputs, from a causal LM (fresh head), a
    reward model (its head kept unless reset_head or its size differs), random weights
    (model.init: random) or this run's checkpoint (resume); then the recipe's adapter."""
    adapter = adapter or AdapterConfig()
    head = dict(
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        pad_token_id=pad_token_id,
    )
    full_checkpoint = resume_from is not None and not is_adapter_dir(resume_from)
    init_labels = None if full_checkpoint else reward_model_labels(resolve_model_path(cfg.path))
    loaded = instantiate(
        cfg,
        seed,
        adapter,
        resume_from,
        AutoModelForSequenceClassification,
        config_extra=head,
        ignore_mismatched_sizes=True,
    )
    model, resume_adapter = loaded.model, loaded.resume_adapter
    _only_the_head_differs(loaded.mismatched, loaded.path)
    if init_labels is not None and (reset_head or len(init_labels) != len(labels)):
        log.info("reward head re-initialised (%d outputs -> %d)", len(init_labels), len(labels))
        reset_head_weights(model, seed)
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(model)
    if resume_adapter:
        return load_adapter(model, resume_from)
    return add_reward_adapter(model, adapter) if adapter.kind != "none" else model


HEAD_NAMES = ("score", "classifier")  # the linear reward head of a sequence-classification model


def _only_the_head_differs(mismatched: list, path: str) -> None:
    """ignore_mismatched_sizes lets a head of another size be re-initialised; any other tensor of
    the wrong shape would be silently re-initialised too, so it is an error instead."""
    body = [(key, *shapes) for key, *shapes in mismatched if key.split(".")[0] not in HEAD_NAMES]
    if body:
        key, stored, expected = body[0]
        raise UserError(
            f"cannot load model '{path}': the weights do not match config.json ({key} is "
            f"{list(stored)} in the weights, {list(expected)} by config.json; "
            f"{len(body)} {'tensor differs' if len(body) == 1 else 'tensors differ'})"
        )


def score_head(model) -> nn.Linear:
    """The linear head of a sequence-classification model (`score` in decoder-only models)."""
    for name in HEAD_NAMES:
        head = getattr(model, name, None)
        if isinstance(head, nn.Linear):
            return head
    raise UserError(f"{type(model).__name__}: no linear reward head named 'score' or 'classifier'")


def reset_head_weights(model, seed: int) -> None:
    """The head as transformers initialises it: N(0, initializer_range^2), bias 0."""
    head = score_head(model)
    generator = torch.Generator().manual_seed(seed)
    std = getattr(model.config, "initializer_range", 0.02)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * std)
        if head.bias is not None:
            head.bias.zero_()


def add_reward_adapter(model, adapter: AdapterConfig):
    """LoRA/DoRA/QLoRA with peft's sequence-classification task: the head is trained in full and
    saved with the adapter (peft adds it to modules_to_save)."""
    return add_adapter(model, adapter, task_type="SEQ_CLS")


class RewardScores(nn.Module):
    """Wraps a reward model so that its forward returns float32 scores [B, A]; the training loop
    hands this module to accelerate (one module forward for DDP/FSDP) and saves `.model`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self._no_split_modules = getattr(model, "_no_split_modules", None)  # FSDP auto-wrapping

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        score_at: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores of each row; or, in the shared-prefix layout (data/shared_prefix.py), of each
        response at score_at's (row, column): the body runs once with the segment mask and the
        head only at those positions."""
        if segment_ids is None:
            return self.model(input_ids=input_ids, use_cache=False).logits.float()
        classifier = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        body = getattr(classifier, classifier.base_model_prefix)
        mask = segment_attention_mask(segment_ids, classifier.dtype)
        hidden = body(
            input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        return classifier.score(hidden[score_at[:, 0], score_at[:, 1]]).float()


@torch.no_grad()
def score_sequences(model, sequences: list[list[int]], pad_id: int, batch_size: int) -> torch.Tensor:
    """Scores [N, A] (float32, CPU) of token sequences, in input order; batched longest first so
    that a batch pads little."""
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    device = next(model.parameters()).device
    scores = torch.zeros(len(sequences), model.config.num_labels)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        input_ids = pad_right([sequences[i] for i in rows], pad_id).to(device)
        scores[rows] = model(input_ids=input_ids, use_cache=False).logits.float().cpu()
    return scores


def load_reward_model_dir(path: str, dtype: str | None = None):
    """(reward model in eval mode on the GPU if there is one, tokenizer) from a saved reward model
    or a LoRA reward-model adapter (base + adapter, merged); dtype None keeps the saved one."""
    path = resolve_model_path(path)
    adapter = is_adapter_dir(path)
    if not adapter:
        require_reward_head(path)  # an adapter's head is checked by _adapter_head_outputs
    base = adapter_base(path) if adapter else path
    kwargs = {"dtype": DTYPES[dtype]} if dtype else {}
    if adapter:
        kwargs["num_labels"] = _adapter_head_outputs(path)
    tokenizer = load_tokenizer(path if (Path(path) / "tokenizer_config.json").is_file() else base)
    with loading_errors(base, "reward model"):
        model = AutoModelForSequenceClassification.from_pretrained(base, pad_token_id=tokenizer.pad_token_id, **kwargs)
    if adapter:
        model = load_adapter(model, path, trainable=False).merge_and_unload()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), tokenizer


REWARD_HEADS = ("score.weight", "classifier.weight")


def require_reward_head(model_dir: str) -> None:
    """A one-line error for a model directory without a trained reward head: loading a causal LM as
    a sequence classifier gives it a random head whose scores mean nothing."""
    from posttrain.checkpoint.weights import tensor_shapes

    directory = Path(model_dir)
    if not directory.is_dir():
        return  # a hub id: from_pretrained reports what it finds
    if not any(name.endswith(REWARD_HEADS) for name in tensor_shapes(directory)):
        raise UserError(
            f"{model_dir}: no reward head (score.weight) in its weights: not a reward model "
            "(a plain causal LM would be scored through a randomly initialised head); "
            "train one with `posttrain reward`"
        )


def _adapter_head_outputs(adapter_dir: str) -> int:
    """A reward adapter saves its whole head; the head's rows are the model's outputs."""
    from safetensors import safe_open

    with safe_open(str(Path(adapter_dir) / "adapter_model.safetensors"), "pt") as weights:
        for key in weights.keys():
            if key.endswith(("score.weight", "classifier.weight")):
                return weights.get_slice(key).get_shape()[0]
    raise UserError(f"{adapter_dir}: an adapter without a reward head (score.weight): not a reward model")
