"""The operator's view from the command line: `status` (health, statistics, runs, the HTML report) and `runs`, on
the embedded default and on a deployed stack (CloudFormation, DynamoDB and S3 under moto)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from catalog_sync import cli
from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.models.changes import RunStatus
from catalog_sync.models.config import EmbedderKind
from catalog_sync.models.index import IndexEmbedder, IndexSettings
from tests.conftest import product, write_jsonl
from tests.doubles.aws_resources import create_table
from tests.doubles.catalog_config import catalog_toml
from tests.doubles.state_stores import record, upsert

runner = CliRunner()
CONFIG = catalog_toml(metadata={"title": "string", "price": "number"})
REGION = "us-east-1"
STACK = "CatalogSync"
TABLE = "catalog-sync"
BUCKET = "catalog-bucket"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cli, "build_embedder", lambda settings: HashingEmbedder())
    (tmp_path / "shop.toml").write_text(CONFIG)
    return tmp_path


def local(workdir: Path, *args: str, json_output: bool = True) -> tuple[int, Any, str]:
    options = ["--config", str(workdir / "shop.toml"), "--state-dir", str(workdir / "state")]
    result = runner.invoke(cli.app, [*args, *options, *(["--json"] if json_output else [])])
    payload = orjson.loads(result.stdout.splitlines()[-1]) if json_output and result.stdout.strip() else None
    return result.exit_code, payload, result.output


class Page(HTMLParser):
    """What a browser would see: the tags, the attributes, and the text."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(self.text)


def self_contained(page: Page) -> None:
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert "style" in page.tags and "svg" in page.tags
    for name, value in page.attributes:
        assert name != "src"
        if name == "href":
            assert value is not None and value.startswith("#")  # links only within the page


# ---------------------------------------------------------------- the embedded default


