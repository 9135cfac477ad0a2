"""Markdown with math, rendered on the server: markdown-it-py for the text, latex2mathml for the math.

Why MathML made on the server rather than a JavaScript math library (KaTeX, MathJax) in the page:
there is no library to ship, pin or serve; pages work offline and render before any script runs;
browsers draw MathML natively; and the output is plain HTML a test can inspect on the server, so a
formula that does not convert is found when the content loads, not by a learner.

Math is written ``$...$`` (inline) and ``$$...$$`` (display, alone in its paragraph). The two rules
below are added to markdown-it's inline parser, so math inside code spans stays code and ``\\$``
is a literal dollar sign.
"""

from __future__ import annotations

import re
from functools import lru_cache

import latex2mathml.converter
from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline


class MathError(ValueError):
    """A formula latex2mathml could not convert; ``latex`` is the formula."""

    def __init__(self, latex: str, reason: str) -> None:
        self.latex = latex
        super().__init__(f"cannot render the math ${latex}$: {reason}")


@lru_cache(maxsize=4096)
def to_mathml(latex: str, display: bool = False) -> str:
    """One LaTeX formula as a ``<math>`` element (``display="block"`` for display math)."""
    _check_braces(latex)
    try:
        mathml = latex2mathml.converter.convert(latex, display="block" if display else "inline")
    except Exception as error:  # latex2mathml raises its own exceptions and plain ones alike
        raise MathError(latex, str(error) or type(error).__name__) from None
    # latex2mathml keeps a command it does not know as text ("\\bta"): a typo, not math.
    unknown = re.search(r"<m[io]>(\\[A-Za-z]+)</m[io]>", mathml)
    if unknown:
        raise MathError(latex, f"unknown command {unknown.group(1)}")
    return mathml


def _check_braces(latex: str) -> None:
    """latex2mathml accepts unbalanced braces silently; a writer wants to hear about them."""
    depth = 0
    for char in re.sub(r"\\[{}]", "", latex):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            raise MathError(latex, "a '}' closes nothing")
    if depth:
        raise MathError(latex, f"{depth} unclosed '{{'")


def _math_rule(state: StateInline, silent: bool) -> bool:
    """``$$...$$`` or ``$...$`` at the current position becomes a math token."""
    source, start = state.src, state.pos
    if source[start] != "$":
        return False
    display = source.startswith("$$", start)
    marker = "$$" if display else "$"
    content_start = start + len(marker)
    end = content_start
    while True:
        end = source.find(marker, end)
        if end < 0:
            return False
        if source[end - 1] != "\\":
            break
        end += 1
    latex = source[content_start:end]
    if not latex.strip() or (not display and latex != latex.strip()):
        return False  # "$ 5 and $ 6" is prose about money, not math
    if not silent:
        token = state.push("math_display" if display else "math_inline", "math", 0)
        token.content = latex.strip()
        token.markup = marker
    state.pos = end + len(marker)
    return True


def _render_math(self, tokens, index, options, env) -> str:
    token = tokens[index]
    return to_mathml(token.content, display=token.type == "math_display")


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    parser.inline.ruler.before("escape", "math", _math_rule)
    parser.add_render_rule("math_inline", _render_math)
    parser.add_render_rule("math_display", _render_math)
    return parser


def markdown(text: str) -> str:
    """Markdown with ``$math$`` to HTML with MathML; raises :class:`MathError` on bad math."""
    return _parser().render(text)


def markdown_inline(text: str) -> str:
    """One line of Markdown (a quiz prompt or choice) without the surrounding paragraph."""
    return _parser().renderInline(text)


def parse(text: str):
    """markdown-it's block tokens of ``text`` (headings carry ``.map``, their line range)."""
    return _parser().parse(text)
