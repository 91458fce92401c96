import torch
from accelerate import Accelerator
from transformers import LlamaConfig, LlamaForCausalLM

from posttrain.config.recipe import Recipe
from posttrain.data.batching import IGNORE, Example, collate_padded
from posttrain.model.logprobs import TokenLogprobs
from posttrain.objectives.sft import NextTokenObjective
from posttrain.train.loop import TrainJob, accumulate_gradients


def _examples():
    """Eight examples of very different lengths and loss-token counts (prompt tokens masked)."""
    g = torch.Generator().manual_seed(0)
    out = []
    for n, prompt in [(5, 2), (19, 10), (8, 1), (30, 3), (4, 2), (12, 11), (25, 5), (9, 4)]:
        ids = torch.randint(3, 120, (n,), generator=g).tolist()
        out.append(Example(ids, [IGNORE] * prompt + ids[prompt:]))
    return out


def _grads_after(micro_batches):
    torch.manual_seed(0)
    model = LlamaForCausalLM(
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
    policy = TokenLogprobs(model)
    job = TrainJob(
        recipe=Recipe(),
        out_dir=None,
        accelerator=Accelerator(cpu=True),
        policy=policy,
        tokenizer=None,
        plan=None,
        objective=NextTokenObjective(),
    )
    stats = accumulate_gradients(job, policy, micro_batches)
    return stats["loss"], {n: p.grad.clone() for n, p in model.named_parameters()}


def test_accumulating_four_micro_batches_of_two_equals_one_batch_of_eight():
    """Token-level normalisation: the sum of token losses over the whole step divided by the
    step's number of loss tokens, whatever the micro-batch split."""
    examples = _examples()
    full_loss, full_grads = _grads_after([collate_padded(examples, pad_id=0)])
    acc_loss, acc_grads = _grads_after([collate_padded(examples[i : i + 2], pad_id=0) for i in range(0, 8, 2)])
    assert abs(full_loss - acc_loss) < 1e-5
    for name, grad in full_grads.items():
        torch.testing.assert_close(acc_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_a_per_micro_batch_mean_would_differ():
    """Guards the test above: with these lengths the naive mean of micro-batch means is a
    different number, so the equality there is not an accident of equal token counts."""
    examples = _examples()
    full_loss, _ = _grads_after([collate_padded(examples, pad_id=0)])
    means = [_grads_after([collate_padded(examples[i : i + 2], pad_id=0)])[0] for i in range(0, 8, 2)]
    assert abs(sum(means) / 4 - full_loss) > 1e-3


def test_peak_memory_on_cpu_is_the_process_peak_rss():
    import resource

    from posttrain.train.loop import peak_memory

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    block = bytearray(64 * 2**20)  # touch 64 MiB so the peak is at least that much above zero
    block[::4096] = b"x" * len(block[::4096])
    ((key, value),) = peak_memory(torch.device("cpu")).items()
    assert key == "peak_rss_gb" and value >= max(before, 64 / 1024)
