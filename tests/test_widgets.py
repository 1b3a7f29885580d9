"""The dashboard's own widgets, alone in a small app."""

from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region

from intdash.tui.widgets import Column, RowTable, TitleBar

ROWS: dict[str, tuple[Any, ...]] = {
    "a": ("short", Text("styled", style="bold green"), "a value too long for it"),
    "b": ("exactly", Text.assemble(("two", "red"), " parts"), "üñí 漢字 wide"),
}


class Table(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.rows = dict(ROWS)  # this app's own, to change

    def compose(self) -> ComposeResult:
        yield TitleBar("[b]Rows[/b], by key", id="bar")
        table = RowTable(lambda key: self.rows[key], id="rows")
        table.set_columns([Column("x", "X", 6), Column("y", "Y", 8), Column("z", "Z", 10)], gap=1)
        yield table


def drawn(table: RowTable) -> list[str]:
    region = Region(0, 0, table.size.width, table.size.height)
    return [strip.text for strip in table.render_lines(region)]


async def test_cells_are_cut_padded_styled_and_scrolled_sideways() -> None:
    app = Table()
    async with app.run_test(size=(22, 6)) as pilot:
        table = app.query_one(RowTable)
        table.set_rows(["a", "b"])
        await pilot.pause()
        assert str(app.query_one(TitleBar).render()) == "intdash │ Rows, by key"
        assert table.line_width == 1 + 6 + 8 + 10 + 3
        lines = drawn(table)
        width = table.scrollable_content_region.width
        assert width < table.line_width  # wider than the screen: it scrolls sideways
        # cut to the column with an ellipsis; wide characters counted as two cells
        full = " short  styled   a value t… "
        assert "".join(seg.text for seg in table._row_segments("a")) == full
        wide = "".join(seg.text for seg in table._row_segments("b"))
        assert wide == " exact… two par… üñí 漢字 … "
        assert lines[:2] == [" X      Y        Z         "[:width], full[:width]]

        # a cell's own style is kept off the cursor's row; the cursor's goes over it
        def style_of(text: str) -> Style:
            segments = list(table.render_lines(Region(0, 1, width, 1))[0])
            found = [s.style for s in segments if s.text.startswith(text)]
            assert found and found[0] is not None
            return found[0]

        cursor = style_of("styled")
        table.move_cursor(row=1)
        await pilot.pause()
        own = style_of("styled")
        assert own.bold and own.color is not None and own.color.triplet is not None
        red, green, blue = own.color.triplet  # green, as the theme draws it
        assert green > red and green > blue
        assert cursor.color != own.color
        table.move_cursor(row=0)
        # sideways, as far as it goes: the same line, its end in view
        table.scroll_to(x=99, animate=False, immediate=True)
        await pilot.pause()
        assert round(table.scroll_x) == table.line_width - width
        assert drawn(table)[1] == full[-width:]
        # rows changed by key are drawn anew, the others kept
        app.rows["a"] = ("new", "", "")
        table.set_rows(["b", "a"], changed=["a"])
        table.scroll_to(x=0, animate=False, immediate=True)
        await pilot.pause()
        assert [line[:8] for line in drawn(table)[1:3]] == [" exact… ", " new    "]
        assert table.cursor_key == "a"  # the cursor stays on its row


def test_a_cell_of_plain_style_is_one_segment() -> None:
    table = RowTable(lambda key: ("", ""))
    table.set_columns([Column("x", "X", 4)], gap=2)
    assert table._fit(Text("ok", style=Style(bold=True)), 4)[0].text == "ok  "
    assert table._fit("toolong", 4)[0].text == "too…"
    assert table._fit("x", 0)[0].text == ""


class Flexible(App[None]):
    def compose(self) -> ComposeResult:
        table = RowTable(lambda key: ("a", "b" * 60), id="rows")
        table.set_columns([Column("x", "X", 6), Column("y", "Y", 10, flex=True)], gap=1)
        yield table


async def test_a_flexible_column_takes_the_room_the_others_leave() -> None:
    app = Flexible()
    async with app.run_test(size=(40, 6)) as pilot:
        table = app.query_one(RowTable)
        table.set_rows(["one"])
        await pilot.pause()
        # 40 columns: a margin, 6 and a gap, the flexible one and its gap, a scrollbar's 2
        assert table.widths == [6, 40 - 2 - (1 + 6 + 1 + 1)]
        assert table.line_width <= table.size.width
        assert drawn(table)[1].rstrip().endswith("b…")  # cut to its width, not past the edge
        await pilot.resize_terminal(20, 6)
        await pilot.pause()
        assert table.widths == [6, 10]  # never under its own width: the table scrolls instead
        await pilot.resize_terminal(60, 6)
        await pilot.pause()
        assert table.widths == [6, 60 - 2 - 9]
