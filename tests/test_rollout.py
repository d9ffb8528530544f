import pytest
import torch

from rlvr.generation.base import Sample
from rlvr.trainers.rollout import build_batch, last_token_rewards, shape_reward


def sample(prompt_ids, response_ids, reward=1.0, finish="eos"):
    return Sample(prompt="p", prompt_ids=prompt_ids, response_ids=response_ids, text="t",
                  logprobs=[-0.5] * len(response_ids), finish_reason=finish, reward=reward)


def test_batch_layout_left_pads_prompts_and_right_pads_responses():
    b = build_batch([sample([5, 6], [7, 8, 2]), sample([9], [3])], pad_id=0, counts_in_loss=[True, False])
    assert b.prompt_len == 2
    assert b.input_ids.tolist() == [[5, 6, 7, 8, 2], [0, 9, 3, 0, 0]]
    assert b.attention_mask.tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 0, 0]]
    assert b.position_ids[:, :3].tolist() == [[0, 1, 2], [0, 0, 1]]
    assert b.response_mask.tolist() == [[1, 1, 1], [0, 0, 0]]  # the second is filtered out of the loss
    assert b.token_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b.lengths.tolist() == [3, 1] and b.scores.tolist() == [1.0, 1.0]
    assert b.select([1]).input_ids.tolist() == [[0, 9, 3, 0, 0]]


def test_last_token_rewards():
    r = last_token_rewards(torch.tensor([1.0, -2.0]), torch.tensor([3, 1]), 4)
    assert r.tolist() == [[0, 0, 1, 0], [-2, 0, 0, 0]]


def test_reward_shaping_for_cut_off_responses():
    done, cut = sample([1], [2] * 6), sample([1], [2] * 10, finish="length")
    assert shape_reward(1.0, done, 10, truncation_penalty=-1.0, overlong="none", buffer=4) == 1.0
    assert shape_reward(1.0, cut, 10, truncation_penalty=-1.0, overlong="none", buffer=4) == -1.0
    # DAPO soft penalty: 6 tokens is at the buffer's start (10 - 4), 8 tokens is half-way, 10 the full -1
    assert shape_reward(1.0, done, 10, None, "soft", 4) == 1.0
    assert shape_reward(1.0, sample([1], [2] * 8), 10, None, "soft", 4) == pytest.approx(0.5)
    assert shape_reward(1.0, cut, 10, None, "soft", 4) == pytest.approx(0.0)
