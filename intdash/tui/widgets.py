"""The dashboard's own widgets: a screen's title bar, and a table that draws only the rows on
screen, for tables of any length.

Textual's DataTable measures every cell of every row it is given: 10,000 integrations cost it
seconds of the UI loop. Here the columns have fixed widths, the rows are keys, and a row's cells
are asked for (and cached) only when the row is drawn, so a frame costs the same at 10 rows or
100,000. The table also draws a caption line over its header and a note of a few lines under
its rows: what a screen says about its rows costs no widget of its own (each widget is styled,
laid out and composed before the first frame) and no layout pass when it changes.
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
    flex: bool = False  # takes a share of what the others leave of the table's width
    most: int | None = None  # a flexible column's widest (what it leaves goes to the others)
    weight: int = 1  # a flexible column's share of the room, against the others'
    cell: int | None = None  # which of a row's cells it shows (None: the one at its place)


def share(columns: Sequence[Column], room: int) -> list[int]:
    """The columns' widths when the flexible ones share ``room`` cells beyond their least, by
    weight, each up to its widest (what it cannot take goes to the others)."""
    widths = [c.width for c in columns]
    open_ = [n for n, c in enumerate(columns) if c.flex]
    left = max(room, 0)
    while open_ and left > 0:
        weight = sum(columns[n].weight for n in open_)
        full = [
            n
            for n in open_
            if (most := columns[n].most) is not None
            and widths[n] + left * columns[n].weight // weight >= most
        ]
        if not full:
            for n in open_:
                widths[n] += left * columns[n].weight // weight
            widths[open_[-1]] += left - sum(left * columns[n].weight // weight for n in open_)
            break
        for n in full:
            most = columns[n].most
            assert most is not None
            give = max(most - widths[n], 0)
            widths[n] += give
            left -= give
            open_.remove(n)
    return widths


Caption = Text | Callable[[int], Text]  # a line, or what makes it at a width


class RowTable(ScrollView, can_focus=True):
    """Rows by key, one line each, a header line that stays put (the column the rows are sorted
    by marked in it, with its direction), a row cursor; a caption line over the header and a
    note under the rows, if given, stay put too."""

    NOTE_LINES = 3  # the note wraps to at most this many lines

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False, id="row-up"),
        Binding("down", "cursor(1)", "Down", show=False, id="row-down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="row-page-up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="row-page-down"),
        Binding("home", "edge(0)", "First", show=False, id="row-first"),
        Binding("end", "edge(1)", "Last", show=False, id="row-last"),
        Binding("enter", "select", "Select", show=False, id="row-select"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "rowtable--header",
        "rowtable--cursor",
        "rowtable--stripe",
        "rowtable--note",
    }
    DEFAULT_CSS = """
    RowTable { background: $surface; }
    RowTable > .rowtable--note { background: $panel; }
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

    def __init__(
        self,
        cells: Cells,
        *,
        gap: int = 2,
        caption: Caption | None = None,
        id: str | None = None,
    ) -> None:
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
        self.sorted_by: tuple[str, bool] | None = None  # (column key, reversed)
        self._picks: list[int] | None = None  # the cell each column shows, if not its own
        self._caption = caption
        self.note: Text | None = None
        self._lines: dict[str, tuple[int, list[Text]]] = {}  # caption and note, at a width

    # -- content -----------------------------------------------------------------------------

    def set_columns(self, columns: Sequence[Column], gap: int | None = None) -> None:
        self.columns = list(columns)
        picked = any(c.cell is not None for c in self.columns)
        self._picks = (
            [n if c.cell is None else c.cell for n, c in enumerate(self.columns)]
            if picked
            else None
        )
        if gap is not None:
            self.gap = gap
        self.widths = []
        self._fit_columns()

    def mark_sorted(self, key: str | None, reverse: bool = False) -> None:
        """Mark the column ``key`` in the header as the one the rows are sorted by: ▲ rising,
        ▼ (``reverse``) falling."""
        sorted_by = (key, reverse) if key is not None else None
        if sorted_by != self.sorted_by:
            self.sorted_by = sorted_by
            self._header = None
            self.refresh()

    def set_caption(self, caption: Caption | None) -> None:
        """A line over the header (a function is given the width to make it at)."""
        before = self._top
        self._caption = caption
        self._lines.pop("caption", None)
        if self._top != before:
            self._resize()
        self.refresh()

    def set_note(self, note: Text | None) -> None:
        """Words under the rows, wrapped (up to NOTE_LINES lines)."""
        if note == self.note:
            return
        before = len(self._note_lines())
        self.note = note
        self._lines.pop("note", None)
        if len(self._note_lines()) != before:
            self._resize()
            self._follow()
        self.refresh()

    @property
    def caption(self) -> Text | None:
        """The caption line as drawn now (None: none)."""
        lines = self._caption_lines()
        return lines[0] if lines else None

    def _caption_lines(self) -> list[Text]:
        caption = self._caption
        if caption is None:
            return []
        width = self.scrollable_content_region.width
        found = self._lines.get("caption")
        if found is None or found[0] != width:
            text = caption(width) if callable(caption) else caption
            found = self._lines["caption"] = (width, [text])
        return found[1]

    def _note_lines(self) -> list[Text]:
        if self.note is None:
            return []
        width = max(self.scrollable_content_region.width - 2, 1)  # a cell of margin each side
        found = self._lines.get("note")
        if found is None or found[0] != width:
            lines = list(self.note.wrap(self.app.console, width))[: self.NOTE_LINES]
            found = self._lines["note"] = (width, lines)
        return found[1]

    @property
    def _top(self) -> int:
        """Lines over the rows: the caption, if any, and the header."""
        return 1 if self._caption is None else 2

    @property
    def visible_rows(self) -> int:
        """How many rows there is room for between the header and the note."""
        height = self.scrollable_content_region.height
        return max(height - self._top - len(self._note_lines()), 1)

    def _fit_columns(self) -> None:
        """Work out the widths drawn: the flexible columns share the room the others leave (a
        vertical scrollbar's width kept free), each at least its own width."""
        least = 1 + sum(c.width for c in self.columns) + self.gap * len(self.columns)
        room = self.size.width - self.styles.scrollbar_size_vertical - least
        widths = share(self.columns, room)
        if widths != self.widths:
            self.widths = widths
            self._cache.clear()
            self._header = None
            self._resize()

    def on_resize(self) -> None:
        if any(c.flex for c in self.columns):
            self._fit_columns()
        if self.note is not None:
            self._resize()  # its lines at the new width

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
        lines = self._top + len(self._note_lines())
        self.virtual_size = Size(self.line_width, len(self.keys) + lines)
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
        visible = self.visible_rows
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
        page = max(self.visible_rows - 1, 1)
        self.move_cursor(row=self.cursor_row + direction * page)

    def action_edge(self, end: int) -> None:
        self.move_cursor(row=len(self.keys) - 1 if end else 0)

    def action_select(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.Selected(self, key))

    def on_click(self, event: events.Click) -> None:
        if not self._top <= event.y < self._top + self.visible_rows:
            return  # the caption, the header or the note
        row = round(self.scroll_y) + event.y - self._top
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
        """A line's segments from its cells in the columns' order, their own styles only (the
        line's style goes on when drawn), neighbours of one style joined: fewer segments to
        style, crop and write each frame."""
        gap = Segment(" " * self.gap)
        segments = [Segment(" ")]
        for width, cell in zip(self.widths, cells, strict=False):
            segments.extend(self._fit(cell, width))
            segments.append(gap)
        return list(Segment.simplify(segments))

    def _shown(self, cells: Sequence[Cell]) -> Sequence[Cell]:
        """The cells of a row that its columns show, in their order."""
        picks = self._picks
        return cells if picks is None else [cells[n] for n in picks]

    def _label(self, column: Column) -> Text:
        if self.sorted_by is None or self.sorted_by[0] != column.key:
            return Text(column.label)
        return Text(f"{column.label} {'▼' if self.sorted_by[1] else '▲'}")

    def _row_segments(self, key: str) -> list[Segment]:
        segments = self._cache.get(key)
        if segments is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            segments = self._cache[key] = self._segments(self._shown(self._cells(key)))
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
        top = self._top
        if y < top - 1:
            return self._words(self._caption_lines()[y], width, base, margin=0)
        below = y - top - self.visible_rows
        if below >= 0:
            notes = self._note_lines()
            style = base + self.get_component_rich_style("rowtable--note")
            if below < len(notes):
                return self._words(notes[below], width, style, margin=1)
            return Strip.blank(width, style)
        if y == top - 1:
            if self._header is None:
                style = self.get_component_rich_style("rowtable--header")
                labels = [self._label(c) for c in self.columns]
                self._header = (self._segments(labels), style)
            segments, style = self._header
            return self._strip(segments, width, style)
        row = round(self.scroll_y) + y - top
        if row >= len(self.keys):
            return Strip.blank(width, base)
        segments = self._row_segments(self.keys[row])
        if row == self.cursor_row:  # over the cells' own colours, so that it reads
            return self._strip(segments, width, base, cursor)
        return self._strip(segments, width, stripe if row % 2 else base)

    def _words(self, text: Text, width: int, style: Style, *, margin: int) -> Strip:
        """A line of words (the caption's, or one of the note's), at the screen's width
        whatever the rows' sideways scroll."""
        line = text.copy()
        line.end = ""
        line.truncate(max(width - 2 * margin, 0), overflow="ellipsis")
        segments = [Segment(" " * margin), *line.render(self.app.console)]
        strip = Strip(Segment.apply_style(segments, style))
        return strip.extend_cell_length(width, style).crop(0, width)

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
