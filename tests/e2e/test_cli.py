"""The CLI on the embedded default, end to end: sync v1, then v2; the local index must equal v2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from catalog_generator_helpers import catalog_pair
from catalog_sync import cli
from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.local.sqlite_state import SqliteStateStore
from catalog_sync.bootstrap.local import LocalWorkspace
from catalog_sync.bootstrap.registry import build_embedder
from catalog_sync.models.config import EmbedderKind, EmbedderSettings
from catalog_sync.models.index import IndexEmbedder, IndexSettings
from catalog_sync.ports import Embedder
from tests.conftest import product, write_jsonl
from tests.doubles.catalog_config import SHOP_METADATA, catalog_toml
from tests.doubles.cli import RecordingEmbedder

runner = CliRunner()
CONFIG = catalog_toml(
    text_fields=["title", "brand", "category", "description"], metadata={"brand": "string", **SHOP_METADATA}
)


@pytest.fixture
def embedder(monkeypatch: pytest.MonkeyPatch) -> RecordingEmbedder:
    """One embedder shared by every command, so the test can see exactly what was embedded."""
    shared = RecordingEmbedder()
    monkeypatch.setattr(cli, "build_embedder", lambda settings: shared)
    return shared


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "shop.toml").write_text(CONFIG)
    return tmp_path


def invoke(workdir: Path, *args: str) -> tuple[int, dict]:
    state = [] if args[0] == "validate" else ["--state-dir", str(workdir / "state")]
    result = runner.invoke(cli.app, [*args, "--config", str(workdir / "shop.toml"), *state, "--json"])
    payload = orjson.loads(result.stdout.splitlines()[-1]) if result.stdout.strip() else {}
    return result.exit_code, payload


def export(workdir: Path) -> dict[str, dict]:
    result = runner.invoke(
        cli.app, ["export", "--config", str(workdir / "shop.toml"), "--state-dir", str(workdir / "state")]
    )
    assert result.exit_code == 0, result.output
    return {row["id"]: row for row in map(orjson.loads, result.stdout.splitlines())}


def test_sync_v1_then_v2_applies_exactly_the_changes(workdir: Path, embedder: RecordingEmbedder):
    v1, v2, expected = catalog_pair(workdir, n=400)
    code, first = invoke(workdir, "sync", str(v1))
    assert code == 0, first
    assert first["counts"]["added"] == 400
    assert embedder.texts_embedded == 400

    code, plan = invoke(workdir, "monitor", str(v2))
    assert code == 0
    kinds = {
        kind: sorted(c["id"] for c in plan["changes"] if c["kind"] == kind)
        for kind in ("added", "text_changed", "metadata_only", "deleted")
    }
    assert kinds == {kind: sorted(ids) for kind, ids in expected.items()}
    assert embedder.texts_embedded == 400  # a dry run embeds nothing

    code, second = invoke(workdir, "sync", str(v2))
    assert code == 0, second
    assert embedder.texts_embedded - 400 == len(expected["added"]) + len(expected["text_changed"])
    embedded_in_v2 = set(embedder.texts[400:])
    assert second["applied"]["metadata_updated"] == len(expected["metadata_only"])
    assert second["applied"]["deleted"] == len(expected["deleted"])

    # The local index equals v2: ids, text and metadata.
    index = export(workdir)
    v2_records = {r["sku"]: r for r in map(orjson.loads, v2.read_bytes().splitlines())}
    assert set(index) == set(v2_records)
    from catalog_sync.logic.canonical import text_hash
    from catalog_sync.logic.validation import RecordValidator
    from catalog_sync.models.config import load_config

    config = load_config(workdir / "shop.toml")
    validator = RecordValidator(config)
    workspace = LocalWorkspace(workdir / "state", config, embedder)
    texts = {entry.id: entry.text for entry in workspace.index.export()}
    for sku, record in v2_records.items():
        valid = validator.validate(sku, record)
        assert index[sku]["metadata"] == valid.metadata
        assert texts[sku] == valid.text
        assert index[sku]["text_hash"] == text_hash(
            valid.text, model_id=embedder.model_id, template_id=config.text.fingerprint()
        )
    # Exactly the added and text-changed products were embedded, nothing else.
    changed = set(expected["added"]) | set(expected["text_changed"])
    assert embedded_in_v2 == {texts[sku] for sku in changed}

    # A second sync of the same catalog embeds nothing and writes nothing.
    before = embedder.texts_embedded
    code, third = invoke(workdir, "sync", str(v2))
    assert code == 0
    assert embedder.texts_embedded == before
    assert third["applied"] == dict.fromkeys(third["applied"], 0)

    # The change log has one line per change of the two syncs.
    log = (workdir / "state" / "shop" / "changes.jsonl").read_bytes().splitlines()
    assert len(log) == 400 + sum(len(ids) for ids in expected.values())
    entry = orjson.loads(log[-1])
    assert {"time", "run", "kind", "id", "fields_changed"} <= set(entry)


def test_guard_holds_back_a_truncated_catalog(workdir: Path, embedder: HashingEmbedder):
    catalog = write_jsonl(workdir / "c.jsonl", [product(str(i)) for i in range(20)])
    assert invoke(workdir, "sync", str(catalog))[0] == 0
    truncated = write_jsonl(workdir / "t.jsonl", [product(str(i)) for i in range(3)])
    code, report = invoke(workdir, "sync", str(truncated))
    assert code == 2
    assert report["held"] and "17 of 20" in report["guard_reason"]
    assert len(export(workdir)) == 20
    code, report = invoke(workdir, "sync", str(truncated), "--force")
    assert code == 0
    assert len(export(workdir)) == 3


def test_broken_catalog_changes_nothing(workdir: Path, embedder: HashingEmbedder):
    catalog = write_jsonl(workdir / "c.jsonl", [product(str(i)) for i in range(5)])
    assert invoke(workdir, "sync", str(catalog))[0] == 0
    broken = workdir / "broken.jsonl"
    broken.write_bytes(b'{"sku": "1", "title": "x"}\n{"sku": "2", "ti')
    result = runner.invoke(
        cli.app,
        ["sync", str(broken), "--config", str(workdir / "shop.toml"), "--state-dir", str(workdir / "state")],
    )
    assert result.exit_code == 3
    assert "broken.jsonl, line 2" in result.output
    assert len(export(workdir)) == 5


def test_quarantine_and_validate(workdir: Path, embedder: HashingEmbedder):
    records = [product("1"), product("2", price="free"), product("1"), {"title": "no id"}]
    catalog = write_jsonl(workdir / "c.jsonl", records)
    code, report = invoke(workdir, "sync", str(catalog))
    assert code == 0
    assert report["counts"]["invalid"] == 3
    lines = [orjson.loads(line) for line in Path(report["quarantine"]).read_bytes().splitlines()]
    assert [(q["location"], q["product_id"]) for q in lines] == [
        ("line 2", "2"),
        ("line 3", "1"),
        ("line 4", None),
    ]
    assert all(q["reason"] and q["record"] for q in lines)
    assert set(export(workdir)) == {"1"}

    code, checked = invoke(workdir, "validate", str(catalog))
    assert code == 3
    assert checked["invalid"] == 3 and checked["valid"] == 1


def test_ids_and_full(workdir: Path, embedder: HashingEmbedder):
    catalog = write_jsonl(workdir / "c.jsonl", [product(str(i)) for i in range(10)])
    assert invoke(workdir, "sync", str(catalog))[0] == 0
    changed = write_jsonl(workdir / "d.jsonl", [product(str(i), price=99.0) for i in range(10)])
    code, report = invoke(workdir, "sync", str(changed), "--ids", "1,2")
    assert code == 0 and report["counts"]["metadata_only"] == 2
    assert export(workdir)["3"]["metadata"]["price"] == 10.0
    embedded = embedder.texts_embedded
    code, report = invoke(workdir, "sync", str(changed), "--full")
    assert code == 0
    assert report["applied"]["upserted"] == 10
    assert embedder.texts_embedded == embedded  # every text came from the cache
    assert all(row["metadata"]["price"] == 99.0 for row in export(workdir).values())


def test_query_status_and_filters(workdir: Path, embedder: HashingEmbedder):
    records = [
        product("1", title="Red running shoe"),
        product("2", title="Blue coffee mug", availability="sold_out"),
    ]
    catalog = write_jsonl(workdir / "c.jsonl", records)
    assert invoke(workdir, "sync", str(catalog))[0] == 0
    code, matches = invoke(workdir, "query", "running shoe", "-k", "1")
    assert code == 0 and matches[0]["id"] == "1"
    code, matches = invoke(workdir, "query", "running shoe", "--filter", "availability=sold_out")
    assert code == 0 and [m["id"] for m in matches] == ["2"]
    code, status = invoke(workdir, "status")
    assert code == 0
    assert status["healthy"] and status["indexed"] == 2 and status["runs"][0]["status"] == "succeeded"


def test_missing_config_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CATALOG_SYNC_CONFIG", raising=False)
    result = runner.invoke(cli.app, ["status"])
    assert result.exit_code == 3
    assert "no catalog config" in result.output


def test_usage_errors_exit_3_not_2_which_means_held(tmp_path: Path):
    import subprocess
    import sys

    for args in (["sync"], ["sync", "x.jsonl", "--bogus"], ["query", "x", "-k", "0"]):
        done = subprocess.run(
            [sys.executable, "-m", "catalog_sync.cli", *args], capture_output=True, text=True, check=False
        )
        assert done.returncode == 3, (args, done.stderr)
        assert "Error" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sync", "x.jsonl", "--bogus"], "No such option: --bogus"),  # unknown option
        (["sync"], "Missing argument 'catalog'."),  # missing argument
        (["query", "x", "-k", "0"], "Invalid value for '-k'"),  # bad value
        (["sync", "x.jsonl", "--embedder", "nope"], "'nope' is not one of"),  # bad choice
        (["sync", "x.jsonl", "--wait", "soon"], "Invalid value for '--wait'"),
        (["bogus"], "No such command 'bogus'."),
    ],
)
def test_usage_errors_under_json_are_json(tmp_path: Path, args: list[str], message: str):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "catalog_sync.cli", *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout  # one JSON object, nothing else on stdout
    error = orjson.loads(lines[0])
    assert set(error) == {"error", "exit_code"} and error["exit_code"] == 3
    assert message in error["error"]
    assert "Error" in done.stderr  # and the usual message for a person, on stderr


def test_an_unexpected_error_under_json_is_json(tmp_path: Path):
    """A bug is still a JSON error (exit 1) under --json, with its traceback on stderr."""
    import subprocess
    import sys

    (tmp_path / "shop.toml").write_text(CONFIG)
    catalog = write_jsonl(tmp_path / "c.jsonl", [product("1")])
    # The entry point with a bug planted: building the embedder raises what no command expects.
    script = (
        "import sys\n"
        "import catalog_sync.cli as cli\n"
        "def broken(settings):\n"
        "    raise ZeroDivisionError('a bug')\n"
        "cli.build_embedder = broken\n"
        "sys.argv = ['catalog-sync', *sys.argv[1:]]\n"
        "cli.main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "validate", str(catalog), "--config", "shop.toml", "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert orjson.loads(done.stdout.splitlines()[-1]) == {
        "error": "internal error: ZeroDivisionError: a bug",
        "exit_code": 1,
    }
    assert "Traceback" in done.stderr and "ZeroDivisionError" in done.stderr


def test_readers_never_create_state(workdir: Path, embedder: HashingEmbedder):
    code, payload = invoke(workdir, "status")
    assert code == 1 and "no state for catalog 'shop'" in payload["error"]
    catalog = write_jsonl(workdir / "c.jsonl", [product("1")])
    code, plan = invoke(workdir, "monitor", str(catalog))
    assert code == 0 and plan["counts"]["added"] == 1
    assert not (workdir / "state").exists()


# ---------------------------------------------------------------- read-only commands: the index's own embedder


class BuiltEmbedders:
    """The real factory, noting the settings of every embedder a command builds."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def __call__(self, settings: EmbedderSettings) -> Embedder:
        self.kinds.append(settings.kind.value)
        return build_embedder(settings)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> BuiltEmbedders:
    factory = BuiltEmbedders()
    monkeypatch.setattr(cli, "build_embedder", factory)
    return factory


