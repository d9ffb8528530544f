"""The outer structure of answers (verifiers/math_structure.py): splitting, wrappers, and the sympy
objects for lists, tuples, intervals, sets, unions and matrices, on exact hand-written cases."""
import pytest
import sympy

from verifiers.math_parse import parse as parse_answer
from verifiers.math_structure import AnswerList, parse_structure, split_top_level, wrapper


def parse(s: str) -> sympy.Basic:
    return parse_answer(s.strip())


@pytest.mark.parametrize(
    "text, parts",
    [
        ("1,2", ["1", "2"]),
        ("(1,2),3", ["(1,2)", "3"]),
        (r"\{1,2\},3", [r"\{1,2\}", "3"]),       # escaped braces open and close a level
        (r"\{1\},\{2\}", [r"\{1\}", r"\{2\}"]),
        (r"\{1),2", [r"\{1)", "2"]),             # one level for `\{`, not two (`\` then `{`)
        (r"\{(1),2", [r"\{(1),2"]),              # the character after `\{` is read, not skipped
        ("a,\\", ["a", "\\"]),                   # a trailing backslash is an ordinary character
        ("1,,2", ["1", "", "2"]),
    ],
)
def test_split_top_level_at_commas(text, parts):
    assert split_top_level(text, ",") == parts


def test_split_top_level_with_a_long_separator():
    assert split_top_level(r"(0,1)\cup(2,3)\cup\{5\}", r"\cup") == ["(0,1)", "(2,3)", r"\{5\}"]
    assert split_top_level(r"1&2\\3&4", "\\\\") == ["1&2", "3&4"]


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\{1,2\}", (r"\{", "1,2", r"\}")),
        ("(1,2]", ("(", "1,2", "]")),
        ("()", ("(", "", ")")),
        ("((1))", ("(", "(1)", ")")),
        ("(1)+(2)", None),        # the first pair closes before the end
        ("(1)(2)", None),
        (r"\{1,2", None),         # `\{` without `\}` wraps nothing
        (r"1,2\}", None),
        ("(1,2", None),
        ("1", None),
    ],
)
def test_wrapper(text, expected):
    assert wrapper(text) == expected


def test_matrices():
    one_two = sympy.ImmutableMatrix([[1, 2], [3, 4]])
    assert parse_structure(r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", parse) == one_two
    assert parse_structure("\\begin{bmatrix}1&2\\\\\n3&4\\end{bmatrix}", parse) == one_two  # a newline inside
    assert parse_structure(r"\begin{pmatrix}1\\2\end{pmatrix}", parse) == sympy.ImmutableMatrix([[1], [2]])
    assert parse_structure(r"\begin{pmatrix}1&2\\3\end{pmatrix}", parse) is None  # ragged rows


def test_unions_read_pairs_as_open_intervals():
    assert parse_structure(r"(1,2)\cup(3,4)", parse) == sympy.Union(sympy.Interval.open(1, 2),
                                                                  sympy.Interval.open(3, 4))
    assert parse_structure(r"(-\infty,0)\cup[1,2]\cup\{5\}", parse) == sympy.Union(
        sympy.Interval.open(-sympy.oo, 0), sympy.Interval(1, 2), sympy.FiniteSet(5))


@pytest.mark.parametrize(
    "text, value",
    [
        ("[1,2)", sympy.Interval.Ropen(1, 2)),
        ("(1,2]", sympy.Interval.Lopen(1, 2)),
        ("[1,2]", sympy.Interval(1, 2)),
        ("(1,2)", sympy.Tuple(1, 2)),            # outside a union a pair is a tuple (math_equiv decides)
        ("(1,2,3)", sympy.Tuple(1, 2, 3)),
        ("[1,2,3]", sympy.Tuple(1, 2, 3)),
        (r"\{3,1\}", sympy.FiniteSet(1, 3)),
        (r"\{1\}", sympy.FiniteSet(1)),
    ],
)
def test_structures(text, value):
    assert parse_structure(text, parse) == value


def test_bare_lists_keep_their_order_and_repeats():
    assert parse_structure("3,1,2", parse).args == (3, 1, 2)
    assert parse_structure("1,1,3", parse).args == (1, 1, 3)
    assert isinstance(parse_structure("1,2", parse), AnswerList)


@pytest.mark.parametrize("text", ["5", "(5)", "x+1", "(1,,3)", "1,,2", r"\{1,\}", ",", "()"])
def test_not_a_structure(text):
    """A single expression, or a list with an empty element, is left to the expression parser."""
    assert parse_structure(text, parse) is None


def test_only_a_backslash_makes_a_brace_escaped():
    """A bracket right before a brace is counted as well (`({`), not skipped as if it escaped it."""
    assert split_top_level("({1,2}),3", ",") == ["({1,2})", "3"]
    assert split_top_level("[{1},{2}],3", ",") == ["[{1},{2}]", "3"]
