"""How a command finds what it works on: the catalog's config, its local state (a workspace), or the catalogs of a
deployed stack."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog_sync.adapters.local.sqlite_state import STATE_FILE, SqliteStateStore, catalog_of_run
from catalog_sync.adapters.local.writer_lock import Holder, current_writer
from catalog_sync.bootstrap.local import DEFAULT_ROOT, LocalWorkspace, writer_workspace
from catalog_sync.cli.console import err
from catalog_sync.cli.errors import CommandError, ExitCode
from catalog_sync.models.changes import RunRecord
from catalog_sync.models.config import CatalogConfig, ConfigError, EmbedderKind, load_config
from catalog_sync.ports import Embedder, StateStore

DEFAULT_CONFIG_NAMES = ("catalog-sync.toml", "catalog-sync.yaml", "catalog-sync.yml")


def embedder_for(config: CatalogConfig) -> Embedder:
    # Looked up on the package at each call: that is where a test puts its stand-in for the factory.
    from catalog_sync import cli

    return cli.build_embedder(config.embedder)


def _resolve_config(path: Path | None) -> Path:
    if path is not None:
        return path
    from_env = os.environ.get("CATALOG_SYNC_CONFIG")
    if from_env:
        return Path(from_env)
    for name in DEFAULT_CONFIG_NAMES:
        if Path(name).exists():
            return Path(name)
    raise CommandError("no catalog config: pass --config FILE (or set CATALOG_SYNC_CONFIG)", ExitCode.BAD_INPUT)


def load(config_path: Path | None, embedder: EmbedderKind | None) -> CatalogConfig:
    """The catalog's config, with the embedder the command line chose (if it chose one)."""
    try:
        config = load_config(_resolve_config(config_path))
    except ConfigError as exc:
        raise CommandError(str(exc), ExitCode.BAD_INPUT) from exc
    if embedder is not None:
        config = config.model_copy(update={"embedder": config.embedder.model_copy(update={"kind": embedder})})
    return config


def state_root(state_dir: Path | None) -> Path:
    return state_dir or Path(os.environ.get("CATALOG_SYNC_STATE_DIR", str(DEFAULT_ROOT)))


@contextmanager
def workspace(
    config: CatalogConfig,
    state_dir: Path | None,
    *,
    writable: bool = False,
    must_exist: bool = False,
    wait: float = 0.0,
) -> Iterator[LocalWorkspace]:
    """The catalog's local state. Readers never create it: a mistyped --state-dir is an error, not a new catalog.

    A writer holds the catalog's writer lock for as long as it uses the workspace (waiting up to `wait` seconds
    for another writer, then WriterBusy); readers take no lock and are never blocked."""
    root = state_root(state_dir)
    if writable:

        def waiting(holder: Holder | None) -> None:
            who = holder.describe() if holder is not None else "another writer"
            err.print(f"[yellow]waiting[/] up to {wait:g} s for the writer of catalog {config.name!r}: {who}")

        with writer_workspace(root, config, embedder_for(config), wait=wait, on_wait=waiting) as found:
            yield found
        return
    if must_exist and not (root / config.name / "state.sqlite").exists():
        raise CommandError(
            f"no state for catalog {config.name!r} under {root}: run `catalog-sync sync` first, or check --state-dir",
            ExitCode.FAILED,
        )
    if not writable and not must_exist and not (root / config.name / "state.sqlite").exists():
        # A dry run of a catalog never synced: plan against empty state, leaving nothing behind.
        with tempfile.TemporaryDirectory(prefix="catalog-sync-plan-") as scratch:
            planning = LocalWorkspace(Path(scratch), config, embedder_for(config), writable=False)
            try:
                yield planning
            finally:
                planning.close()
        return
    reading = LocalWorkspace(root, config, embedder_for(config), writable=False)
    try:
        yield reading
    finally:
        reading.close()


def check_catalog(path: Path) -> None:
    if not path.exists():
        raise CommandError(f"catalog {path} does not exist", ExitCode.BAD_INPUT)
    if path.is_dir():
        raise CommandError(f"catalog {path} is a folder; name a file (or use `watch` on a folder)", ExitCode.BAD_INPUT)


# ---------------------------------------------------------------- the operator's view: local or deployed


@dataclass
class CatalogState:
    """One catalog's state, wherever it lives; the index and cache counts only where they are cheap (local)."""

    name: str
    state: StateStore
    vectors_in_index: int | None = None
    cache_entries: int | None = None
    # Locally: the sync or watch at work on the catalog right now, if any.
    writer: Holder | None = None


@contextmanager
def _aws_errors() -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    from catalog_sync.adapters.aws.stack import DeploymentError

    try:
        yield
    except DeploymentError as exc:
        raise CommandError(str(exc), ExitCode.FAILED) from exc
    except (BotoCoreError, ClientError) as exc:
        raise CommandError(f"AWS: {exc}", ExitCode.FAILED) from exc