def test_status_runs_and_report_on_the_embedded_default(workdir: Path):
    good = [product(str(i)) for i in range(9)]
    catalog = write_jsonl(workdir / "v1.jsonl", [*good, product("9", price="free")])  # 1 of 10 invalid
    assert local(workdir, "sync", str(catalog))[0] == 0
    code, status, _ = local(workdir, "status")
    assert code == 0
    assert (status["catalog"], status["products"], status["indexed"], status["vectors_in_index"]) == ("shop", 9, 9, 9)
    # Everything indexed and fresh; but 10% of the records were invalid: quality 0.9, a warning.
    assert status["health"]["components"] == {"coverage": 1.0, "freshness": 1.0, "quality": 0.9}
    assert status["score"] == 98.0 and status["healthy"] is False
    assert [(a["level"], a["code"]) for a in status["alerts"]] == [("warning", "invalid_records")]
    assert status["statistics"]["runs"] == 1 and status["statistics"]["success_rate"] == 1.0
    assert status["statistics"]["products_synced"] == 9 and status["statistics"]["texts_embedded"] == 9
    assert status["runs"][0]["status"] == "succeeded"

    code, _, text = local(workdir, "status", json_output=False)
    assert code == 0
    assert "health 98.0" in text and "invalid_records" in text and "Recent runs" in text

    # A broken drop whose name is markup: the failed run's source and message carry it, escaped everywhere.
    broken = workdir / "<script>evil.jsonl"
    broken.write_bytes(b'{"sku": "1", "title": "x"}\n{"sku": "2", "ti')
    assert local(workdir, "sync", str(broken))[0] == 3
    code, runs, _ = local(workdir, "runs")
    assert code == 0
    assert [run["status"] for run in runs] == ["failed", "succeeded"]
    assert runs[1]["counts"]["applied_upserted"] == 9 and runs[1]["duration_s"] >= 0
    assert all(run["catalog"] == "shop" for run in runs)

    # One run by its id alone: the local catalogs are searched.
    result = runner.invoke(cli.app, ["runs", runs[1]["run_id"], "--state-dir", str(workdir / "state"), "--json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == runs[1]
    result = runner.invoke(cli.app, ["runs", "20990101T000000Z-00001-ffffff", "--state-dir", str(workdir / "state")])
    assert result.exit_code == 1 and "no run" in result.output

    report = workdir / "report.html"
    code, status, _ = local(workdir, "status", "--html", str(report))
    assert code == 0 and status["html"] == str(report)
    page = Page(report.read_text(encoding="utf-8"))
    self_contained(page)
    text = page.all_text
    assert "shop" in text
    assert "last_run_failed" in text and "invalid_records" in text
    assert "<script>evil.jsonl" in text  # shown as text...
    assert "<script>" not in report.read_text(encoding="utf-8")  # ...never as markup
    assert page.tags.count("g") == 2  # the chart: one group (stacked bar, mark, tooltip) per run
    assert all(run["run_id"] in text for run in runs)


def test_status_refuses_mixed_sources(workdir: Path):
    code, payload, _ = local(workdir, "status", "--stack", STACK)
    assert code == 3 and "--stack reads a deployed stack" in payload["error"]
    code, payload, _ = local(workdir, "status", "--catalog", "shop")
    assert code == 3 and "--catalog goes with --stack" in payload["error"]


# ---------------------------------------------------------------- a deployed stack


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A stack whose outputs name the table and the bucket; "shop" has state, "outlet" only a config."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "CATALOG_SYNC_STATE_CONCURRENCY": "1",  # moto: one request at a time
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        create_table(dynamodb)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="config/outlet.toml", Body=CONFIG.replace("shop", "outlet").encode())
        s3.put_object(Bucket=BUCKET, Key="config/README.txt", Body=b"not a config")
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {
                "StateTableOutput": {"Value": TABLE, "Export": {"Name": f"{STACK}-StateTable"}},
                "BucketOutput": {"Value": BUCKET, "Export": {"Name": f"{STACK}-Bucket"}},
            },
        }
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName=STACK, TemplateBody=json.dumps(template)
        )
        # "shop": 3 products synced by one dispatched run, its consumers done (state written with 4 shards).
        store = DynamoStateStore(dynamodb, table=TABLE, catalog="shop", shards=4, concurrency=1)
        record(store, [upsert(pid, 1) for pid in "ABC"])
        store.commit([upsert(pid, 1) for pid in "ABC"])
        run = store.begin_run(mode="incremental", source="s3://catalog-bucket/catalogs/shop/<v1>.jsonl")
        run.status, run.counts = RunStatus.DISPATCHED, {"records": 3, "added": 3, "dispatched_changes": 3}
        store.finish_run(run)
        assert store.record_progress(run.run_id, 3, {"embedded": 1, "cache_hits": 2, "upserted": 3}) is True
        yield {"run_id": run.run_id, "dynamodb": dynamodb}


def on_stack(*args: str) -> tuple[int, Any, str]:
    result = runner.invoke(cli.app, [*args, "--stack", STACK, "--region", REGION, "--json"])
    payload = orjson.loads(result.stdout.splitlines()[-1]) if result.stdout.strip() else None
    return result.exit_code, payload, result.output


