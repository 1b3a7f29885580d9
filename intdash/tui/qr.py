"""A QR code drawn in the terminal with Unicode half blocks: two rows of modules a line, each
module one cell wide, a quiet zone of 4 modules around it. Drawn dark on light whatever the
theme (a phone's reader wants dark modules on a light ground): the text is meant to be shown in
black on white, where a space is a light pair, ``█`` a dark pair, ``▀`` dark over light and
``▄`` light over dark.

No Textual here: the command line draws the same text.
"""

from __future__ import annotations

from collections.abc import Sequence

import segno
from rich.style import Style
from rich.text import Text

QUIET = 4  # modules of light around the code, as the QR standard asks
# (top dark, bottom dark) -> the character, shown dark (foreground) on light (background)
BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}
PAIRS = {char: pair for pair, char in BLOCKS.items()}
INK = Style(color="#000000", bgcolor="#ffffff")  # the same on every theme

Matrix = list[list[bool]]


def matrix(data: str) -> Matrix:
    """The modules of ``data``'s QR code (True: dark), without a quiet zone; segno picks the
    smallest version at error correction level M or better."""
    code = segno.make_qr(data, error="m")
    return [[bool(module) for module in row] for row in code.matrix]


def draw(modules: Sequence[Sequence[bool]], quiet: int = QUIET) -> list[str]:
    """The lines of half blocks that draw ``modules`` with a quiet zone of ``quiet`` modules
    (an odd count of rows is closed by a light one)."""
    width = len(modules[0]) if modules else 0
    light = [False] * (width + 2 * quiet)
    rows = [list(light) for _ in range(quiet)]
    rows += [[False] * quiet + list(row) + [False] * quiet for row in modules]
    rows += [list(light) for _ in range(quiet)]
    if len(rows) % 2:
        rows.append(list(light))
    return [
        "".join(BLOCKS[(top, bottom)] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(rows[::2], rows[1::2], strict=True)
    ]


def read(lines: Sequence[str], quiet: int = QUIET) -> Matrix:
    """The modules that ``lines`` (as :func:`draw` made them) show, quiet zone taken off: what a
    reader sees of the drawing. ValueError on a character that is not a half block."""
    rows: Matrix = []
    for line in lines:
        try:
            pairs = [PAIRS[char] for char in line]
        except KeyError as exc:
            raise ValueError(f"not a half block: {exc.args[0]!r}") from None
        rows.append([top for top, _ in pairs])
        rows.append([bottom for _, bottom in pairs])
    width = len(rows[0]) - 2 * quiet if rows else 0
    inner = rows[quiet : quiet + width]  # the code is square
    return [row[quiet : quiet + width] for row in inner]


def lines(data: str) -> list[str]:
    """``data``'s QR code as lines of half blocks, quiet zone included."""
    return draw(matrix(data))


def text(data: str) -> Text:
    """``data``'s QR code as Rich text, black on white on any theme."""
    return Text("\n".join(lines(data)), style=INK, no_wrap=True, overflow="crop")
