"""PPO's value functions: values aligned with the labels, a head on the policy that leaves its
log-probs unchanged, and a critic initialised from a reward model that keeps the reward head."""

import torch
from transformers import AutoModelForCausalLM

from posttrain.config.recipe import ModelConfig
from posttrain.model.load import load_tokenizer
from posttrain.model.logprobs import token_logprobs
from posttrain.model.reward_model import load_reward_model
from posttrain.model.value import build_actor_critic, state_values


def test_state_values_shift_by_one():
    assert state_values(torch.tensor([[1.0, 2.0, 3.0]])).tolist() == [[0.0, 1.0, 2.0]]


def test_value_head_on_the_policy(tiny_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    actor_critic = build_actor_critic(
        model,
        load_tokenizer(str(tiny_dir)),
        ModelConfig(path=str(tiny_dir)),
        critic="head",
        critic_model=None,
        chunk_size=256,
        seed=0,
    )
    ids = torch.arange(5, 15).unsqueeze(0)
    labels = torch.cat([torch.full((1, 4), -100), ids[:, 4:]], dim=1)
    logps, values = actor_critic(ids, labels)
    assert torch.equal(logps, token_logprobs(model, ids, labels))
    assert values.shape == ids.shape and not values.any()  # zero-initialised head


def test_critic_from_a_reward_model_keeps_its_head(tiny_dir, tmp_path):
    tok = load_tokenizer(str(tiny_dir))
    reward_model = load_reward_model(ModelConfig(path=str(tiny_dir)), ["reward"], tok.pad_token_id)
    torch.manual_seed(1)
    torch.nn.init.normal_(reward_model.score.weight)
    reward_model.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    policy = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    actor_critic = build_actor_critic(
        policy,
        tok,
        ModelConfig(path=str(tiny_dir)),
        critic="separate",
        critic_model=str(tmp_path / "rm"),
        chunk_size=256,
        seed=0,
    ).eval()
    assert torch.equal(actor_critic.critic.classifier.score.weight, reward_model.score.weight)
    ids = torch.arange(5, 15).unsqueeze(0)
    with torch.no_grad():
        per_position = actor_critic.critic(ids)
        sequence_score = reward_model.eval()(input_ids=ids).logits[0, 0]
    assert torch.allclose(per_position[0, -1], sequence_score, atol=1e-5)  # the RM's score at the last token