def read(workdir: Path, *args: str, config: str = "shop.toml") -> tuple[int, Any]:
    options = ["--config", str(workdir / config), "--state-dir", str(workdir / "state"), "--json"]
    result = runner.invoke(cli.app, [*args, *options])
    lines = result.stdout.splitlines()
    payload = orjson.loads(lines[-1]) if args[0] != "export" or result.exit_code else [*map(orjson.loads, lines)]
    return result.exit_code, payload


SHOES = [product("1", title="Red running shoe"), product("2", title="Blue coffee mug")]


def test_read_only_commands_need_no_embedder_after_a_sync_with_another(workdir: Path, built: BuiltEmbedders):
    catalog = write_jsonl(workdir / "c.jsonl", SHOES)
    assert invoke(workdir, "sync", str(catalog), "--embedder", "hashing")[0] == 0
    assert built.kinds == ["hashing"]

    # status, runs and export build no embedder at all; status says which one the index was built with.
    code, status = read(workdir, "status")
    assert code == 0 and status["indexed"] == 2 and status["vectors_in_index"] == 2
    assert status["embedder"] == {
        "built_with": "hashing (384 dimensions)",
        "model_id": "catalog-sync/hashing-v2-384",
        "kind": "hashing",
        "settings": {"hashing_dimensions": 384},
        "dimension": 384,
        "settled": True,
    }
    code, runs = read(workdir, "runs")
    assert code == 0 and [run["status"] for run in runs] == ["succeeded"]
    code, rows = read(workdir, "export")
    assert code == 0 and sorted(row["id"] for row in rows) == ["1", "2"]
    assert built.kinds == ["hashing"]

    # query embeds with the embedder the index was built with, though the config's default is minilm.
    code, matches = read(workdir, "query", "running shoe", "-k", "1")
    assert code == 0 and [m["id"] for m in matches] == ["1"]
    assert built.kinds == ["hashing", "hashing"]

    # The recorded embedder is in the state file itself: a store opened again reads it back.
    store = SqliteStateStore(workdir / "state" / "shop" / "state.sqlite", "shop")
    recorded = store.index_settings()
    store.close()
    assert recorded is not None and recorded.embedding_model == "catalog-sync/hashing-v2-384"
    assert recorded.embedder == IndexEmbedder(
        kind=EmbedderKind.HASHING, settings={"hashing_dimensions": 384}, dimension=384
    )


