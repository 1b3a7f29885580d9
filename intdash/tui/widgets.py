"""A table that draws only the rows on screen, for tables of any length.

Textual's DataTable measures every cell of every row it is given: 10,000 integrations cost it
seconds of the UI loop. Here the columns have fixed widths, the rows are keys, and a row's cells
are asked for (and cached) only when the row is drawn, so a frame costs the same at 10 rows or
100,000.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = str | Text
Cells = Callable[[str], Sequence[Cell]]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int


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
        self.gap = gap
        self.keys: list[str] = []
        self._index: dict[str, int] = {}
        self._cache: dict[str, Text] = {}

    # -- content -----------------------------------------------------------------------------

    def set_columns(self, columns: Sequence[Column], gap: int | None = None) -> None:
        self.columns = list(columns)
        if gap is not None:
            self.gap = gap
        self._cache.clear()
        self._resize()

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

    def _resize(self) -> None:
        width = 1 + sum(c.width for c in self.columns) + self.gap * len(self.columns)
        self.virtual_size = Size(width, len(self.keys) + 1)
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

    def _line(self, cells: Sequence[Cell]) -> Text:
        line = Text(no_wrap=True, end="")
        for column, cell in zip(self.columns, cells, strict=False):
            text = Text(cell) if isinstance(cell, str) else cell.copy()
            text.truncate(column.width, overflow="ellipsis", pad=True)
            line.append_text(text)
            line.append(" " * self.gap)
        return line

    def _row_text(self, key: str) -> Text:
        text = self._cache.get(key)
        if text is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            text = self._cache[key] = self._line(self._cells(key))
        return text

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x = round(self.scroll_x)
        if y == 0:
            header = self.get_component_rich_style("rowtable--header")
            text = self._line([Text(c.label) for c in self.columns])
            return self._strip(text, header, scroll_x, width)
        row = round(self.scroll_y) + y - 1
        base = self.rich_style
        if row >= len(self.keys):
            return Strip.blank(width, base)
        text = self._row_text(self.keys[row])
        if row == self.cursor_row:  # over the cells' own colours, so that it reads
            return self._strip(
                text, base, scroll_x, width, self.get_component_rich_style("rowtable--cursor")
            )
        if row % 2:
            base = base + self.get_component_rich_style("rowtable--stripe")
        return self._strip(text, base, scroll_x, width)

    def _strip(
        self, text: Text, style: Style, scroll_x: int, width: int, over: Style | None = None
    ) -> Strip:
        segments = [Segment(" "), *text.render(self.app.console)]
        if over is not None:
            style = style + over
        strip = Strip(Segment.apply_style(segments, style, over))
        return strip.crop_extend(scroll_x, scroll_x + width, style)
