"""Tokenizing a data row in memory bounded by the token limit, not by the row's size.

A fast tokenizer keeps a few hundred bytes per token (ids, offsets, strings), so a 50 MB prompt tokenized
whole took 20 GB before the length check could refuse it. Only a prefix (or suffix) is needed to decide:

    each token spans at most `longest_token_chars(tokenizer)` = L characters of the text, so a text of more
    than (limit + 2) * L characters has at least limit + 2 tokens, whatever they are; a shorter text is
    tokenized whole, exactly.

L is the longest string in the vocabulary: for byte-level BPE each of its characters is one byte, so it
bounds the characters a token spans; SentencePiece and character vocabularies hold their text as is.
Tokenizers whose normalizer drops characters (BERT's whitespace splitting) break that bound; for them a
prefix that tokenizes to too few tokens gives way to the whole text, so the answer stays exact.
"""
from __future__ import annotations

import weakref

from rlvr.data.templates import encode

_LONGEST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def longest_token_chars(tokenizer) -> int:
    """The most characters one token of `tokenizer` can span (computed once per tokenizer)."""
    if tokenizer not in _LONGEST:
        _LONGEST[tokenizer] = max(1, max(map(len, tokenizer.get_vocab()), default=1))
    return _LONGEST[tokenizer]


def encode_capped(tokenizer, text: str, limit: int, keep: str = "head") -> tuple[list[int], bool]:
    """(ids, over): whether `text` has more than `limit` tokens, and its token ids.

    Not over: ids is the text's whole tokenization. Over: ids tokenize only a part of the text, the start
    (keep='head') or the end (keep='tail'), and hold more than `limit` tokens, so any cut to `limit` or
    fewer can be taken from them (the last token or two, at the part's edge, may differ from the whole
    text's)."""
    span = (limit + 2) * longest_token_chars(tokenizer)
    if len(text) > span:
        ids = encode(tokenizer, text[:span] if keep == "head" else text[-span:])
        if len(ids) >= limit + 2:
            return ids, True
    ids = encode(tokenizer, text)
    return ids, len(ids) > limit
