"""The deployed pipeline's diff: a run of a catalog drop, a push or a re-sync (claim, diff, guard, dispatch), its
continuation from a checkpoint when the function ran out of time, and the repairs consumers ask for.

It knows nothing of Lambda events or boto3: the parts come from a PipelineParts (catalog_sync.bootstrap.aws).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from catalog_sync.logic.drops import DropClaim
from catalog_sync.models.changes import RunStatus
from catalog_sync.models.config import ConfigError
from catalog_sync.models.requests import Continuation, SyncMode, SyncRequest
from catalog_sync.ports import PipelineParts, PipelineState, RunChangeSender
from catalog_sync.services.dispatch import Dispatcher, DispatchProgress
from catalog_sync.services.drops import REPAIR_LOOKBACK_RUNS, SupersededDrop, claim_drop, is_superseded, repair_sources
from catalog_sync.services.sync import SyncService
from catalog_sync.services.sync_report import SUPERSEDED_MESSAGE, BadCatalog, SyncReport

# The checkpoint's field holding the drop its run claimed, beside the dispatch's progress.
_CHECKPOINT_CLAIM = "source_claim"


def _never() -> bool:
    return False


class NothingToResume(Exception):
    """A continuation names a run with no checkpoint (a stray or replayed invocation): nothing is done."""


@dataclass
class DiffOutcome:
    """What became of one sync request: `ok` (synced, or held by the guard), `continuing` (near the timeout: a
    new invocation goes on from the checkpoint), `superseded` (a newer drop was synced first: not an error) or
    `bad_input` (the catalog or its config could not be read: nothing changed)."""

    catalog: str
    status: Literal["ok", "continuing", "superseded", "bad_input"]
    report: SyncReport | None = None
    reason: str | None = None

    def summary(self) -> dict[str, Any]:
        """What the diff function answers about this request."""
        report = self.report
        if report is None:
            detail = "reason" if self.status == "superseded" else "error"
            return {"catalog": self.catalog, "status": self.status, detail: self.reason}
        return {
            "catalog": report.catalog,
            "run_id": report.run.run_id if report.run else None,
            "status": "continuing"
            if self.status == "continuing"
            else (report.run.status.value if report.run else "planned"),
            "held": report.guard.held,
            "reason": report.guard.reason,
            "counts": report.diff.counts.model_dump(),
            "quarantine": report.quarantine_location,
            # The config's field names no record had (logic/field_check.py), errors first.
            "config_warnings": [
                problem.model_dump(mode="json", include={"severity", "field", "message"})
                for problem in (report.diff.field_check.problems if report.diff.field_check else [])
            ],
        }


@dataclass
class ResumeOutcome:
    progress: DispatchProgress
    completed: bool  # the continuation completed the run


class DiffRuns:
    """`diff_function`: the function repairs are sent to (None: the invoking function's own ARN, when given)."""

    def __init__(
        self,
        parts: PipelineParts,
        *,
        bucket: str,
        pushes_prefix: str,
        dispatch_window: int,
        diff_function: str | None = None,
    ) -> None:
        self.parts = parts
        self.bucket = bucket
        self.pushes_prefix = pushes_prefix
        self.dispatch_window = dispatch_window
        self.diff_function = diff_function

    def attempt(
        self, request: SyncRequest, *, out_of_time: Callable[[], bool] = _never, function_arn: str | None = None
    ) -> DiffOutcome:
        """`run`, with what a request may meet that is not the pipeline's failure told apart (see DiffOutcome)."""
        try:
            report = self.run(request, out_of_time=out_of_time, function_arn=function_arn)
        except SupersededDrop as exc:
            return DiffOutcome(request.catalog, "superseded", reason=str(exc))
        except (BadCatalog, ConfigError) as exc:
            return DiffOutcome(request.catalog, "bad_input", reason=str(exc))
        continuing = report.dispatch is not None and not report.dispatch.finished
        return DiffOutcome(request.catalog, "continuing" if continuing else "ok", report=report)

    def run(
        self, request: SyncRequest, *, out_of_time: Callable[[], bool] = _never, function_arn: str | None = None
    ) -> SyncReport:
        """`function_arn`: the diff function's own: a dispatch that runs out of time continues in a new invocation
        of it (from the checkpoint: `{"resume": {"catalog", "run_id"}}`), and products a newer drop overtook are
        re-synced by it (see Dispatcher)."""
        parts = self.parts
        config = parts.config(request.catalog)
        state = parts.state(config)
        drops = parts.drops()
        key, version_id = request.key, request.version_id
        newest = state.newest_source() if key is None and request.ids is not None else None
        if newest is not None:  # a re-sync of some products: from the newest catalog object a run has read
            key, version_id = newest[1], newest[2]
        key = key or drops.newest(request.catalog)
        source = drops.source(key, bucket=request.bucket, version_id=version_id)
        claim = claim_drop(state, drops, request, key)
        embedder = parts.embedder(config)
        # The run id names the messages; the run itself is numbered by the state store.
        sender = parts.sender(config, run_id="pending")
        service = SyncService(
            config=config,
            state=state,
            index=parts.index(config),
            embedder=embedder,
            queue=sender,
            artifacts=parts.artifacts(config),
            cache=parts.cache(),
            apply_changes=False,
            on_run_started=lambda run: setattr(sender, "run_id", run.run_id),
            dispatcher=self._dispatcher(state, sender, config.name, claim, function_arn),
            out_of_time=out_of_time,
        )
        # A run the webhook began (it answered with its id) is carried on, unless a retry finds it settled.
        begun = state.find_run(request.run_id) if request.run_id else None
        report = service.sync(
            source, full=request.mode is SyncMode.FULL, force=request.force, only_ids=request.ids, run=begun
        )
        if claim is not None and report.guard.held:
            # A held drop changes nothing: it supersedes no older drop, and repairs do not re-read it.
            state.withdraw_claim(claim)
        if report.dispatch is not None and not report.dispatch.finished:
            report.dispatch.source_modified = claim.modified if claim is not None else None
            self._save_checkpoint(report.dispatch, claim)
            self._continue(function_arn, config.name, report.dispatch.run_id)
        return report

    def has_checkpoint(self, run_id: str) -> bool:
        return self.parts.archive().has_checkpoint(run_id)

    def resume(
        self,
        continuation: Continuation,
        *,
        out_of_time: Callable[[], bool] = _never,
        function_arn: str | None = None,
    ) -> ResumeOutcome:
        """Continue a dispatch that ran out of time, from its checkpoint; NothingToResume if it has none."""
        catalog, run_id = continuation.catalog, continuation.run_id
        if not self.has_checkpoint(run_id):
            raise NothingToResume(f"run {run_id!r} has no checkpoint to resume from")
        config = self.parts.config(catalog)
        state = self.parts.state(config)
        progress, claim = self._load_checkpoint(run_id)
        sender = self.parts.sender(config, run_id)
        dispatcher = self._dispatcher(
            state, sender, config.name, claim, function_arn, modified=None if claim else progress.source_modified
        )
        progress = dispatcher.resume(progress, out_of_time=out_of_time)
        if not progress.finished:
            self._save_checkpoint(progress, claim)
            self._continue(function_arn, catalog, run_id)
            return ResumeOutcome(progress, completed=False)
        run = state.get_run(run_id)
        run.status = RunStatus.DISPATCHED
        run.message = SUPERSEDED_MESSAGE if progress.superseded else None
        if progress.superseded:
            run.counts["undispatched_changes"] = run.counts.get("dispatched_changes", 0) - progress.changes
        run.counts["dispatched_messages"] = progress.messages
        run.counts["dispatched_changes"] = progress.changes
        return ResumeOutcome(progress, completed=state.finish_run(run))

    def request_repair(self, catalog: str, product_ids: list[str]) -> bool:
        """Ask the diff function to re-sync some products now; False when there is none to ask (or nothing to do).

        Each product is re-read from the object its desired state came from (see `repair_sources`).
        """
        if not self.diff_function:
            return False
        state = self.parts.state(self.parts.config(catalog))
        sources = repair_sources(
            state.runs(REPAIR_LOOKBACK_RUNS),
            state.desired_versions(product_ids),
            product_ids,
            bucket=self.bucket,
            pushes_prefix=self.pushes_prefix,
        )
        for key, ids in sources.items():
            # Forced: it puts back what a catalog run the guard let through recorded, deletions included.
            request: dict[str, Any] = {"catalog": catalog, "ids": ids, "force": True}
            if key is not None:
                request["key"] = key
            self.parts.invoke_self(self.diff_function, request)
        return bool(sources)

    def _continue(self, function_arn: str | None, catalog: str, run_id: str) -> None:
        if function_arn is None:
            raise RuntimeError(f"run {run_id!r} ran out of time with no function to continue in")
        self.parts.invoke_self(function_arn, {"resume": {"catalog": catalog, "run_id": run_id}})

    def _dispatcher(
        self,
        state: PipelineState,
        sender: RunChangeSender,
        catalog: str,
        claim: DropClaim | None,
        arn: str | None,
        *,
        modified: float | None = None,
    ) -> Dispatcher:
        def resync(product_ids: list[str]) -> None:
            # From the newest catalog object a run has read, when the re-sync runs (see repair_sources).
            function = self.diff_function or arn
            if function is not None:
                # Forced: the deletions it makes are those the newer catalog's run already made (guard passed).
                self.parts.invoke_self(function, {"catalog": catalog, "ids": product_ids, "force": True})

        return Dispatcher(
            state=state,
            sender=sender,
            archive=self.parts.archive(),
            window=self.dispatch_window,
            superseded=lambda: is_superseded(state, claim, modified=modified),
            resync=resync,
        )

    def _save_checkpoint(self, progress: DispatchProgress, claim: DropClaim | None) -> None:
        """The dispatch's progress, and the drop its run claimed (a continuation must know when it is overtaken)."""
        checkpoint = progress.model_dump(mode="json")
        if claim is not None:
            checkpoint[_CHECKPOINT_CLAIM] = claim.model_dump(mode="json")
        self.parts.archive().save_checkpoint(progress.run_id, orjson.dumps(checkpoint))

    def _load_checkpoint(self, run_id: str) -> tuple[DispatchProgress, DropClaim | None]:
        checkpoint = orjson.loads(self.parts.archive().load_checkpoint(run_id))
        claim = checkpoint.pop(_CHECKPOINT_CLAIM, None)
        return DispatchProgress.model_validate(checkpoint), (
            DropClaim.model_validate(claim) if claim is not None else None
        )