def test_a_partial_re_embed_leaves_an_index_no_one_embedder_can_query_until_a_sync_completes(
    workdir: Path, built: BuiltEmbedders
):
    catalog = write_jsonl(workdir / "c.jsonl", SHOES)
    assert invoke(workdir, "sync", str(catalog), "--embedder", "hashing")[0] == 0
    wider = (workdir / "shop.toml").read_text() + '\n[embedder]\nkind = "hashing"\nhashing_dimensions = 512\n'
    (workdir / "wider.toml").write_text(wider)
    # Only product 1 is re-embedded with the other embedder: the index now holds vectors of both.
    code, partial = read(workdir, "sync", str(catalog), "--ids", "1", config="wider.toml")
    assert code == 0 and partial["applied"]["embedded"] == 1
    code, status = read(workdir, "status")
    assert code == 0 and status["embedder"]["settled"] is False
    assert status["embedder"]["built_with"] == "hashing (384 dimensions)"
    for config in ("shop.toml", "wider.toml"):
        code, refused = read(workdir, "query", "running shoe", config=config)
        assert code == 1 and "holds vectors of two embedders" in refused["error"], refused
        assert "until a sync completes" in refused["error"]
    # A sync that completes settles it, with the embedder it completed with.
    assert read(workdir, "sync", str(catalog), config="wider.toml")[0] == 0
    code, status = read(workdir, "status")
    assert status["embedder"]["settled"] is True and status["embedder"]["dimension"] == 512
    code, matches = read(workdir, "query", "running shoe", "-k", "1")
    assert code == 0 and [m["id"] for m in matches] == ["1"]


