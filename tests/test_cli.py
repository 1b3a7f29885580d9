from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from intdash.cli import cli
from tests.conftest import run_intdash


def invoke(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def ok_json(*args: str, stdin: str | None = None) -> Any:
    result = invoke(*args, "--json", stdin=stdin)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, *fragments: str, code: int = 1) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("intdash: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_done_when_xero_needs_authorisation(env: dict[str, str]) -> None:
    """The issue's own check, through the installed console script."""
    added = run_intdash("integrations", "add", "xero", "--name", "demo", "--json", env=env)
    assert added.returncode == 0, added.stderr
    uid = json.loads(added.stdout)["uid"]
    shown = run_intdash("integrations", "show", uid, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["uid"] == uid
    assert data["name"] == "demo"
    assert data["status"] == "inactive"
    assert data["reason"] == "needs authorisation"


def test_user_errors_are_one_line_from_the_real_script(env: dict[str, str]) -> None:
    for args, fragment in [
        (["integrations", "show", "xero-nope22"], "no integration with UID"),
        (["integrations", "add", "sage"], "'sage' is not one of"),
        (["integrations", "add", "webhook"], "url: is required"),
        (["keys", "revoke", "nokey"], "no API key"),
        (["plan", "set", "gold"], "'gold' is not one of"),
    ]:
        result = run_intdash(*args, env=env)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("intdash: "), result.stderr
        assert fragment in lines[0]
        assert "Traceback" not in result.stderr


def test_bad_setting_is_one_line(env: dict[str, str]) -> None:
    result = run_intdash("plan", "show", env={**env, "INTDASH_SERVER__PORT": "x"})
    assert result.returncode == 1
    assert result.stderr.startswith("intdash: invalid setting INTDASH_SERVER__PORT")
    assert len(result.stderr.strip().splitlines()) == 1


def test_bare_intdash_and_version(env: dict[str, str]) -> None:
    assert "integrations" in invoke("--help").stdout
    assert invoke("--version").stdout.startswith("intdash, version")
    without_terminal = invoke()  # a script, not a person: no dashboard to hang on
    assert_one_line_error(without_terminal, "the dashboard needs a terminal")


def test_add_list_show_json_shapes(env: dict[str, str]) -> None:
    xero = ok_json("integrations", "add", "xero", "--name", "Acme")
    hook = ok_json(
        "integrations",
        "add",
        "webhook",
        "--set",
        "url=https://hooks.example.com/in",
        "--set",
        "headers=X-Token: tok-abcdefgh",
    )
    assert len(hook["signing_secret"]) >= 32  # shown once, at creation
    listed = ok_json("integrations", "list")
    assert [i["uid"] for i in listed] == [xero["uid"], hook["uid"]]
    for item in listed:
        for key in (
            "uid", "type", "name", "created", "status", "reason",
            "last_attempted_sync", "last_successful_sync", "sync_from",
        ):  # fmt: skip
            assert key in item
    shown = ok_json("integrations", "show", hook["uid"])
    assert shown["settings"] == {"url": "https://hooks.example.com/in", "deliver": "all"}
    assert shown["secrets"] == {"headers": True}
    assert "signing_secret" not in shown
    assert "tok-abcdefgh" not in json.dumps(shown)


def test_human_output(env: dict[str, str]) -> None:
    assert "No integrations yet" in invoke("integrations", "list").stdout
    uid = ok_json("integrations", "add", "myob", "--set", "company_file_password=pw-secret-1")[
        "uid"
    ]
    listed = invoke("integrations", "list").stdout
    assert uid in listed and "○ Inactive" in listed and "needs authorisation" in listed
    shown = invoke("integrations", "show", uid).stdout
    assert "Company file password  ******** (set)" in shown
    assert "pw-secret-1" not in shown


def test_configure(env: dict[str, str]) -> None:
    uid = ok_json("integrations", "add", "zoho")["uid"]
    data = ok_json(
        "integrations", "configure", uid, "--set", "data_centre=eu", "--set", "sync_from=2026-01-31"
    )
    assert data["settings"]["data_centre"] == "eu"
    assert data["sync_from"] == "2026-01-31"
    result = invoke("integrations", "configure", uid, "--set", "data_centre=mars")
    assert_one_line_error(result, "data_centre: must be one of")
    result = invoke("integrations", "configure", uid, "--set", "nonsense")
    assert_one_line_error(result, "expected KEY=VALUE", code=2)
    result = invoke("integrations", "configure", uid, "--set", "a=1", "--set", "a=2")
    assert_one_line_error(result, "a is given twice", code=2)
    assert ok_json("integrations", "show", uid)["settings"]["data_centre"] == "eu"


def test_secret_from_standard_input(env: dict[str, str]) -> None:
    uid = ok_json("integrations", "add", "myob")["uid"]
    data = ok_json(
        "integrations", "configure", uid, "--set", "company_file_password=-", stdin="from-stdin\n"
    )
    assert data["secrets"] == {"company_file_password": True}
    result = invoke("integrations", "configure", uid, "--set", "company_file_password=-", stdin="")
    assert_one_line_error(result, "standard input is empty", code=2)


def test_remove_asks_first(env: dict[str, str]) -> None:
    uid = ok_json("integrations", "add", "xero", "--name", "Acme")["uid"]
    refused = invoke("integrations", "remove", uid, stdin="n\n")
    assert refused.exit_code == 1
    assert "Acme" in refused.stderr and "invoices already fiscalized stay" in refused.stderr
    assert "aborted: nothing was changed" in refused.stderr
    assert ok_json("integrations", "show", uid)["removed"] is False
    accepted = invoke("integrations", "remove", uid, stdin="y\n")
    assert accepted.exit_code == 0, accepted.stderr
    assert ok_json("integrations", "show", uid)["removed"] is True
    assert_one_line_error(invoke("integrations", "remove", uid, "--yes"), "was removed")


def test_remove_yes(env: dict[str, str]) -> None:
    uid = ok_json("integrations", "add", "custom")["uid"]
    data = ok_json("integrations", "remove", uid, "--yes")
    assert data["status"] == "inactive" and data["reason"] == "removed"
    assert ok_json("integrations", "list") == []
    assert [
        i["uid"] for i in json.loads(invoke("integrations", "list", "--all", "--json").stdout)
    ] == [uid]


def test_keys(env: dict[str, str]) -> None:
    uid = ok_json("integrations", "add", "custom")["uid"]
    created = ok_json("keys", "create", uid, "--label", "erp")
    assert created["key"].startswith(f"idk_{created['key_id']}_")
    listed = ok_json("keys", "list", uid)
    assert [(k["key_id"], k["label"], k["state"]) for k in listed] == [
        (created["key_id"], "erp", "active")
    ]
    assert "key" not in listed[0]
    human = invoke("keys", "create", uid, "--label", "second")
    assert human.stdout.strip().startswith("idk_")
    assert "shown this once only" in human.stderr
    assert invoke("keys", "revoke", created["key_id"]).exit_code == 0
    assert ok_json("keys", "list", uid)[0]["state"] == "revoked"
    assert_one_line_error(invoke("keys", "revoke", created["key_id"]), "already revoked")
    assert_one_line_error(invoke("keys", "create", uid), "Missing option '--label'", code=2)


def test_plan(env: dict[str, str]) -> None:
    assert ok_json("plan", "show")["tier"] == "starter"
    data = ok_json("plan", "set", "growth", "--limit", "1200", "--licence-expires", "2027-01-31")
    assert (data["tier"], data["monthly_invoice_limit"], data["licence_expires"]) == (
        "growth",
        1200,
        "2027-01-31",
    )
    assert "Growth (near real-time: every 5 min)" in invoke("plan", "show").stdout
    assert ok_json("plan", "set", "scale", "--licence-expires", "never")["licence_expires"] is None
    result = invoke("plan", "set", "scale", "--licence-expires", "soon")
    assert_one_line_error(result, "YYYY-MM-DD", code=2)
    assert_one_line_error(invoke("plan", "set", "scale", "--limit", "-5"), "--limit", code=2)


def test_locate(env: dict[str, str]) -> None:
    data = ok_json("locate")
    home = env["INTDASH_HOME"]
    assert data["home"] == home
    assert data["config"] == f"{home}/config.toml"
    assert data["key"] == f"{home}/vault.key"
    assert data["logs"] == f"{home}/logs/intdash.log"
    assert data["database"].startswith(("sqlite", "postgresql"))
    assert "config" in invoke("locate").stdout


def test_locate_hides_database_password(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTDASH_DATABASE_URL", "postgresql://u:hunter2@db.internal/x")
    data = ok_json("locate")
    assert "hunter2" not in data["database"]


def test_vault_rotate_and_genkey(env: dict[str, str]) -> None:
    ok_json("integrations", "add", "myob", "--set", "company_file_password=abc-def-ghi")
    data = ok_json("vault", "rotate")
    assert (data["version"], data["reencrypted"], data["retired"]) == (2, 1, [1])
    assert "Re-encrypted" in invoke("vault", "rotate").stdout
    key = invoke("vault", "genkey").stdout.strip()
    assert len(key) == 44
