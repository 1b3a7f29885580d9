"""The dashboard's own widgets: a screen's title bar, and a table that draws only the rows on
screen, for tables of any length.

Textual's DataTable measures every cell of every row it is given: 10,000 integrations cost it
seconds of the UI loop. Here the columns have fixed widths, the rows are keys, and a row's cells
are asked for (and cached) only when the row is drawn, so a frame costs the same at 10 rows or
100,000.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

Cell = str | Text
Cells = Callable[[str], Sequence[Cell]]


class TitleBar(Static):
    """A screen's top line: intdash, then where the operator is and what it shows.

    One line of text where Textual's Header is four widgets (icon, title, clock space) that say
    only the app's name: this line says more, and costs less to draw at start."""

    DEFAULT_CSS = """
    TitleBar { height: auto; padding: 0 1; background: $panel; }
    """

    def __init__(self, text: str = "", *, id: str | None = None) -> None:
        super().__init__(self._line(text), id=id)

    @staticmethod
    def _line(text: str) -> str:
        return f"[b]intdash[/b] │ {text}" if text else "[b]intdash[/b]"

    def show(self, text: str) -> None:
        """Say ``text`` after the app's name (markup)."""
        self.update(self._line(text))


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # a flexible column's least
    flex: bool = False  # takes what the others leave of the table's width


