"""Finding the program in a model's completion."""
from __future__ import annotations

import ast
import re
import textwrap

# An opening fence (``` or ~~~, optional language tag) up to its closing fence, or to the end of the
# text when the model stopped mid-block.
_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n(?P<body>.*?)(?:^[ \t]*(?P=fence)[ \t]*$|\Z)",
                    re.MULTILINE | re.DOTALL)

LANGUAGE_TAGS = {"python": "python", "py": "python", "python3": "python", "c": "c", "cpp": "cpp", "c++": "cpp",
                 "cc": "cpp", "cxx": "cpp"}
MODES = ("last_block", "first_block", "raw")


_FENCE_LINE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[ \t]*$", re.MULTILINE)


def _starts_inside_block(text: str) -> bool:
    """Models often answer with code straight away and then close a fence they never opened
    ("def f(): ...\n```\nThis function ..."). Then the first fence line is bare, fences are odd in
    number, and what precedes the first one is code (it parses, dedented: it may be the body a
    HumanEval prompt left open), not prose."""
    fences = list(_FENCE_LINE.finditer(text))
    if len(fences) % 2 == 0 or fences[0].group(2):
        return False
    before = text[: fences[0].start()]
    if not before.strip():
        return False
    try:
        ast.parse(textwrap.dedent(before))
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # model text: deep nesting is not code
        return False
    return True


def code_blocks(text: str) -> list[tuple[str, str]]:
    """All fenced blocks as (language tag lower-cased, body), in order."""
    if _starts_inside_block(text):
        text = "```\n" + text
    return [(m.group("lang").lower(), m.group("body")) for m in _FENCE.finditer(text)]


def extract_program(text: str, mode: str = "last_block", raw_fallback: bool = True) -> tuple[str, str]:
    """(program, language tag) from a completion.

    mode: last_block (the last fenced block: models revise, the last one is the answer), first_block,
    or raw (the whole completion). With no fenced block, `raw_fallback` takes the whole completion
    (e.g. a HumanEval-style body continuation); otherwise the program is empty.
    """
    if mode not in MODES:
        raise ValueError(f"extract mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode != "raw":
        blocks = code_blocks(text)
        if blocks:
            lang, body = blocks[-1] if mode == "last_block" else blocks[0]
            return body, lang
        if not raw_fallback:
            return "", ""
    return text, ""
