"""The field check as a user meets it: `validate`, `monitor` and `sync` name the config's field names that no
record has, with the name the catalog really uses."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from catalog_sync import cli
from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from tests.conftest import product, write_jsonl

runner = CliRunner()

# An export whose columns have spaces and capitals, as a shop's do.
CSV = "sku,Title,Variant Price,Vendor\nT-1,Soft tee,19.5,Acme\nT-2,Warm hoodie,49,Acme\nT-3,Wool socks,7.25,Knitco\n"
MISSPELT_PRICE = "fields.price source 'Varient Price' never appears in the catalog; did you mean 'Variant Price'?"
WRONG_CASE_ID = "id_field 'SKU' is in no record; did you mean 'sku'?"


@pytest.fixture(autouse=True)
def embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "build_embedder", lambda settings: HashingEmbedder())


def write_config(
    workdir: Path,
    *,
    id_field: str = "sku",
    text_fields: list[str] | None = None,
    metadata: dict[str, str] | None = None,
    required_fields: list[str] | None = None,
    columns: dict[str, str] | None = None,
    tables: str = "",
) -> Path:
    """The catalog's config; written here, as TOML quotes a key with a space ("Variant Price")."""
    # A column whose name has a space is read through a derived field ([fields] price = { from = "..." }).
    metadata = {"price": "number", "Vendor": "string"} if metadata is None else metadata
    columns = {"price": "Varient Price"} if columns is None else columns
    lines = ['name = "shop"', f"id_field = {json.dumps(id_field)}"]
    if required_fields is not None:
        lines.append(f"required_fields = {json.dumps(required_fields)}")
    lines += ["[text]", f"fields = {json.dumps(text_fields or ['Title'])}", "[metadata]"]
    lines += [f"{json.dumps(name)} = {json.dumps(kind)}" for name, kind in metadata.items()]
    if columns:
        lines.append("[fields]")
        lines += [f"{name} = {{ from = {json.dumps(column)} }}" for name, column in columns.items()]
    path = workdir / "shop.toml"
    path.write_text("\n".join(lines) + "\n" + tables)
    return path


def run(workdir: Path, *args: str, json_output: bool = False) -> tuple[int, str]:
    state = [] if args[0] == "validate" else ["--state-dir", str(workdir / "state")]
    extra = ["--json"] if json_output else []
    result = runner.invoke(cli.app, [*args, "--config", str(workdir / "shop.toml"), *state, *extra])
    return result.exit_code, result.stdout


def run_json(workdir: Path, *args: str) -> tuple[int, dict]:
    code, stdout = run(workdir, *args, json_output=True)
    return code, orjson.loads(stdout.splitlines()[-1])


def test_validate_names_a_misspelt_column_and_exits_0(tmp_path: Path):
    write_config(tmp_path)
    (tmp_path / "c.csv").write_text(CSV)
    code, stdout = run(tmp_path, "validate", str(tmp_path / "c.csv"))
    assert code == 0, stdout  # every record is valid: the field is only absent from every product
    assert f"warning: {MISSPELT_PRICE}\n" in stdout

    code, report = run_json(tmp_path, "validate", str(tmp_path / "c.csv"))
    assert code == 0
    assert report["config_warnings"] == [
        {
            "severity": "warning",
            "field": "Varient Price",
            "settings": ["fields.price"],
            "suggestions": ["Variant Price"],
            "message": MISSPELT_PRICE,
        }
    ]
    check = report["config_check"]
    assert check["records_checked"] == 3 and check["records_not_parsed"] == 0 and check["complete"]
    assert check["field_counts"] == {"sku": 3, "Title": 3, "Varient Price": 0, "Vendor": 3}


def test_a_right_config_has_no_warnings(tmp_path: Path):
    write_config(tmp_path, columns={"price": "Variant Price"})
    (tmp_path / "c.csv").write_text(CSV)
    code, stdout = run(tmp_path, "validate", str(tmp_path / "c.csv"))
    assert code == 0 and "warning" not in stdout
    code, report = run_json(tmp_path, "validate", str(tmp_path / "c.csv"))
    assert code == 0 and report["config_warnings"] == []


def test_monitor_and_sync_print_the_warning_and_go_on(tmp_path: Path):
    write_config(tmp_path)
    (tmp_path / "c.csv").write_text(CSV)
    code, stdout = run(tmp_path, "monitor", str(tmp_path / "c.csv"))
    assert code == 0 and f"warning: {MISSPELT_PRICE}\n" in stdout
    code, stdout = run(tmp_path, "sync", str(tmp_path / "c.csv"))
    assert code == 0 and f"warning: {MISSPELT_PRICE}\n" in stdout
    # The products were synced, without the price the config meant.
    code, plan = run_json(tmp_path, "monitor", str(tmp_path / "c.csv"))
    assert code == 0 and plan["counts"]["unchanged"] == 3
    assert [warning["message"] for warning in plan["config_warnings"]] == [MISSPELT_PRICE]