def test_another_embedder_on_a_read_only_command_is_refused_without_re_embedding(workdir: Path, built: BuiltEmbedders):
    catalog = write_jsonl(workdir / "c.jsonl", SHOES)
    assert invoke(workdir, "sync", str(catalog), "--embedder", "hashing")[0] == 0
    expected = (
        "the index of catalog 'shop' was built with hashing (384 dimensions); --embedder minilm would not match "
        "it: drop --embedder to use the one it was built with"
    )
    for command in (["status"], ["runs"], ["export"], ["query", "running shoe"]):
        code, payload = read(workdir, *command, "--embedder", "minilm")
        assert (code, payload) == (3, {"error": expected, "exit_code": 3}), command
        assert "sync" not in payload["error"] and "embed " not in payload["error"]
    # The one it was built with may be named.
    assert read(workdir, "status", "--embedder", "hashing")[0] == 0
    assert read(workdir, "query", "running shoe", "--embedder", "hashing")[0] == 0
    assert built.kinds == ["hashing", "hashing"]  # the sync's and the last query's: nothing else was built
    run_id = read(workdir, "runs")[1][0]["run_id"]
    result = runner.invoke(
        cli.app, ["runs", run_id, "--embedder", "minilm", "--state-dir", str(workdir / "state"), "--json"]
    )
    assert result.exit_code == 3 and orjson.loads(result.stdout)["error"] == expected