def test_status_of_a_deployed_stack(stack: dict[str, Any], tmp_path: Path):
    code, status, output = on_stack("status")
    assert code == 0, output
    assert status["stack"] == STACK and status["source"] == f"stack {STACK} ({REGION})"
    catalogs = {entry["catalog"]: entry for entry in status["catalogs"]}
    assert list(catalogs) == ["outlet", "shop"]  # state in the table, or a config in the bucket
    shop = catalogs["shop"]
    assert (shop["products"], shop["indexed"], shop["pending"]) == (3, 3, 0)  # read with the recorded 4 shards
    assert shop["score"] == 100.0 and shop["alerts"] == [] and shop["healthy"]
    assert shop["statistics"]["cache_hit_rate"] == pytest.approx(2 / 3)
    assert shop["runs"][0]["status"] == "succeeded" and shop["runs"][0]["counts"]["applied_upserted"] == 3
    outlet = catalogs["outlet"]
    assert outlet["score"] == 20.0 and [a["code"] for a in outlet["alerts"]] == ["never_succeeded"]

    code, only, _ = on_stack("status", "--catalog", "shop")
    assert code == 0 and [entry["catalog"] for entry in only["catalogs"]] == ["shop"]
    code, missing, _ = on_stack("status", "--catalog", "nope")
    assert code == 1 and "no catalog 'nope'" in missing["error"]

    report = tmp_path / "stack.html"
    code, _, _ = on_stack("status", "--html", str(report))
    assert code == 0
    page = Page(report.read_text(encoding="utf-8"))
    self_contained(page)
    assert {"shop", "outlet", "never_succeeded", "the catalog was never synced"} <= set(page.text)
    assert "s3://catalog-bucket/catalogs/shop/<v1>.jsonl" in page.all_text
    assert "no runs yet" in page.text and page.tags.count("svg") == 1  # outlet has no runs to chart

    result = runner.invoke(cli.app, ["status", "--stack", STACK, "--region", REGION])
    assert result.exit_code == 0
    assert "Catalog outlet" in result.output and "Catalog shop" in result.output and "never_succeeded" in result.output


def test_runs_of_a_deployed_stack(stack: dict[str, Any]):
    code, runs, _ = on_stack("runs")
    assert code == 0
    assert [(run["catalog"], run["run_id"], run["status"]) for run in runs] == [("shop", stack["run_id"], "succeeded")]
    assert runs[0]["counts"]["applied_embedded"] == 1 and runs[0]["counts"]["applied_changes"] == 3
    code, found, _ = on_stack("runs", stack["run_id"])
    assert code == 0 and found == runs[0]
    code, missing, _ = on_stack("runs", "20990101T000000Z-00001-ffffff")
    assert code == 1 and "no run" in missing["error"]


def test_a_deployed_stack_is_read_with_the_embedder_its_index_was_built_with(stack: dict[str, Any]):
    openai = IndexEmbedder(
        kind=EmbedderKind.OPENAI,
        settings={"openai_model": "text-embedding-3-large", "openai_dimensions": 1024},
        dimension=1024,
    )
    store = DynamoStateStore(stack["dynamodb"], table=TABLE, catalog="shop", shards=4, concurrency=1)
    store.record_index_settings(
        IndexSettings(embedding_model="openai/text-embedding-3-large@1024", text_template="tpl", embedder=openai)
    )
    code, status, _ = on_stack("status", "--catalog", "shop")
    assert code == 0
    assert status["catalogs"][0]["embedder"]["built_with"] == "openai (text-embedding-3-large, 1024 dimensions)"
    assert on_stack("status", "--embedder", "openai")[0] == 0
    expected = (
        "the index of catalog 'shop' was built with openai (text-embedding-3-large, 1024 dimensions); --embedder "
        "hashing would not match it: drop --embedder to use the one it was built with"
    )
    for command in (["status"], ["runs"], ["runs", stack["run_id"]]):
        code, payload, _ = on_stack(*command, "--embedder", "hashing")
        assert (code, payload) == (3, {"error": expected, "exit_code": 3}), command


def test_a_stack_that_does_not_exist(stack: dict[str, Any]):
    result = runner.invoke(cli.app, ["status", "--stack", "Nope", "--region", REGION, "--json"])
    assert result.exit_code == 1
    assert "no stack 'Nope'" in orjson.loads(result.stdout)["error"]


