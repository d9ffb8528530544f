"""String normalisation of a math answer before comparison and parsing.

Each rule is a small pure function str -> str; `normalize` applies them in order. Only changes that keep
the meaning of a final answer are made (units, degree signs, spacing, currency, thousands separators,
trailing punctuation, LaTeX spelling variants), so two answers with equal normal forms are equal.
"""
from __future__ import annotations

import re

from verifiers.math_extract import matching_brace

TEXT_COMMANDS = ("\\text", "\\textbf", "\\textrm", "\\textit", "\\mbox", "\\mathrm", "\\mathbf", "\\emph", "\\textnormal")
# Unit words stripped when they trail a number; single letters stay (they may be variables).
UNITS = (
    "cm mm km meter meters metre metres centimeter centimeters kilometer kilometers inch inches ft feet foot "
    "yard yards yd mile miles sq square cubic units unit degree degrees deg cent cents dollar dollars usd euros "
    "hour hours hr hrs minute minutes min mins second seconds sec secs day days week weeks month months year years "
    "pound pounds lb lbs kg grams gram ounce ounces oz liter liters litre litres ml gallon gallons mph kmh "
    "percent people students apples marbles points times ways"
).split()
UNIT_TAIL = re.compile(r"(?<=[\d}\s])\s*(?:" + "|".join(sorted(UNITS, key=len, reverse=True)) + r")(?:\^\{?[23]\}?)?\s*$", re.IGNORECASE)
UNIT_POWER = re.compile(r"\s*\^\s*\{?\s*[23]\s*\}?")
NUMBER_WORDS = re.compile(r"^\s*(-?[\d.,]*\d)\s+(?:[A-Za-z]{3,}\s*)+$")
THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d])")
SPACED_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?: \d{3})+(?!\d)")
# `, and` / ` or ` between two items of a list: after a digit or a closing bracket, so prose keeps its words
LIST_WORD = re.compile(r"(?<=[\d)\]}])\s*,?\s*\b(?:and|or)\s+(?=[-+\w\\({\[])")
VARIABLE = re.compile(r"[a-zA-Z](?:_\{?[a-zA-Z0-9]+\}?)?")
CHOICE = re.compile(r"^\(?([A-Ea-e])\)$|^\(([A-Ea-e])\)?$")


UNICODE = {"−": "-", "–": "-", "×": "\\times ", "·": "\\cdot ", "÷": "\\div ", "π": "\\pi ", "∞": "\\infty ",
           "≤": "\\le ", "≥": "\\ge ", "≠": "\\ne ", "√": "\\sqrt", "∪": "\\cup "}


def unify_unicode(s: str) -> str:
    """Unicode math symbols as LaTeX: `−5` -> `-5`, `2π` -> `2\\pi`, `×` -> `\\times`, `√2` -> `\\sqrt2`."""
    for char, latex in UNICODE.items():
        s = s.replace(char, latex)
    return s


def strip_delimiters(s: str) -> str:
    """`$x$`, `\\(x\\)`, `\\[x\\]`, `\\displaystyle x` -> `x`."""
    s = s.replace("$", "")
    s = s.replace("\\displaystyle", "")
    return re.sub(r"(?<!\\)\\[()\[\]]", "", s)  # not the `\\[` of a matrix row break


def strip_spacing(s: str) -> str:
    """LaTeX spacing and sizing commands go: `\\!`, `\\,`, `\\;`, `\\quad`, `~`, `\\left(` -> `(`, `\\right.` -> ``.

    `,\\!` is MATH's thousands separator, so it becomes a bare `,` (no space) first.
    """
    s = re.sub(r",\\!\s*", ",", s)
    s = re.sub(r"\\right\.|\\left\.", "", s)
    s = re.sub(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![a-zA-Z])", "", s)
    s = re.sub(r"\\(?:qquad|quad)(?![a-zA-Z])|(?<!\\)\\[!,;: ]|~", " ", s)
    return s


