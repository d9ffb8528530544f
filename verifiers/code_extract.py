"""Finding the program in a model's completion."""
from __future__ import annotations

import re

# An opening fence (``` or ~~~, optional language tag) up to its closing fence, or to the end of the
# text when the model stopped mid-block.
_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n(?P<body>.*?)(?:^[ \t]*(?P=fence)[ \t]*$|\Z)",
                    re.MULTILINE | re.DOTALL)

LANGUAGE_TAGS = {"python": "python", "py": "python", "python3": "python", "c": "c", "cpp": "cpp", "c++": "cpp",
                 "cc": "cpp", "cxx": "cpp"}
MODES = ("last_block", "first_block", "raw")


def code_blocks(text: str) -> list[tuple[str, str]]:
    """All fenced blocks as (language tag lower-cased, body), in order."""
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
