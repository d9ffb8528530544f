"""Finding the final answer(s) in a completion.

Sources, in order of precedence (the first source that yields anything wins):
  1. every `\\boxed{...}` / `\\fbox{...}` (nested braces; also `\\boxed 5`),
  2. GSM8K's `#### N` (the last one),
  3. "the answer is X" / "final answer: X" (the last one),
  4. optionally, the last number in the text.
All boxes are returned so the caller can refuse hedging (several different boxed answers).
"""
from __future__ import annotations

import re

BOX_COMMANDS = ("\\boxed", "\\fbox")
HASH_ANSWER = re.compile(r"####\s*([^\n]*)")
ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:)\s*:?\s*(.+?)(?:\n|$)", re.IGNORECASE
)
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
BOX_TOKEN = re.compile(r" +([^\s$]+)")  # `\boxed 5`: one token after the spaces
SENTENCE_END = re.compile(r"\.(?:\s|$)")


def matching_brace(text: str, open_index: int) -> int | None:
    """Index of the `}` closing the `{` at `open_index` (escaped `\\{`/`\\}` do not count), or None."""
    depth = 0
    i = open_index
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def boxed_contents(text: str) -> list[str]:
    """Contents of every `\\boxed{..}` / `\\fbox{..}` in order; `\\boxed 5` takes the next token."""
    found: list[tuple[int, str]] = []
    for command in BOX_COMMANDS:
        start = text.find(command)
        while start != -1:
            i = start + len(command)
            content, end = _box_argument(text, i)
            if content is not None:
                found.append((start, content))
            start = text.find(command, max(end, i))
    return [c for _, c in sorted(found)]


def _box_argument(text: str, i: int) -> tuple[str | None, int]:
    """The argument of a box command whose name ends at `i`: a brace group or one space-led token."""
    if i < len(text) and text[i] == "{":
        close = matching_brace(text, i)
        if close is None:
            return None, i
        return text[i + 1 : close], close + 1
    m = BOX_TOKEN.match(text, i)
    if m:
        return m.group(1), m.end()
    return None, i


def hash_answer(text: str) -> str | None:
    """GSM8K style: the text after the last `####` on its line."""
    matches = HASH_ANSWER.findall(text)
    return matches[-1].strip() if matches else None


def answer_is(text: str) -> str | None:
    """The last "the answer is X" phrase, X up to the end of its line or sentence."""
    matches = ANSWER_IS.findall(text)
    if not matches:
        return None
    answer = matches[-1].strip().strip("*").strip()  # `**Final Answer:** 18` (markdown bold)
    end = SENTENCE_END.search(answer)
    return answer[: end.start()] if end else answer


def last_number(text: str) -> str | None:
    """The last number (with sign, decimal part and thousands separators) in the text."""
    matches = NUMBER.findall(text)
    return matches[-1] if matches else None


def extract_answers(text: str, last_number_fallback: bool = False) -> tuple[str, list[str]]:
    """(source, candidates): the answers found by the first source that finds any."""
    boxes = boxed_contents(text)
    if boxes:
        return "boxed", boxes
    for source, finder in (("####", hash_answer), ("answer is", answer_is)):
        found = finder(text)
        if found is not None:
            return source, [found]
    if last_number_fallback:
        found = last_number(text)
        if found is not None:
            return "last number", [found]
    return "none", []


def extract_reference(reference: object) -> str:
    """The answer inside a raw reference: a number, a LaTeX answer, or a full solution with #### / \\boxed."""
    if isinstance(reference, bool) or reference is None:
        raise ValueError(f"reference must be a string or a number, got {reference!r}")
    text = str(reference)  # a number is its own answer: no `####` or box in it
    if "####" in text:
        return hash_answer(text) or ""
    boxes = boxed_contents(text)
    return boxes[-1] if boxes else text
