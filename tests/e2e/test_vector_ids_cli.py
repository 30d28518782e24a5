"""Ids through the embedded default's command line: non-ASCII, 512 bytes, empty after trimming, look-alikes; and
what `sync`, `status` and `runs` say about a product the index refused."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from pinecone import Pinecone
from typer.testing import CliRunner

from catalog_sync import cli
from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.local.files import FileCatalogSource, LocalRunArtifacts
from catalog_sync.adapters.local.memory_queue import InProcessChangeQueue
from catalog_sync.adapters.local.sqlite_state import SqliteEmbeddingCache, SqliteStateStore
from catalog_sync.adapters.pinecone.index import PineconeVectorIndex
from catalog_sync.models.config import load_config
from catalog_sync.services.sync import SyncService
from tests.conftest import product, write_jsonl
from tests.doubles.catalog_config import catalog_toml
from tests.doubles.pinecone_server import PineconeDouble

runner = CliRunner()
CONFIG = catalog_toml(max_metadata_bytes=60000)
VALID = ["café-1", "商品-42", "🎉", "\u04401", "p1", "P1", "~abc", "é" * 256, "x" * 512, 'it\'s "quoted"']
EMPTY = ["   ", "\u3000", "\u200b", " \ufeff "]
TOO_LONG = ["é" * 256 + "x", "x" * 513]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "shop.toml").write_text(CONFIG)
    embedder = HashingEmbedder()
    monkeypatch.setattr(cli, "build_embedder", lambda settings: embedder)
    return tmp_path


def invoke(workdir: Path, *args: str, json_output: bool = True) -> tuple[int, str]:
    state = [] if args[0] == "validate" else ["--state-dir", str(workdir / "state")]
    options = ["--json"] if json_output else []
    result = runner.invoke(cli.app, [*args, "--config", str(workdir / "shop.toml"), *state, *options])
    return result.exit_code, result.stdout


def last_json(stdout: str) -> dict:
    return orjson.loads(stdout.splitlines()[-1])


def test_every_id_the_validator_accepts_syncs_and_reads_back_as_itself(workdir: Path):
    records = [product(pid, description=f"item {n}") for n, pid in enumerate(VALID)]
    invalid = [product(pid) for pid in [*EMPTY, *TOO_LONG, "cafe\u0301-1"]]
    catalog = write_jsonl(workdir / "catalog.jsonl", [*records, *invalid])

    code, stdout = invoke(workdir, "validate", str(catalog))
    reasons = [problem["reason"] for problem in last_json(stdout)["problems"]]
    assert code == 3
    assert reasons.count("empty id") == len(EMPTY)
    assert sum("longer than 512 bytes" in reason for reason in reasons) == len(TOO_LONG)
    assert sum(reason.startswith("duplicate id") for reason in reasons) == 1  # NFD café-1 is café-1

    code, stdout = invoke(workdir, "sync", str(catalog))
    report = last_json(stdout)
    assert code == 0, report
    assert report["counts"]["added"] == len(VALID) and report["counts"]["invalid"] == len(invalid)
    assert report["pending_after"] == 0 and report["rejections"] == []

    code, stdout = invoke(workdir, "export", json_output=False)
    exported = {row["id"]: row for row in map(orjson.loads, stdout.splitlines())}
    assert code == 0 and set(exported) == set(VALID)
    assert exported["\u04401"]["metadata"]["title"] == "Product \u04401"

    code, stdout = invoke(workdir, "query", "item 3", "-k", "20")
    assert code == 0 and {match["id"] for match in last_json(stdout)} == set(VALID)
    code, stdout = invoke(workdir, "query", "anything", "-k", "3", "--filter", "title=Product café-1")
    assert [match["id"] for match in last_json(stdout)] == ["café-1"]

    code, stdout = invoke(workdir, "status")
    status = last_json(stdout)
    assert code == 0 and status["pending"] == 0 and status["rejected"] == 0


def test_sync_status_and_runs_show_the_product_the_index_refused(workdir: Path):
    """The sync service on the CLI's state, writing to Pinecone (the double, through the real SDK): the index
    refuses one product's metadata (over Pinecone's 40 KB, which this configuration allows); the others commit."""
    config = load_config(workdir / "shop.toml")
    records = [product(f"sku-{i}") for i in range(30)]
    big = product("café-big", availability="a" * 45_000)
    state_path = workdir / "state" / "shop" / "state.sqlite"
    with PineconeDouble(384) as double:
        index = PineconeVectorIndex(
            host=double.host,
            namespace="shop",
            metadata_fields=list(config.metadata),
            index=Pinecone(api_key="test-key").Index(host=double.host),
        )
        service = SyncService(
            config=config,
            state=SqliteStateStore(state_path, config.name),
            index=index,
            embedder=HashingEmbedder(),
            queue=InProcessChangeQueue(),
            artifacts=LocalRunArtifacts(workdir / "state" / "shop"),
            cache=SqliteEmbeddingCache(workdir / "state" / "embedding-cache.sqlite"),
            batch_size=500,
        )
        report = service.sync(FileCatalogSource(write_jsonl(workdir / "c.jsonl", [*records[:10], big, *records[10:]])))
        assert not report.failed and report.pending_after == 1
        assert [r.product_id for r in report.applied.rejected] == ["café-big"]
        assert len(double.vectors("shop")) == 30
        run_id = report.run.run_id if report.run else ""
        # The next sync sends it again (it is pending) and it is refused again: still reported, nothing else sent.
        again = service.sync(FileCatalogSource(workdir / "c.jsonl"))
        assert [r.product_id for r in again.applied.rejected] == ["café-big"] and again.applied.upserted == 0

    code, stdout = invoke(workdir, "status")
    status = last_json(stdout)
    assert code == 0 and status["pending"] == 1 and status["rejected"] == 1
    [rejection] = status["rejections"]
    assert rejection["product_id"] == "café-big" and "over Pinecone's 40 KB" in rejection["reason"]
    assert any(alert["code"] == "rejected" for alert in status["alerts"])
    code, stdout = invoke(workdir, "status", json_output=False)
    assert "products refused by the index" in stdout and "café-big (upsert)" in stdout

    code, stdout = invoke(workdir, "runs", run_id)
    run = last_json(stdout)
    assert run["status"] == "succeeded" and run["counts"]["applied_rejected"] == 1
    assert run["counts"]["applied_upserted"] == 30 and "café-big" in run["message"]