def unify_commands(s: str) -> str:
    """Spelling variants: `\\dfrac`/`\\tfrac`/`\\cfrac` -> `\\frac`, `\\frac12` -> `\\frac{1}{2}`, `\\sqrt2` -> `\\sqrt{2}`,
    `\\frac\\pi 2` -> `\\frac{\\pi}{2}`, and the `\\le`/`\\ge` spellings."""
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    s = re.sub(r"\\(leq|leqslant)(?![a-zA-Z])", r"\\le", s)
    s = re.sub(r"\\(geq|geqslant)(?![a-zA-Z])", r"\\ge", s)
    # \frac12, \frac1{2}, \frac{1}2 : single-character arguments without braces
    arg = r"(\\[a-zA-Z]+|[0-9a-zA-Z])"  # a bare argument: one character or one command such as \pi
    s = re.sub(r"\\frac\s*" + arg + r"\s*" + arg, r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*" + arg + r"\s*\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac(\{[^{}]*\})\s*" + arg, r"\\frac\1{\2}", s)
    s = re.sub(r"\\sqrt\s*" + arg, r"\\sqrt{\1}", s)
    return s


def strip_approximation(s: str) -> str:
    """`\\frac{2}{3} \\approx 0.67` -> `\\frac{2}{3}`: the exact value is the answer, the rounding a remark;
    but `x \\approx 11` -> `x=11`: after a lone variable the approximation is the value assigned."""
    parts = re.split(r"\\approx(?![a-zA-Z])|≈", s)
    if len(parts) == 1:
        return s
    if VARIABLE.fullmatch(parts[0].strip()):
        return parts[0].strip() + "=" + parts[1].strip()
    return parts[0]


def _text_groups(s: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every `\\text{..}`-like group, outermost first."""
    groups = []
    for m in re.finditer(r"\\(?:" + "|".join(c[1:] for c in TEXT_COMMANDS) + r")\s*(?=\{)", s):
        close = matching_brace(s, m.end())
        if close is not None:
            groups.append((m.start(), close + 1, s[m.end() + 1 : close]))
    return groups


def _at_an_edge(s: str, start: int, end: int) -> bool:
    """Whether s[start:end] begins or ends its element: at the start or end of `s` (closing punctuation
    after it allowed), or next to a comma or bracket; a word inside an expression (`2\\text{cis}(x)`) is
    not."""
    before, after = s[:start].rstrip(), s[end:].strip(" .;:")
    return not before or not after or before[-1] in ",([{" or after[0] in ",)]}" or after.startswith("\\}")


def _unit_end(s: str, end: int) -> int:
    """Where a unit ending at `end` really ends: `\\mbox{ cm}^2`, the square belongs to the unit."""
    power = UNIT_POWER.match(s, end)
    return power.end() if power else end


def strip_text(s: str) -> str:
    """`\\text{..}` and friends: ` or `/` and ` become a comma; a word next to a number at the start or end
    of an element (a unit or a label, e.g. `5 \\text{cm}`, `(3\\text{ cm}, 4\\text{ cm})`) is dropped;
    otherwise the text stays as plain content (`\\text{Evelyn}` -> `Evelyn`, `2\\text{cis}(x)`)."""
    for start, end, content in reversed(_text_groups(s)):
        words = content.strip()
        rest = s[:start] + s[end:]
        unit_end = _unit_end(s, end)
        if words.lower() in ("or", "and", ","):
            replacement = ","
        elif re.search(r"[a-zA-Z]{2,}", words) and re.search(r"\d", rest) and _at_an_edge(s, start, unit_end):
            replacement = " "
            end = unit_end
        else:
            replacement = content
        s = s[:start] + replacement + s[end:]
    return s


def strip_degrees(s: str) -> str:
    """`90^\\circ`, `90^{\\circ}`, `90\\degree`, `90°` -> `90`."""
    return re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|°", "", s)


def strip_percent_and_currency(s: str) -> str:
    """`10\\%` -> `10`, `\\$5` -> `5`, `€5`/`£5` -> `5` (the question fixes the unit; the number is the answer)."""
    return re.sub(r"\\%|%|\\\$|€|£|\\euro|\\pounds", "", s)


def strip_units(s: str) -> str:
    """A unit word (or its square/cube) trailing a number goes: `10 inches` -> `10`, `4 cm^2` -> `4`;
    so do any words after a plain number: `18 eggs` -> `18` (a count of things is the number)."""
    previous = None
    while previous != s:
        previous, s = s, UNIT_TAIL.sub("", s).rstrip()
    m = NUMBER_WORDS.match(s)
    return m.group(1) if m else s


def strip_thousands(s: str) -> str:
    """`58,500` -> `58500` when the answer has no brackets (inside a tuple `(1,000)` a comma separates);
    `1 000` (and `1\\,000`, whose thin space is a space by now) -> `1000` anywhere: only groups of exactly
    three digits join, so `1 2` or `12 34` stay apart (read as a product, as before)."""
    s = SPACED_THOUSANDS.sub(lambda m: m.group(0).replace(" ", ""), s)
    if re.search(r"[(\[{]", s):
        return s
    return THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), s)


def join_list_words(s: str) -> str:
    """`19, 46, and 82` -> `19, 46,82`, `21, 16 or 11` -> `21, 16,11`: a list joined by words is a list.

    "or" may hedge, but a list only equals a reference list of the same answers, never a single one, so
    `3 or 5` earns nothing against `3` (as `\\text{ or }` already reads, see strip_text)."""
    return LIST_WORD.sub(",", s)


def strip_punctuation(s: str) -> str:
    """Trailing `.`, `,`, `;`, `:`, a lone `\\` and surrounding whitespace go; `(C)` / `C)` -> `C`
    (multiple choice)."""
    s = s.strip()
    while s and (s[-1] in ".,;:" and not s.endswith("\\,") or s.endswith("\\") and not s.endswith("\\\\")):
        s = s[:-1].rstrip()
    m = CHOICE.match(s)
    return (m.group(1) or m.group(2)).upper() if m else s


def collapse_space(s: str) -> str:
    """Whitespace goes except between two letters or digits (`\\pi r` must not become `\\pir`, nor
    `\\log_2 8` become `\\log_28`)."""
    s = re.sub(r"\s+", " ", s).strip()
    return re.sub(r"(?<![a-zA-Z0-9]) | (?![a-zA-Z0-9])", "", s)


RULES = (
    unify_unicode,
    strip_percent_and_currency,  # before the `$` delimiters go, or `\$5` would lose only its `$`
    strip_delimiters,
    strip_approximation,
    strip_spacing,
    unify_commands,
    strip_text,
    strip_degrees,
    strip_units,
    join_list_words,
    strip_thousands,
    strip_punctuation,
    collapse_space,
)


def normalize(answer: str) -> str:
    """The normal form of an answer string: every rule of RULES in order."""
    for rule in RULES:
        answer = rule(answer)
    return answer
