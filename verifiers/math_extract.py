"""Finding the final answer(s) in a completion.

Marked sources, in order of precedence (the first source that yields anything wins):
  1. every `\\boxed{...}` / `\\fbox{...}` (nested braces; also `\\boxed 5`),
  2. GSM8K's `#### N` (the last one),
  3. "the answer is X" / "final answer: X" (the last one; on its line the last such phrase, so Minerva's
     `Final Answer: The final answer is $X$. I hope it is correct.` gives `$X$`).
Then, with `last_number_fallback`, the last number in the text (the lenient rule of Qwen2.5-Math's grader and
lm-evaluation-harness's GSM8K "flexible-extract"; the arithmetic configs and the GSM8K benchmark use it);
else, unless the verifier sets `require_marker`, the bare answer (`bare_answers`):
  4. the math segments ($..$, $$..$$, \\(..\\), \\[..\\]) ending on the final non-empty line, all of them
     but those that only name something (`the value of $x$ is $5$` -> `5`; `$\\triangle ABC$`, `$f(x)$`);
  5. else the values stated in the final line's prose: the line split at its prose words (two or more letters,
     outside LaTeX commands and braces, not a unit raised to a power such as `cm^2`); each piece holding a
     digit, a LaTeX command or `=` is one value (`So the total is 18 apples.` -> `18`);
  6. else the last math segment of the whole text (`.. $x = 5$.\nThis completes the proof.`);
  7. else a completion that is one line of at most three words is its own (text) answer (`Evelyn`, `(C)`).

Why: the field's checkers accept a bare final answer. Math-Verify (huggingface/Math-Verify, parser.py) tries
its anchored patterns first ("final answer is $X$. I hope", then `\\boxed` and "final answer is", then
"answer:"), then any LaTeX environment or number anywhere in the text, the rightmost first; Qwen2.5-Math's
grader takes the last number of a completion with no box or "the answer is". Both reward the last thing
written, so a completion listing two candidates is credited with the second. This module keeps the field's
order of sources but narrows the bare case to the final line and returns every value stated there: the
verifier credits several values only when they are equivalent or together form the reference's list, so
`3 or 4`, `$x=3$ or $x=4$` and `Either 17 or 18` earn 0 (hedging), as several different boxes do. The cost
is that a final line restating its working (`3 + 15 = 18 apples, from 3 cases`) earns 0 unless the values
agree; a model that ends on one stated answer is not affected. A final line with no value (`This completes
the proof.`) falls back to the last math segment, as Math-Verify's rightmost LaTeX does. A long prose line
is not refused for its length: like the field's checkers, the value it states is its answer.
Inline `$` follows pandoc's rule (an opening `$` has a non-space after it, a closing one a non-space before
it and no digit after it) so currency (`pays $18 and $5 back`) is not math. A `!` ending a prose value is
punctuation, not a factorial. Every scan is linear in the completion's length.
"""
from __future__ import annotations

import re

BOX_COMMANDS = ("\\boxed", "\\fbox")
HASH_ANSWER = re.compile(r"####\s*([^\n]*)")
# `[^\S\n]*:?\s*`, not `\s*:?\s*`: two adjacent `\s*` backtrack quadratically over a run of blank lines
ANSWER_ANCHOR = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:)[^\S\n]*:?\s*", re.IGNORECASE)
ANSWER_IS = re.compile(ANSWER_ANCHOR.pattern + r"(.+?)(?:\n|$)", re.IGNORECASE)
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
BOX_TOKEN = re.compile(r" +([^\s$]+)")  # `\boxed 5`: one token after the spaces
SENTENCE_END = re.compile(r"\.(?:\s|$)")
# `\\` (a row break, so `\\[2pt]` opens nothing) and `\$` are read as tokens only to be skipped.
MATH_OPENER = re.compile(r"\\\\|\\\$|\$\$|\$(?=\S)|\\\(|\\\[")
MATH_CLOSER = {"$$": re.compile(r"\$\$"), "\\(": re.compile(r"\\\)"), "\\[": re.compile(r"\\\]"),
               "$": re.compile(r"(?<=[^\s\\])\$(?!\d)")}
