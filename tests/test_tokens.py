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

    def get_vocab(self):
        return self.tokenizer.get_vocab()


def test_longest_token_is_the_longest_vocabulary_string():
    assert longest_token_chars(bpe_tokenizer()) == 5  # '<unk>'
    assert longest_token_chars(char_tokenizer("0123456789")) == len("<|assistant|>")


@pytest.mark.parametrize("make", [bpe_tokenizer, lambda: char_tokenizer("ab"), spacing_tokenizer])
def test_the_decision_is_exact_at_every_length_around_the_cut(make):
    """Every text length from well under to well over (limit + 2) * L, with a head or a tail part: 'over'
    is the whole text's answer, and a text within the limit comes back whole."""
    tok = make()
    texts = []
    for n in range(0, 90):
        texts += ["a" * n, "ab" * (n // 2) + "a" * (n % 2), "b" + "a" * n, ("a " * n)[:n], " " * n + "a a"]
    for limit in range(0, 8):
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
