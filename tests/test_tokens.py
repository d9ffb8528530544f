"""Bounded tokenization (rlvr/data/tokens.py): the decision 'more than limit tokens?' never changes when only a
part of the text is tokenized, and a huge text costs work bounded by the limit."""
from __future__ import annotations

import pytest
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from rlvr.data.templates import encode
from rlvr.data.tokens import encode_capped, longest_token_chars
from rlvr.models import char_tokenizer


def bpe_tokenizer():
    """Hand-made BPE over 'a'/'b' whose merges build tokens of up to 4 characters ('aaaa')."""
    vocab = {"a": 0, "b": 1, "aa": 2, "ab": 3, "aaaa": 4, "<unk>": 5}
    merges = [("a", "a"), ("a", "b"), ("aa", "aa")]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


def spacing_tokenizer():
    """Drops whitespace between words (as BERT's does), so a token can stand for more text than it spells."""
    tok = Tokenizer(models.WordLevel(vocab={"a": 0, "bb": 1, "<unk>": 2}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s+"), behavior="removed")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


class Spy:
    """The tokenizer, recording the length of every text it is asked to tokenize."""

    def __init__(self, tokenizer):
        self.tokenizer, self.lengths = tokenizer, []

    def __call__(self, text, **kw):
        self.lengths.append(len(text))
        return self.tokenizer(text, **kw)

    def __getattr__(self, name):  # everything else (get_vocab, eos_token, ...) is the tokenizer's
        return getattr(self.tokenizer, name)


def test_longest_token_is_the_longest_vocabulary_string():
    assert longest_token_chars(bpe_tokenizer()) == 5  # '<unk>'
    assert longest_token_chars(char_tokenizer("0123456789")) == len("<|assistant|>")


@pytest.mark.parametrize("make", [bpe_tokenizer, lambda: char_tokenizer("ab"), spacing_tokenizer])
def test_the_decision_is_exact_at_every_length_around_the_cut(make):
    """Every text length from well under to well over (limit + 2) * L, with a head or a tail part: 'over'
    is the whole text's answer, and a text within the limit comes back whole."""
    tok = make()
    texts = []
    for n in range(90):
        texts += ["a" * n, "ab" * (n // 2) + "a" * (n % 2), "b" + "a" * n, ("a " * n)[:n], " " * n + "a a"]
    for limit in range(8):
        for text in texts:
            whole = encode(tok, text)
            for keep in ("head", "tail"):
                ids, over = encode_capped(tok, text, limit, keep)
                assert over == (len(whole) > limit), (text, limit, keep)
                assert ids == whole if not over else len(ids) > limit, (text, limit, keep)


def test_a_cut_keeps_the_whole_texts_tokens_where_tokens_do_not_straddle_the_cut():
    """Characters: the first / last `limit` tokens of the part are the whole text's. (BPE inside one word
    that straddles the cut may align differently: a cut row is cut there anyway.)"""
    tok = char_tokenizer("0123456789+")
    text = "".join(str(i % 10) + "+" for i in range(500))
    whole = encode(tok, text)
    for limit in (1, 5, 17, 64):
        head, over = encode_capped(tok, text, limit)
        tail, over_tail = encode_capped(tok, text, limit, keep="tail")
        assert over and over_tail and len(head) < len(whole)
        assert head[:limit] == whole[:limit] and tail[-limit:] == whole[-limit:]


def test_a_huge_text_is_tokenized_only_in_part():
    spy = Spy(char_tokenizer("0123456789+"))
    text = "1+" * 2_500_000  # 5 MB
    ids, over = encode_capped(spy, text, 64)
    assert over and len(ids) == (64 + 2) * len("<|assistant|>")
    assert spy.lengths == [len(ids)]  # one call, on a prefix bounded by the limit
    _, over = encode_capped(spy, text, 64, keep="tail")
    assert over and spy.lengths[-1] == len(ids)


def test_a_text_within_the_bound_is_tokenized_whole_once():
    spy = Spy(bpe_tokenizer())
    ids, over = encode_capped(spy, "aaaa" * 3 + "ab", 4)
    assert (ids, over) == ([4, 4, 4, 3], False) and spy.lengths == [14]


def test_dropped_characters_fall_back_to_the_whole_text():
    """A prefix of spaces has no tokens: the bound cannot decide, so the whole text is tokenized."""
    spy = Spy(spacing_tokenizer())
    text = " " * 1000 + "a bb a"
    ids, over = encode_capped(spy, text, 2)
    assert (ids, over) == ([0, 1, 0], True)
    assert spy.lengths == [(2 + 2) * 5, len(text)]


# ---- the places rows are tokenized ----------------------------------------------------------------
def test_reward_model_text_of_huge_rows_is_cut_as_before():
    """encode_pair keeps a long prompt's last tokens and a long completion's first, with its EOS."""
    from rlvr.reward_scoring import encode_pair

    tok = char_tokenizer("0123456789+")
    spy, eos = Spy(tok), tok.eos_token_id
    prompt = "12+" * 400_000 + "7"
    assert encode_pair(spy, prompt, "22", 16) == encode(tok, prompt[-13:]) + encode(tok, "22") + [eos]
    assert encode_pair(spy, "12", "3" * 1_200_000, 16) == encode(tok, "12") + encode(tok, "3" * 13) + [eos]
    assert max(spy.lengths) < 1000  # never the whole 1.2 MB


def test_sft_refuses_a_huge_prompt_and_cuts_a_huge_response():
    from rlvr.config import SFTConfig
    from rlvr.errors import UserError
    from rlvr.trainers.sft import tokenize_examples

    tok = char_tokenizer("0123456789+")
    cfg = SFTConfig()
    cfg.data.template, cfg.trainer.max_seq_len = "plain", 32
    with pytest.raises(UserError, match=r"rows\.jsonl: a prompt alone has 32 tokens or more, leaving no room "
                                        r"for its response in trainer\.max_seq_len=32: '1\+1\+1"):
        tokenize_examples(tok, [{"prompt": "1+" * 1_000_000, "response": "2"}], cfg, "rows.jsonl")
    with pytest.raises(UserError, match="32 tokens or more"):  # exactly 32: no room left either
        tokenize_examples(tok, [{"prompt": "1" * 32, "response": "2"}], cfg)
    examples, cut = tokenize_examples(tok, [{"prompt": "1" * 30, "response": "2"},
                                            {"prompt": "1+1", "response": "2" * 1_000_000}], cfg)
    assert cut == 1 and [e.ids for e in examples] == [encode(tok, "1" * 30 + "2") + [tok.eos_token_id],
                                                      encode(tok, "1+1" + "2" * 29)]


def test_preference_prompts_and_responses_are_bounded():
    from rlvr.config import DataConfig
    from rlvr.errors import UserError
    from rlvr.trainers.preference_pairs import PairTokens

    tok = char_tokenizer("0123456789+")
    tokens = PairTokens(tok, DataConfig(template="plain"), 16)
    with pytest.raises(UserError, match="a prompt has 16 tokens or more"):
        tokens.prompt("9" * 5_000_000)
    pair = tokens.pair(tokens.prompt("1+1"), tokens.response("2" * 5_000_000), tokens.response("3"))
    assert pair.responses == (encode(tok, "2" * 13), encode(tok, "3") + [tok.eos_token_id])


def test_rl_prompts_must_leave_room_for_generation(tiny_model_dir):
    from rlvr.config import DataConfig, GenerationConfig
    from rlvr.errors import UserError
    from rlvr.models import load_tokenizer
    from rlvr.rollouts import context_length, prompts_that_fit

    tok = load_tokenizer(tiny_model_dir)
    context = context_length(tiny_model_dir, GenerationConfig())
    assert context == 128  # the tiny model's max_position_embeddings
    plain = DataConfig(template="plain")
    rows = [{"prompt": "1" * 120}, {"prompt": "1" * 121}, {"prompt": "1+" * 3_000_000}]
    kept, skipped = prompts_that_fit(rows, tok, DataConfig(template="plain", on_bad_row="skip"), 128, 8, "r")
    assert kept == rows[:1] and skipped == 2  # 120 + 8 fits 128 exactly; 121 does not
    with pytest.raises(UserError, match=r"^rows\.jsonl: a prompt has more than 120 tokens, the model's context "
                                        r"of 128 less generation\.max_new_tokens=8 .*: '1111"):
        prompts_that_fit(rows, tok, plain, 128, 8, "rows.jsonl")
    with pytest.raises(UserError, match="generation.max_new_tokens: 128 leaves no room for a prompt"):
        prompts_that_fit(rows, tok, plain, 128, 128, "r")
    assert prompts_that_fit(rows, tok, plain, None, 8, "r") == (rows, 0)  # a model that states no limit