# A line's LaTeX commands, braces and letter runs; 2+ letters at brace depth 0 make a prose word.
LINE_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[{}]|[A-Za-z]+")
VALUE_MARK = re.compile(r"[0-9\\=]")
VALUE_EDGES = re.compile(r"^[\s=:;,*]+|[\s.,;:!?*]+$")
# A segment that names what the line is about (`the value of $x$ is $5$`, `$\triangle ABC$`, `$f(x)$`).
NAME = re.compile(
    r"[A-Za-z](?:_\{?\w+\}?)?|(?:\\(?:angle|triangle)\s*)?[A-Z]{1,4}|[A-Za-z]\(\s*[A-Za-z]\s*\)"
)


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
    line = matches[-1].rstrip()
    # `Final Answer: The final answer is $X$.`: the last phrase on the line with something after it
    starts = [m.end() for m in ANSWER_ANCHOR.finditer(line) if m.end() < len(line)]
    answer = line[starts[-1] :] if starts else line
    answer = answer.strip("*").strip()  # `**Final Answer:** 18` (markdown bold)
    end = SENTENCE_END.search(answer)
    return answer[: end.start()] if end else answer


def last_number(text: str) -> str | None:
    """The last number (with sign, decimal part and thousands separators) in the text."""
    matches = NUMBER.findall(text)
    return matches[-1] if matches else None


def math_segments(text: str) -> list[tuple[int, int, str]]:
    """(start, end, stripped content) of every math segment: `$$..$$`, `\\[..\\]`, `\\(..\\)` and inline
    `$..$` on one line (pandoc's rule: no space inside either `$`, no digit after the closing one)."""
    segments: list[tuple[int, int, str]] = []
    closer_absent_before: dict[str, int] = {}  # opener -> no closer of its kind before this index
    i = 0
    while m := MATH_OPENER.search(text, i):
        opener, i = m.group(), m.end()
        if opener not in MATH_CLOSER or i < closer_absent_before.get(opener, 0):
            continue
        limit = len(text)
        if opener == "$":
            newline = text.find("\n", i)
            limit = newline if newline != -1 else limit
        close = MATH_CLOSER[opener].search(text, i, limit)
        if close is None:
            # every later opener of this kind up to `limit` would search the same span in vain
            closer_absent_before[opener] = limit
            continue
        segments.append((m.start(), close.end(), text[i : close.start()].strip()))
        i = close.end()
    return segments


def stated_values(line: str) -> list[str]:
    """The values a line of prose states: the pieces between its prose words that hold a digit, a LaTeX
    command or `=`, trimmed of punctuation (`The roots are 19, 46, and 82.` -> `19, 46`, `82`)."""
    pieces, depth, begin = [], 0, 0
    for m in LINE_TOKEN.finditer(line):
        token = m.group()
        if token == "{":
            depth += 1
        elif token == "}":
            depth = max(depth - 1, 0)
        elif depth == 0 and len(token) > 1 and token[0] != "\\" and line[m.end() : m.end() + 1] != "^":
            pieces.append(line[begin : m.start()])
            begin = m.end()
    pieces.append(line[begin:])
    return [VALUE_EDGES.sub("", p) for p in pieces if VALUE_MARK.search(p)]


def bare_answers(text: str) -> tuple[str, list[str]]:
    """(source, candidates) of a completion with no marker, by the policy in this module's docstring."""
    text = text.rstrip()
    line_start = text.rfind("\n") + 1
    segments = math_segments(text)
    on_final_line = [content for _, end, content in segments if end > line_start]
    if on_final_line:
        return "final line math", [c for c in on_final_line if not NAME.fullmatch(c)] or on_final_line
    values = stated_values(text[line_start:])
    if values:
        return "final line", values
    if segments:
        return "last math segment", [segments[-1][2]]
    if line_start == 0 and 0 < len(text.split()) <= 3:
        return "bare text", [VALUE_EDGES.sub("", text)]
    return "none", []


def extract_answers(
    text: str, last_number_fallback: bool = False, require_marker: bool = False
) -> tuple[str, list[str]]:
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
        return ("last number", [found]) if found is not None else ("none", [])
    return ("none", []) if require_marker else bare_answers(text)


def extract_reference(reference: object) -> list[str]:
    """The answers inside a raw reference: a number, a LaTeX answer, or a full solution with #### (the last)
    or \\boxed (every box, in order: `\\boxed{1} papers and \\boxed{2} bins` is the list 1, 2), or a
    sentence stating it ("the answer is 10000", the last such)."""
    if isinstance(reference, bool) or reference is None:
        raise ValueError(f"reference must be a string or a number, got {reference!r}")
    text = str(reference)  # a number is its own answer: no `####` or box in it
    if "####" in text:
        return [hash_answer(text) or ""]
    boxes = boxed_contents(text)
    if boxes:
        return boxes
    stated = answer_is(text)  # `answer is 10000`: references written as a sentence
    return [stated] if stated else [text]