def test_a_config_naming_another_embedder_is_refused_by_query_only(workdir: Path, built: BuiltEmbedders):
    catalog = write_jsonl(workdir / "c.jsonl", SHOES)
    assert invoke(workdir, "sync", str(catalog), "--embedder", "hashing")[0] == 0
    (workdir / "minilm.toml").write_text(CONFIG + '[embedder]\nkind = "minilm"\n')
    code, payload = read(workdir, "query", "running shoe", config="minilm.toml")
    assert code == 3
    assert payload["error"] == (
        "the index of catalog 'shop' was built with hashing (384 dimensions); the config's embedder minilm "
        "(384 dimensions) would not match it: pass --embedder hashing to query it with the one it was built with"
    )
    assert "sync" not in payload["error"]
    code, matches = read(workdir, "query", "running shoe", "-k", "1", "--embedder", "hashing", config="minilm.toml")
    assert code == 0 and [m["id"] for m in matches] == ["1"]
    # A config changed ahead of the next sync does not stop the operator's view, nor a backup.
    assert read(workdir, "status", config="minilm.toml")[0] == 0
    assert read(workdir, "export", config="minilm.toml")[0] == 0
    # The config that names the embedder the index was built with is used as it is.
    (workdir / "hashing.toml").write_text(CONFIG + '[embedder]\nkind = "hashing"\n')
    assert read(workdir, "query", "running shoe", config="hashing.toml")[0] == 0


def test_before_a_complete_sync_query_and_export_say_nothing_was_synced(workdir: Path, built: BuiltEmbedders):
    for command in (["query", "shoe"], ["export"]):
        code, payload = read(workdir, *command)
        assert code == 1 and payload["error"].startswith("nothing synced yet: no state for catalog 'shop'")
    catalog = write_jsonl(workdir / "c.jsonl", SHOES)
    # A sync of some products only: the index is not wholly built with any embedder yet.
    assert invoke(workdir, "sync", str(catalog), "--embedder", "hashing", "--ids", "1")[0] == 0
    code, payload = read(workdir, "query", "shoe")
    assert code == 1 and payload["error"] == (
        "nothing synced yet: catalog 'shop' has had no complete sync, so which embedder built its index is not "
        "recorded; pass --embedder to query what is there"
    )
    code, matches = read(workdir, "query", "running shoe", "--embedder", "hashing")
    assert code == 0 and [m["id"] for m in matches] == ["1"]
    code, rows = read(workdir, "export")
    assert code == 0 and [row["id"] for row in rows] == ["1"]


def test_a_state_that_recorded_only_the_model_id_is_queried_with_the_kind_that_makes_it(
    workdir: Path, built: BuiltEmbedders
):
    catalog = write_jsonl(workdir / "c.jsonl", SHOES)
    assert invoke(workdir, "sync", str(catalog), "--embedder", "hashing")[0] == 0
    store = SqliteStateStore(workdir / "state" / "shop" / "state.sqlite", "shop")
    recorded = store.index_settings()
    assert recorded is not None and recorded.embedder is not None
    # As a state written before the embedder itself was recorded: the model id and template only.
    store.record_index_settings(IndexSettings(embedding_model=recorded.embedding_model, text_template="t"))
    code, matches = read(workdir, "query", "running shoe", "-k", "1")
    assert code == 0 and [m["id"] for m in matches] == ["1"]
    code, payload = read(workdir, "export", "--embedder", "minilm")
    assert code == 3 and "built with catalog-sync/hashing-v2-384; --embedder minilm would not" in payload["error"]
    # The recorded kind and settings now make another model (a new version of the embedder): said, not guessed.
    store.record_index_settings(recorded.model_copy(update={"embedding_model": "catalog-sync/hashing-v1-384"}))
    store.close()
    code, payload = read(workdir, "query", "running shoe")
    assert code == 1 and payload["error"] == (
        "the index of catalog 'shop' was built with hashing (384 dimensions) as catalog-sync/hashing-v1-384; that "
        "embedder makes catalog-sync/hashing-v2-384 now, whose vectors cannot be compared with the index's (the "
        "next sync re-embeds the index with it)"
    )