def test_a_wrong_case_id_field_is_one_error_before_the_missing_ids(tmp_path: Path):
    write_config(tmp_path, id_field="SKU", text_fields=["title"], metadata={"price": "number"}, columns={})
    catalog = write_jsonl(tmp_path / "c.jsonl", [product(str(i)) for i in range(60)])
    code, stdout = run(tmp_path, "validate", str(catalog))
    assert code == 3
    lines = [line.rstrip() for line in stdout.splitlines()]
    # Once, before the table of records that all say why.
    assert lines.count(f"error: {WRONG_CASE_ID}") == 1
    assert lines.index(f"error: {WRONG_CASE_ID}") < lines.index("Invalid records")
    assert stdout.count("id_field 'SKU'") == 1 and stdout.count("missing id") == 50

    code, report = run_json(tmp_path, "validate", str(catalog))
    assert code == 3 and report["invalid"] == 60
    assert [(w["severity"], w["message"]) for w in report["config_warnings"]] == [("error", WRONG_CASE_ID)]

    code, stdout = run(tmp_path, "sync", str(catalog))
    assert code == 0 and f"error: {WRONG_CASE_ID}\n" in stdout  # nothing synced: every record is quarantined
    code, report = run_json(tmp_path, "monitor", str(catalog))
    assert code == 0 and report["counts"]["added"] == 0
    assert [(w["severity"], w["field"], w["suggestions"]) for w in report["config_warnings"]] == [
        ("error", "SKU", ["sku"])
    ]


def test_a_csv_without_the_id_column_is_refused_with_the_column_meant(tmp_path: Path):
    write_config(tmp_path, id_field="SKU")
    (tmp_path / "c.csv").write_text(CSV)
    code, report = run_json(tmp_path, "validate", str(tmp_path / "c.csv"))
    assert code == 3
    assert report["error"].endswith(
        "c.csv, line 1: the CSV header has no 'SKU' column (columns: ['sku', 'Title', 'Variant Price', 'Vendor']); "
        "did you mean 'sku'?"
    )


def test_a_required_field_no_record_has_is_an_error(tmp_path: Path):
    write_config(tmp_path, required_fields=["title"], columns={"price": "Variant Price"})
    (tmp_path / "c.csv").write_text(CSV)
    code, report = run_json(tmp_path, "validate", str(tmp_path / "c.csv"))
    assert code == 3 and report["invalid"] == 3
    assert [(w["severity"], w["message"]) for w in report["config_warnings"]] == [
        (
            "error",
            "required field 'title' never appears in the catalog (every record is quarantined); did you mean 'Title'?",
        )
    ]


def test_an_error_fails_validate_even_when_every_record_is_valid(tmp_path: Path):
    # Rows are grouped into products by a column no row has: each record may be valid, the products are wrong.
    # (A CSV is refused at its header for that; JSON records are checked one by one.)
    write_config(
        tmp_path,
        text_fields=["title"],
        metadata={"price": "number"},
        columns={},
        tables='[source]\ngroup_by = "handle"\n',
    )
    catalog = write_jsonl(tmp_path / "c.jsonl", [product(str(i)) for i in range(3)])
    code, report = run_json(tmp_path, "validate", str(catalog))
    assert code == 3
    assert [(w["severity"], w["message"]) for w in report["config_warnings"]] == [
        (
            "error",
            "source.group_by field 'handle' never appears in the catalog (no rows are grouped into products)",
        )
    ]


def test_unchanged_json_lines_are_not_parsed_and_the_report_says_so(tmp_path: Path):
    write_config(tmp_path, text_fields=["title"], metadata={"price": "number", "colour": "string"}, columns={})
    catalog = write_jsonl(tmp_path / "c.jsonl", [product(str(i)) for i in range(5)])
    code, first = run_json(tmp_path, "sync", str(catalog))
    assert code == 0
    assert [w["message"] for w in first["config_warnings"]] == ["metadata field 'colour' never appears in the catalog"]
    # The same file again: every line takes the fast path, unparsed, so no absence can be concluded from it.
    code, again = run_json(tmp_path, "monitor", str(catalog))
    assert code == 0 and again["config_warnings"] == []
    assert again["config_check"]["records_checked"] == 0 and again["config_check"]["records_not_parsed"] == 5
    assert not again["config_check"]["complete"]
    # `validate` reads every record, whatever the state.
    code, checked = run_json(tmp_path, "validate", str(catalog))
    assert code == 0 and [w["field"] for w in checked["config_warnings"]] == ["colour"]


def test_watch_prints_the_warning_after_its_sync(tmp_path: Path):
    for json_output in (False, True):
        workdir = tmp_path / ("json" if json_output else "text")  # each its own state: each syncs the catalog
        workdir.mkdir()
        write_config(workdir)
        (workdir / "c.csv").write_text(CSV)
        watch = ["watch", str(workdir / "c.csv"), "--max-syncs", "1", "--max-seconds", "60", "--settle", "0"]
        code, stdout = run(workdir, *watch, "--poll", "0.05", "--threshold", "1", json_output=json_output)
        assert code == 0, stdout
        if not json_output:
            assert f"warning: {MISSPELT_PRICE}\n" in stdout and "synced c.csv" in stdout
            continue
        assert "warning:" not in stdout  # JSON only
        events = [orjson.loads(line) for line in stdout.splitlines()]
        [sync_event] = [event for event in events if event["event"] == "sync"]
        assert [w["message"] for w in sync_event["report"]["config_warnings"]] == [MISSPELT_PRICE]
