"""Whatever fails mid-sync, the next sync converges: the index ends up equal to the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.local.files import FileCatalogSource
from catalog_sync.bootstrap.local import LocalWorkspace
from catalog_sync.logic.validation import RecordValidator
from catalog_sync.models.changes import RunStatus
from tests.conftest import make_config, product, write_jsonl


class Flaky:
    """Wraps a real adapter; the named method raises for its first `failures` calls."""

    def __init__(self, inner: Any, method: str, failures: int) -> None:
        self._inner = inner
        self._method = method
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name != self._method:
            return attribute

        def flaky(*args: Any, **kwargs: Any) -> Any:
            if self.failures > 0:
                self.failures -= 1
                raise ConnectionError(f"injected failure in {name}")
            return attribute(*args, **kwargs)

        return flaky


def assert_index_equals(workspace: LocalWorkspace, records: list[dict]) -> None:
    validator = RecordValidator(workspace.config)
    expected = {r["sku"]: validator.validate(r["sku"], r) for r in records}
    entries = {e.id: e for e in workspace.index.export()}
    assert set(entries) == set(expected)
    for sku, valid in expected.items():
        assert entries[sku].text == valid.text
        assert entries[sku].metadata == valid.metadata
    assert workspace.state.pending_count() == 0


@pytest.fixture
def workspace(tmp_path: Path) -> LocalWorkspace:
    return LocalWorkspace(tmp_path / "state", make_config(), HashingEmbedder())


V1 = [product(str(i)) for i in range(30)]
V2 = [product(str(i), price=99.0) if i % 3 == 0 else product(str(i), description=f"new {i}") for i in range(25)]


@pytest.mark.parametrize(("method", "failures"), [("upsert", 2), ("update_metadata", 2), ("delete", 2)])
def test_failed_index_writes_stay_pending_and_the_next_sync_converges(
    workspace: LocalWorkspace, tmp_path: Path, method: str, failures: int
):
    service = workspace.service(batch_size=7)
    assert not service.sync(FileCatalogSource(write_jsonl(tmp_path / "v1.jsonl", V1))).failed
    v2 = FileCatalogSource(write_jsonl(tmp_path / "v2.jsonl", V2))
    service.index = service.applier.index = Flaky(workspace.index, method, failures)  # type: ignore[assignment]
    report = service.sync(v2)
    assert report.failed and report.pending_after > 0
    assert report.run is not None and workspace.state.runs(1)[0].status is RunStatus.FAILED
    again = service.sync(v2)
    assert not again.failed
    assert again.diff.resent == report.pending_after - again.diff.counts.deleted
    assert_index_equals(workspace, V2)


def test_crash_after_write_before_commit_re_sends_without_re_embedding(workspace: LocalWorkspace, tmp_path: Path):
    service = workspace.service()
    embedder = workspace.embedder
    assert isinstance(embedder, HashingEmbedder)
    source = FileCatalogSource(write_jsonl(tmp_path / "v1.jsonl", V1))
    service.applier.state = Flaky(workspace.state, "commit", 10)  # type: ignore[assignment]
    report = service.sync(source)
    assert report.failed and workspace.state.pending_count() == 30
    embedded = embedder.texts_embedded
    service.applier.state = workspace.state
    again = service.sync(source)
    assert again.diff.resent == 30 and again.applied.upserted == 30
    assert embedder.texts_embedded == embedded  # the embeddings were cached before the crash
    assert_index_equals(workspace, V1)


def test_lost_queue_is_recovered_by_the_next_sync(workspace: LocalWorkspace, tmp_path: Path):
    service = workspace.service()
    source = FileCatalogSource(write_jsonl(tmp_path / "v1.jsonl", V1))
    service.queue.send = lambda batches, priority: 0  # type: ignore[method-assign]  # the process died here
    service.sync(source)
    assert workspace.index.count() == 0 and workspace.state.pending_count() == 30
    restarted = LocalWorkspace(workspace.root, workspace.config, workspace.embedder)
    report = restarted.service().sync(source)
    assert report.diff.resent == 30
    assert_index_equals(restarted, V1)


def test_changing_the_embedding_dimension_rebuilds_and_re_sends(tmp_path: Path):
    catalog = FileCatalogSource(write_jsonl(tmp_path / "v1.jsonl", V1))
    first = LocalWorkspace(tmp_path / "state", make_config(), HashingEmbedder(384))
    assert not first.service().sync(catalog).failed
    second = LocalWorkspace(tmp_path / "state", make_config(), HashingEmbedder(128))
    service = second.service()
    report = service.sync(catalog)
    assert any("rebuilt" in note for note in report.notes)
    assert any("embedding model changed" in note for note in report.notes)
    assert report.applied.upserted == 30
    assert_index_equals(second, V1)


def test_an_unexpected_error_marks_the_run_failed(workspace: LocalWorkspace, tmp_path: Path):
    service = workspace.service()
    service.artifacts = Flaky(workspace.artifacts, "append_change_log", 1)  # type: ignore[assignment]
    with pytest.raises(ConnectionError):
        service.sync(FileCatalogSource(write_jsonl(tmp_path / "v1.jsonl", V1)))
    run = workspace.state.runs(1)[0]
    assert run.status is RunStatus.FAILED and "injected failure" in (run.message or "")
    service.artifacts = workspace.artifacts
    assert not service.sync(FileCatalogSource(tmp_path / "v1.jsonl")).failed
    assert_index_equals(workspace, V1)


def test_a_diff_larger_than_memory_spills_to_disk_and_still_applies(tmp_path: Path):
    workspace = LocalWorkspace(tmp_path / "state", make_config(), HashingEmbedder())
    service = workspace.service(batch_size=4)
    service.spool_limit = 5
    records = [*V1, product("bad", price="free"), product("bad2", stock="many")]
    report = service.sync(FileCatalogSource(write_jsonl(tmp_path / "v1.jsonl", records)))
    assert not report.failed
    assert report.diff.changes.spilled == 25  # type: ignore[union-attr]
    assert report.diff.counts.invalid == 2
    assert_index_equals(workspace, V1)
    report = service.sync(FileCatalogSource(write_jsonl(tmp_path / "v2.jsonl", V2)))
    assert not report.failed
    assert_index_equals(workspace, V2)


def test_the_index_model_is_recorded_only_after_a_complete_clean_run(tmp_path: Path):
    catalog = FileCatalogSource(write_jsonl(tmp_path / "v1.jsonl", V1))
    first = LocalWorkspace(tmp_path / "state", make_config(), HashingEmbedder(384))
    assert not first.service().sync(catalog).failed
    assert first.state.snapshot().embedding_model == "catalog-sync/hashing-v2-384"

    class Renamed(HashingEmbedder):
        """Same dimension, another model: the index is not rebuilt, only re-embedded."""

        def __init__(self) -> None:
            super().__init__(384)
            self.model_id = "another-model"

    second = LocalWorkspace(tmp_path / "state", make_config(), Renamed())
    partial = second.service().sync(catalog, only_ids=["1"])
    assert partial.applied.upserted == 1
    # Most vectors still come from the old model: the stored setting must not claim otherwise.
    assert second.state.snapshot().embedding_model == "catalog-sync/hashing-v2-384"
    complete = second.service().sync(catalog)
    assert any("embedding model changed" in note for note in complete.notes)
    assert complete.applied.upserted == 29
    assert second.state.snapshot().embedding_model == "another-model"


def test_dispatch_accepts_a_one_shot_iterator(workspace: LocalWorkspace, tmp_path: Path):
    service = workspace.service()
    report = service.plan(FileCatalogSource(write_jsonl(tmp_path / "v1.jsonl", V1)))
    # Record the desired state as a sync would, then dispatch from a generator.
    service.state.record_desired(list(report.diff.changes), [])
    from catalog_sync.services.apply import ApplyStats

    stats = ApplyStats()
    assert service.dispatch_and_apply(iter(list(report.diff.changes)), stats) == []
    assert stats.upserted == 30