def check_sources(*, stack: str | None, config: Path | None, state_dir: Path | None, catalog: str | None) -> None:
    if stack is not None and (config is not None or state_dir is not None):
        raise CommandError(
            "--stack reads a deployed stack; --config and --state-dir are for the embedded default", ExitCode.BAD_INPUT
        )
    if stack is None and catalog is not None:
        raise CommandError("--catalog goes with --stack (locally, the config names the catalog)", ExitCode.BAD_INPUT)


@contextmanager
def _stack_clients(stack: str, region: str | None) -> Iterator[tuple[Any, Any, Any, str]]:
    """DynamoDB and S3 clients, the stack's table and bucket (from its outputs), and the source label."""
    import boto3

    from catalog_sync.adapters.aws.stack import deployment

    with _aws_errors():
        session = boto3.session.Session(region_name=region)
        found = deployment(session.client("cloudformation"), stack)
        yield session.client("dynamodb"), session.client("s3"), found, f"stack {stack} ({session.region_name})"


@contextmanager
def catalogs(
    *,
    config: Path | None,
    embedder: EmbedderKind | None,
    state_dir: Path | None,
    stack: str | None,
    region: str | None,
    catalog: str | None,
    state_shards: int | None,
) -> Iterator[tuple[str, list[CatalogState]]]:
    """The catalogs to report on, with a label saying where they come from: the configured catalog's local state,
    or every catalog of a deployed stack (those with state in its table or a config in its bucket)."""
    check_sources(stack=stack, config=config, state_dir=state_dir, catalog=catalog)
    if stack is None:
        settings = load(config, embedder)
        with workspace(settings, state_dir, must_exist=True) as local:
            item = CatalogState(
                settings.name,
                local.state,
                local.index.count(),
                cache_entries=local.cache.count(),
                writer=current_writer(local.directory),
            )
            yield f"embedded default ({state_root(state_dir)})", [item]
        return
    from botocore.exceptions import ClientError

    from catalog_sync.adapters.aws.dynamodb_state import DEFAULT_SHARDS, DynamoStateStore
    from catalog_sync.adapters.aws.stack import deployed_catalogs

    with _stack_clients(stack, region) as (dynamodb, s3, found, label):
        try:
            names = deployed_catalogs(dynamodb, s3, table=found.table, bucket=found.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("AccessDenied", "AccessDeniedException"):
                raise
            err.print("[yellow]note:[/] cannot list the configs in the bucket: only catalogs with state are shown")
            names = deployed_catalogs(dynamodb, None, table=found.table, bucket=None)
        if catalog is not None:
            if catalog not in names:
                raise CommandError(f"no catalog {catalog!r} in stack {stack!r}", ExitCode.FAILED)
            names = {catalog: names[catalog]}
        concurrency = int(os.environ.get("CATALOG_SYNC_STATE_CONCURRENCY", "8"))
        yield (
            label,
            [
                CatalogState(
                    name,
                    DynamoStateStore(
                        dynamodb,
                        table=found.table,
                        catalog=name,
                        shards=state_shards or shards or DEFAULT_SHARDS,
                        concurrency=concurrency,
                    ),
                )
                for name, shards in names.items()
            ],
        )


def find_run(
    run_id: str, *, state_dir: Path | None, stack: str | None, region: str | None, state_shards: int | None
) -> RunRecord:
    """One run by its id alone: the catalog it belongs to comes from the local catalogs or the stack's table."""
    if stack is None:
        root = state_root(state_dir)
        name = catalog_of_run(root, run_id)
        if name is None:
            raise CommandError(f"no run {run_id!r} in the catalogs under {root}", ExitCode.FAILED)
        store = SqliteStateStore(root / name / STATE_FILE, name)
        try:
            found = store.find_run(run_id)
        finally:
            store.close()
    else:
        from catalog_sync.adapters.aws import dynamodb_state

        with _stack_clients(stack, region) as (dynamodb, _s3, deployed, _label):
            name = dynamodb_state.catalog_of_run(dynamodb, table=deployed.table, run_id=run_id)
            if name is None:
                raise CommandError(f"no run {run_id!r} in stack {stack!r}", ExitCode.FAILED)
            shards = state_shards or dynamodb_state.registered_catalogs(dynamodb, table=deployed.table).get(
                name, dynamodb_state.DEFAULT_SHARDS
            )
            dynamo = dynamodb_state.DynamoStateStore(dynamodb, table=deployed.table, catalog=name, shards=shards)
            found = dynamo.find_run(run_id)
    if found is None:
        raise CommandError(f"run {run_id!r} of catalog {name!r} has no record", ExitCode.FAILED)
    return found