def test_health_settings_come_from_the_environment(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    catalog = write_jsonl(workdir / "v1.jsonl", [*(product(str(i)) for i in range(9)), product("9", price="free")])
    assert local(workdir, "sync", str(catalog))[0] == 0
    monkeypatch.setenv("CATALOG_SYNC_HEALTH", '{"invalid_info": 0.2, "invalid_warning": 0.3}')
    code, status, _ = local(workdir, "status")
    assert code == 0 and status["alerts"] == [] and status["healthy"]  # 10% invalid is under 20% now
    monkeypatch.setenv("CATALOG_SYNC_HEALTH", '{"weights": {"coverage": 0, "freshness": 0, "quality": 0}}')
    code, payload, _ = local(workdir, "status")
    assert code == 3 and "must not all be zero" in payload["error"]


# ---------------------------------------------------------------- narrow terminals

# Counts of every size, up to millions: none may be cut short at 80 columns.
NARROW_RUNS = [
    ("succeeded", {"added": 1_234_567, "applied_embedded": 1_234_000, "applied_cache_hits": 567}),
    ("held", {"deleted": 98_765, "invalid": 4_321}),
    ("interrupted", {"text_changed": 55_555, "metadata_only": 66_666, "applied_embedded": 7_777}),
]


LABELS = {
    "added": "+",
    "text_changed": "~",
    "metadata_only": "m",
    "deleted": "-",
    "invalid": "inv",
    "applied_embedded": "emb",
    "applied_cache_hits": "hit",
}


@pytest.fixture
def narrow_state(tmp_path: Path) -> tuple[Path, list[tuple[str, dict[str, int]]]]:
    """A catalog's state with three runs of large counts; the run ids as the store gave them."""
    (tmp_path / "shop.toml").write_text(CONFIG)
    from catalog_sync.adapters.local.sqlite_state import SqliteStateStore

    store = SqliteStateStore(tmp_path / "state" / "shop" / "state.sqlite", "shop")
    runs = []
    for status, counts in NARROW_RUNS:
        run = store.begin_run(mode="incremental", source="catalog.jsonl")
        run.status, run.counts = RunStatus(status), counts
        store.finish_run(run)
        runs.append((run.run_id, counts))
    store.close()
    return tmp_path, runs


def assert_readable(screen: str, runs: list[tuple[str, dict[str, int]]], width: int = 80) -> None:
    lines = screen.splitlines()
    assert lines and all(len(line.rstrip()) <= width for line in lines), max(lines, key=len)
    assert "…" not in screen  # nothing cut short
    words = screen.split()
    for run_id, counts in runs:
        assert run_id in words, f"{run_id} is not shown whole"
        for key, value in counts.items():
            assert f"{value:,}" in words, f"{value:,} is not shown whole"
            # ...and beside its label, on one line (the legend says what the labels mean).
            labelled = f"{LABELS[key]} {value:,}"
            assert any(labelled in line for line in lines), f"{labelled!r} is not on one line"
    for status in ("ok", "held", "intr"):
        assert status in words


def test_runs_fit_an_80_column_terminal(narrow_state: tuple[Path, list[tuple[str, dict[str, int]]]]):
    import subprocess
    import sys

    root, runs = narrow_state
    options = ["--config", str(root / "shop.toml"), "--state-dir", str(root / "state")]
    for command in (["runs"], ["status"]):
        done = subprocess.run(
            [sys.executable, "-m", "catalog_sync.cli", *command, *options],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "80"},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        if command == ["runs"]:
            assert_readable(done.stdout, runs)
        else:  # run numbers, not ids: the counts must still be whole
            assert_readable(done.stdout, [(str(seq), counts) for seq, (_, counts) in enumerate(runs, 1)])


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_runs_in_a_real_80_column_terminal(narrow_state: tuple[Path, list[tuple[str, dict[str, int]]]]):
    """The same in a terminal (tmux, 80 x 50): the width comes from the terminal itself, not $COLUMNS."""
    import subprocess
    import sys

    root, runs = narrow_state
    session = f"catalog-sync-test-{os.getpid()}"
    done_marker = root / "done"
    options = ["--config", str(root / "shop.toml"), "--state-dir", str(root / "state")]
    cli_line = " ".join([sys.executable, "-m", "catalog_sync.cli", "runs", *options])
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    shell = f"{cli_line}; touch {done_marker}; sleep 60"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "50", shell], env=env, check=True)
    try:
        deadline = time.monotonic() + 60
        while not done_marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert done_marker.exists()
        screen = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True
        ).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert_readable(screen, runs)