class RowTable(ScrollView, can_focus=True):
    """Rows by key, one line each, a header line that stays put, a row cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
        Binding("enter", "select", "Select", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "rowtable--header",
        "rowtable--cursor",
        "rowtable--stripe",
    }
    DEFAULT_CSS = """
    RowTable { background: $surface; }
    RowTable > .rowtable--header { text-style: bold; background: $panel; color: $foreground; }
    RowTable > .rowtable--stripe { background: $surface-lighten-1; }
    RowTable > .rowtable--cursor { background: $block-cursor-blurred-background; }
    RowTable:focus > .rowtable--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold;
    }
    """

    cursor_row: reactive[int] = reactive(0, always_update=True, init=False)

    class Highlighted(Message):
        """The cursor moved to another row."""

        def __init__(self, table: RowTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

    class Selected(Message):
        """Enter (or a click on the cursor's row) on a row."""

        def __init__(self, table: RowTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

    def __init__(self, cells: Cells, *, gap: int = 2, id: str | None = None) -> None:
        super().__init__(id=id)
        self._cells = cells
        self.columns: list[Column] = []
        self.widths: list[int] = []  # the columns' widths as drawn (a flexible one's varies)
        self.gap = gap
        self.keys: list[str] = []
        self._index: dict[str, int] = {}
        self._cache: dict[str, list[Segment]] = {}  # a row's segments, by key
        self._header: tuple[list[Segment], Style] | None = None
        self._styles: tuple[Style, Style, Style] = (Style(), Style(), Style())

    # -- content -----------------------------------------------------------------------------

    def set_columns(self, columns: Sequence[Column], gap: int | None = None) -> None:
        self.columns = list(columns)
        if gap is not None:
            self.gap = gap
        self.widths = []
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Work out the widths drawn: a flexible column takes the room the others leave (a
        vertical scrollbar's width kept free), at least its own width."""
        fixed = 1 + sum(c.width for c in self.columns if not c.flex)
        fixed += self.gap * len(self.columns)
        room = self.size.width - self.styles.scrollbar_size_vertical - fixed
        flexible = [c for c in self.columns if c.flex]
        share = room // len(flexible) if flexible else 0
        widths = [max(c.width, share) if c.flex else c.width for c in self.columns]
        if widths != self.widths:
            self.widths = widths
            self._cache.clear()
            self._header = None
            self._resize()

    def on_resize(self) -> None:
        if any(c.flex for c in self.columns):
            self._fit_columns()

    def set_rows(self, keys: Sequence[str], changed: Sequence[str] | None = None) -> None:
        """Show these rows in this order; the cursor stays on its row if it is still shown.
        ``changed``: the rows whose cells must be asked for again (default: all)."""
        selected = self.cursor_key
        self.keys = list(keys)
        self._index = {key: n for n, key in enumerate(self.keys)}
        if changed is None:
            self._cache.clear()
        else:
            for key in changed:
                self._cache.pop(key, None)
        self._resize()
        if selected is not None and selected in self._index:
            row = self._index[selected]
        else:
            row = min(self.cursor_row, max(len(self.keys) - 1, 0))
        self.move_cursor(row=row)
        self.refresh()

    def refresh_rows(self, keys: Sequence[str]) -> None:
        """Ask again for these rows' cells (when drawn: a row off screen costs nothing)."""
        for key in keys:
            self._cache.pop(key, None)
        self.refresh()

    def _resize(self) -> None:
        self.virtual_size = Size(self.line_width, len(self.keys) + 1)
        self.refresh()

    # -- the API the screens and tests use ---------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self.keys)

    @property
    def cursor_key(self) -> str | None:
        if not self.keys:
            return None
        return self.keys[min(self.cursor_row, len(self.keys) - 1)]

    def get_row_index(self, key: str) -> int:
        return self._index[key]

    def get_row_at(self, row: int) -> list[Cell]:
        return list(self._cells(self.keys[row]))

    def move_cursor(self, *, row: int, animate: bool = False) -> None:
        row = max(0, min(row, len(self.keys) - 1)) if self.keys else 0
        moved = row != self.cursor_row
        self.cursor_row = row
        self._follow()
        if moved:
            self.post_message(self.Highlighted(self, self.cursor_key))

    def _follow(self) -> None:
        """Scroll so that the cursor's row is on screen (below the header)."""
        visible = max(self.scrollable_content_region.height - 1, 1)
        top = round(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False, immediate=True)

    def watch_cursor_row(self) -> None:
        self.refresh()

    # -- keys and mouse ----------------------------------------------------------------------

    def action_cursor(self, step: int) -> None:
        self.move_cursor(row=self.cursor_row + step)

    def action_page(self, direction: int) -> None:
        page = max(self.scrollable_content_region.height - 2, 1)
        self.move_cursor(row=self.cursor_row + direction * page)

    def action_edge(self, end: int) -> None:
        self.move_cursor(row=len(self.keys) - 1 if end else 0)

    def action_select(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.Selected(self, key))

    def on_click(self, event: events.Click) -> None:
        if event.y < 1:
            return
        row = round(self.scroll_y) + event.y - 1
        if 0 <= row < len(self.keys):
            if row == self.cursor_row:
                self.action_select()
            else:
                self.move_cursor(row=row)

    # -- drawing -----------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._header = None  # its style may have changed with the theme

    def _fit(self, cell: Cell, width: int) -> list[Segment]:
        """One cell as segments exactly ``width`` cells wide: cut with an ellipsis, or padded."""
        if isinstance(cell, Text) and cell.spans:  # styled in parts: rich lays it out
            text = cell.copy()
            text.truncate(width, overflow="ellipsis", pad=True)
            return list(text.render(self.app.console))
        plain = cell if isinstance(cell, str) else cell.plain
        style = None if isinstance(cell, str) or not cell.style else cell.style
        if cell_len(plain) > width:
            plain = set_cell_size(plain, width - 1) + "…" if width else ""
        else:
            plain = set_cell_size(plain, width)
        if isinstance(style, str):
            style = self.app.console.get_style(style)
        return [Segment(plain, style)]

    def _segments(self, cells: Sequence[Cell]) -> list[Segment]:
        """A row's segments, its cells' own styles only (the line's style goes on when drawn),
        neighbours of one style joined: fewer segments to style, crop and write each frame."""
        gap = Segment(" " * self.gap)
        segments = [Segment(" ")]
        for width, cell in zip(self.widths, cells, strict=False):
            segments.extend(self._fit(cell, width))
            segments.append(gap)
        return list(Segment.simplify(segments))

    def _row_segments(self, key: str) -> list[Segment]:
        segments = self._cache.get(key)
        if segments is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            segments = self._cache[key] = self._segments(self._cells(key))
        return segments

    def render_lines(self, crop: Region) -> list[Strip]:
        # the styles every line of this pass is drawn with, worked out once
        base = self.rich_style
        self._styles = (
            base,
            base + self.get_component_rich_style("rowtable--stripe"),
            self.get_component_rich_style("rowtable--cursor"),
        )
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base, stripe, cursor = self._styles
        if y == 0:
            if self._header is None:
                style = self.get_component_rich_style("rowtable--header")
                labels = [Text(c.label) for c in self.columns]
                self._header = (self._segments(labels), style)
            segments, style = self._header
            return self._strip(segments, width, style)
        row = round(self.scroll_y) + y - 1
        if row >= len(self.keys):
            return Strip.blank(width, base)
        segments = self._row_segments(self.keys[row])
        if row == self.cursor_row:  # over the cells' own colours, so that it reads
            return self._strip(segments, width, base, cursor)
        return self._strip(segments, width, stripe if row % 2 else base)

    def _strip(
        self, segments: list[Segment], width: int, style: Style, over: Style | None = None
    ) -> Strip:
        """A line of ``width`` cells from a row's segments, as scrolled sideways, in ``style``
        (``over`` goes over the cells' own styles)."""
        scroll_x = round(self.scroll_x)
        line_width = self.line_width
        if scroll_x == 0 and line_width <= width:  # the usual case: made at its width at once
            padded = [*segments, Segment(" " * (width - line_width))]
            return Strip(Segment.apply_style(padded, style, over), width)
        strip = Strip(Segment.apply_style(segments, style, over), line_width)
        padding = style if over is None else style + over
        return strip.crop_extend(scroll_x, scroll_x + width, padding)

    @property
    def line_width(self) -> int:
        """Every row's width in cells: the margin, the columns and their gaps."""
        return 1 + sum(self.widths) + self.gap * len(self.widths)
