"""KTO's reference point through the loop: z0 is estimated over the optimizer step's micro-batches
(all of them, no gradient), so batch 8 x accumulation 1 and batch 1 x accumulation 8 give the same
z0, loss and gradient; a per-micro-batch estimate would not."""

import torch
from accelerate import Accelerator
from transformers import LlamaConfig, LlamaForCausalLM

from posttrain.config.recipe import Recipe
from posttrain.data.batching import IGNORE, Example
from posttrain.data.unpaired import UnpairedExample, collate_unpaired
from posttrain.model.logprobs import TokenLogprobs
from posttrain.objectives.pairwise import UnpairedObjective, sequence_logps
from posttrain.objectives.preference import PreferenceConfig
from posttrain.train.loop import TrainJob, accumulate_gradients

# log p_pi - log p_ref of each mismatched row: mean 0.25 > 0, but most single rows are negative,
# so one z0 per micro-batch of one (clamped at 0) differs from the step's z0
MISMATCHED_LOG_RATIOS = [2.0, -1.0, -0.5, 3.0, -1.5, -0.25, 0.75, -0.5]


def _model():
    torch.manual_seed(0)
    return LlamaForCausalLM(
        LlamaConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            vocab_size=128,
            max_position_embeddings=64,
        )
    )


def _example(ids, prompt):
    return Example(ids, [IGNORE] * prompt + ids[prompt:])


def _examples(policy):
    g = torch.Generator().manual_seed(1)
    out = []
    for i, (n, prompt) in enumerate([(6, 2), (11, 4), (8, 3), (14, 5), (5, 2), (9, 2), (12, 6), (7, 3)]):
        own, other = (torch.randint(3, 120, (n,), generator=g).tolist() for _ in range(2))
        ex = UnpairedExample(
            [],
            [],
            desirable=i % 3 != 0,
            matched=_example(own, prompt),
            mismatched=_example(own[:prompt] + other[prompt:], prompt),
        )
        out.append(ex)
    with torch.no_grad():  # reference log-probs chosen so the log-ratios are the ones above
        for ex, ratio in zip(out, MISMATCHED_LOG_RATIOS):
            batch = collate_unpaired([ex], pad_id=0)
            logps, _ = sequence_logps(policy(batch["input_ids"], batch["labels"]), batch["labels"])
            ex.ref_logps = {"matched": float(logps[0]) - 0.3, "mismatched": float(logps[1]) - ratio}
    return out


def _step(micro_batch_size, make_objective=lambda cfg, accelerator: UnpairedObjective(cfg)):
    model = _model()
    policy = TokenLogprobs(model)
    examples = _examples(policy)
    micro_batches = [
        collate_unpaired(examples[i : i + micro_batch_size], pad_id=0) for i in range(0, 8, micro_batch_size)
    ]
    accelerator = Accelerator(cpu=True)
    cfg = PreferenceConfig(beta=0.5)
    objective = make_objective(cfg, accelerator)
    job = TrainJob(
        recipe=Recipe(),
        out_dir=None,
        accelerator=accelerator,
        policy=policy,
        tokenizer=None,
        plan=None,
        objective=objective,
    )
    stats = accumulate_gradients(job, policy, micro_batches)
    return float(objective.z0), stats, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_z0_loss_and_gradient_do_not_depend_on_the_micro_batch_split():
    full_z0, full, full_grads = _step(8)
    split_z0, split, split_grads = _step(1)
    assert abs(full_z0 - sum(MISMATCHED_LOG_RATIOS) / 8) < 1e-4  # the step's mean log-ratio
    assert abs(split_z0 - full_z0) < 1e-5
    assert abs(float(split["kl_reference_point"]) - full_z0) < 1e-5
    assert abs(float(full["loss"]) - float(split["loss"])) < 1e-6
    for name, grad in full_grads.items():
        torch.testing.assert_close(split_grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)


class PerMicroBatchZ0(UnpairedObjective):
    """The old estimate: z0 from each micro-batch's own mismatched rows."""

    def __init__(self, cfg, accelerator):
        super().__init__(cfg)
        self.accelerator = accelerator

    def loss(self, policy, mb):
        self.prepare_step(policy, [mb], self.accelerator)
        return super().loss(policy, mb)


def test_a_per_micro_batch_z0_would_differ():
    """Guards the test above: with one z0 per micro-batch of one (each max(0, its row's ratio)) the
    split step's loss is a different number."""
    _, full, _ = _step(8)
    _, split, _ = _step(1, PerMicroBatchZ0)
    assert abs(float(split["kl_reference_point"]) - sum(max(0.0, r) for r in MISMATCHED_LOG_RATIOS) / 8) < 1e-4
    assert abs(float(full["loss"]) - float(split["loss"])) > 1e-3
