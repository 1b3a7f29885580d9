"""The sandbox: deterministic data at any size, and the command that runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intdash.providers.http import httpx
from intdash.sandbox.dataset import EPOCH_END, STEP, Dataset


def test_data_is_deterministic() -> None:
    assert Dataset(10).invoice(3) == Dataset(10).invoice(3)
    assert Dataset(10).invoice(3).id != Dataset(10, seed="other").invoice(3).id
    assert [i.index for i in Dataset(10).iter_all()] == list(range(10))


def test_a_million_invoices_cost_nothing_up_front() -> None:
    data = Dataset(1_000_000)
    started = time.perf_counter()
    last = data.invoice(999_999)
    middle = data.list_after(data.invoice(499_999).updated, 0, 100)
    assert time.perf_counter() - started < 1.0
    assert last.updated == EPOCH_END - STEP
    assert last.number == "INV-1000000"
    assert [i.index for i in middle] == list(range(500_000, 500_100))
    assert data.count_after(None) == 1_000_000


def test_touched_invoices_move_to_the_end_and_page_exactly() -> None:
    data = Dataset(2500)
    boundary = data.invoice(1000).updated
    data.touch([5, 1500, 3])
    everything = [i.index for i in data.iter_all()]
    assert sorted(everything) == list(range(2500))
    assert everything[-3:] == [5, 1500, 3]
    after = [i.index for i in data.list_after(boundary, 0, 10_000)]
    assert after[-3:] == [5, 1500, 3] and 1500 not in after[:-3]
    assert len(after) == data.count_after(boundary) == 1499 - 1 + 3
    paged: list[int] = []
    while batch := data.list_after(boundary, len(paged), 97):
        paged += [i.index for i in batch]
    assert paged == after
    touched = data.invoice(1500)
    assert touched.revision == 1 and touched.updated > EPOCH_END


@pytest.mark.parametrize("notes", ["--credit-notes", "--no-credit-notes"])
def test_sandbox_command_prints_settings_that_work(notes: str) -> None:
    script = Path(sys.executable).with_name("intdash")
    proc = subprocess.Popen(
        [str(script), "sandbox", "--port", "0", "--size", "30", notes],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("INTDASH_")},
    )
    try:
        assert proc.stdout is not None
        heading = proc.stdout.readline()
        assert heading.rstrip().endswith(
            "with 30 invoices each and credit notes" if notes == "--credit-notes" else "each"
        ), heading
        settings: dict[str, str] = {}
        while len(settings) < 17:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            if line.startswith("export "):
                name, _, value = line[len("export ") :].strip().partition("=")
                settings[name] = value
        assert settings["INTDASH_XERO__REDIRECT_URI"] == "http://localhost:8471/callback"
        base = settings["INTDASH_XERO__API_URL"].removesuffix("/xero/api")
        stats = httpx.get(f"{base}/_sandbox/stats").json()
        assert stats["xero"]["invoices"] == 30
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_rate_windows_can_be_replaced() -> None:
    from intdash.sandbox.server import Sandbox

    with Sandbox(size=10) as box:
        answer = httpx.post(
            f"{box.url}/_sandbox/xero/limits", json={"window": "minute", "limit": 3, "seconds": 1}
        )
        assert answer.json() == {"window": "minute", "limit": 3, "seconds": 1.0}
        assert (box.xero.minute.limit, box.xero.minute.window) == (3, 1.0)
        bad = httpx.post(f"{box.url}/_sandbox/myob/limits", json={"window": "minute", "limit": 3})
        assert bad.status_code == 400 and "no window 'minute'" in bad.json()["error"]


def test_books_change_through_the_control_endpoints() -> None:
    """Invoices can be created, deleted and voided over HTTP as they are edited; Xero voids
    what it is asked to delete (it deletes nothing outright)."""
    from intdash.sandbox.server import Sandbox

    with Sandbox(size=20) as box:
        made = httpx.post(f"{box.url}/_sandbox/myob/create?count=3").json()
        gone = httpx.post(f"{box.url}/_sandbox/myob/delete?count=2").json()
        assert (made, gone) == ({"created": 3}, {"deleted": 2})
        assert box.myob.dataset.count_after(None) == 21
        assert httpx.post(f"{box.url}/_sandbox/xero/delete?count=2").json() == {"voided": 2}
        assert box.xero.dataset.count_after(None) == 20
        assert sum(i.voided for i in box.xero.dataset.iter_all()) == 2
        bad = httpx.post(f"{box.url}/_sandbox/zoho/create?count=lots")
        assert bad.status_code == 400 and "count" in bad.json()["error"]
        assert httpx.post(f"{box.url}/_sandbox/zoho/explode").status_code == 404


def test_a_held_gate_stops_api_calls_until_released() -> None:
    """A test holds a sync between two pages with the gate, not with a delay."""
    from intdash.sandbox.server import Sandbox

    with Sandbox(size=20) as box:
        assert httpx.post(f"{box.url}/_sandbox/zoho/hold?after=0").json() == {"hold_after": 0}
        assert box.zoho.faults.holding
        answer = httpx.post(f"{box.url}/_sandbox/zoho/release").json()
        assert answer == {"released": True} and not box.zoho.faults.holding


async def test_demo_seeds_one_of_each_type_through_the_real_flows(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from intdash.cli.demo import DEMO_LIMIT, demo_sandbox, seed
    from intdash.core.config import load_settings
    from intdash.core.status import Reason
    from intdash.core.workspace import Workspace

    box = demo_sandbox().start()
    try:
        for name, value in box.settings("http://127.0.0.1:9/callback").items():
            monkeypatch.setenv(name, value)
        ws = Workspace.open(load_settings())
        made = await seed(ws)
        views = {view.uid: view for view in ws.integrations.listing()}
        assert {v.type.value for v in views.values()} == {
            "xero",
            "myob",
            "zoho",
            "webhook",
            "custom",
        }
        assert views[made["acme"]].status.active
        assert views[made["zylker"]].status.active
        assert views[made["harbour"]].status.reason is Reason.RECONNECT_NEEDED
        bay = views[made["bay"]]  # MYOB lists issued invoices only: more than the limit
        assert bay.status.reason is Reason.LIMIT_REACHED
        assert bay.invoices_this_month == DEMO_LIMIT
        assert views[made["erp"]].status.active  # it has an API key
        assert ws.invoices.verify().ok
        ws.close()
    finally:
        box.stop()


def test_counts_past_the_last_edit_are_never_negative() -> None:
    """Edits are stamped with the emulator's clock; a cursor past the last one still counts and
    lists exactly the invoices edited after it (this once gave negative counts and lost edits)."""
    data = Dataset(200)
    data.touch_spread(30)
    after = max(i.updated for i in data.iter_all())
    touched = data.touch_spread(40)
    assert data.count_after(after) == 40
    assert {i.index for i in data.list_after(after, 0, 1000)} == set(touched)


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(0, 30),
    step_ms=st.sampled_from([0, 100, 1000, 30_000]),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["touch", "void", "delete", "create", "tick"]), st.integers(0, 99)
        ),
        max_size=25,
    ),
    probe=st.integers(-5, 80),
    offset=st.integers(0, 40),
    limit=st.integers(1, 40),
)
def test_listing_matches_a_plain_sort_of_the_live_invoices(
    size: int,
    step_ms: int,
    ops: list[tuple[str, int]],
    probe: int,
    offset: int,
    limit: int,
) -> None:
    """Whatever was edited, created or deleted, "modified after T" from an offset is the live
    invoices sorted by modification time (ties in the order they were changed), sliced."""
    now = [EPOCH_END]
    data = Dataset(size, step=timedelta(milliseconds=step_ms), clock=lambda: now[0])
    changed: list[int] = []  # change order, for ties
    for op, value in ops:
        live = [i for i in range(data.size) if data.exists(i)]
        if op == "tick":
            now[0] += timedelta(milliseconds=value * 50)
        elif op == "create":
            changed += data.create(1 + value % 2)
        elif live:
            index = live[value % len(live)]
            if op == "delete":
                data.delete([index])
            else:
                data.touch([index], void=op == "void")
                changed = [i for i in changed if i != index] + [index]
    everything = [data.invoice(i) for i in range(data.size) if data.exists(i)]
    order = {index: n for n, index in enumerate(changed)}
    everything.sort(key=lambda i: (i.updated, order.get(i.index, -1), i.index))
    after = EPOCH_END + timedelta(milliseconds=probe * 250)
    wanted = [i.index for i in everything if i.updated > after]
    assert data.count_after(after) == len(wanted)
    assert [i.index for i in data.list_after(after, offset, limit)] == wanted[
        offset : offset + limit
    ]
    assert data.count_after(None) == len(everything)
