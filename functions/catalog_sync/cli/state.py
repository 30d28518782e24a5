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

from catalog_sync.adapters.local.lance_index import NoLocalIndex
from catalog_sync.adapters.local.sqlite_state import STATE_FILE, SqliteStateStore, catalog_of_run
from catalog_sync.adapters.local.writer_lock import Holder, current_writer
from catalog_sync.bootstrap.local import DEFAULT_ROOT, LocalCatalog, LocalWorkspace, writer_workspace
from catalog_sync.bootstrap.registry import settings_producing
from catalog_sync.cli.console import err
from catalog_sync.cli.errors import CommandError, ExitCode
from catalog_sync.models.changes import RunRecord
from catalog_sync.models.config import CatalogConfig, ConfigError, EmbedderKind, EmbedderSettings, load_config
from catalog_sync.models.index import IndexEmbedder, IndexSettings
from catalog_sync.ports import Embedder, StateStore

DEFAULT_CONFIG_NAMES = ("catalog-sync.toml", "catalog-sync.yaml", "catalog-sync.yml")


def embedder_for(config: CatalogConfig) -> Embedder:
    return embedder_for_settings(config.embedder)


def embedder_for_settings(settings: EmbedderSettings) -> Embedder:
    # Looked up on the package at each call: that is where a test puts its stand-in for the factory.
    from catalog_sync import cli

    return cli.build_embedder(settings)


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
    config: CatalogConfig, state_dir: Path | None, *, writable: bool = False, wait: float = 0.0
) -> Iterator[LocalWorkspace]:
    """The catalog's local state with the config's embedder, for a sync (`writable`) or the dry run of one.

    A writer holds the catalog's writer lock for as long as it uses the workspace (waiting up to `wait` seconds
    for another writer, then WriterBusy); a dry run takes no lock, is never blocked, and creates no state."""
    root = state_root(state_dir)
    if writable:

        def waiting(holder: Holder | None) -> None:
            who = holder.describe() if holder is not None else "another writer"
            err.print(f"[yellow]waiting[/] up to {wait:g} s for the writer of catalog {config.name!r}: {who}")

        with writer_workspace(root, config, embedder_for(config), wait=wait, on_wait=waiting) as found:
            yield found
        return
    if not (root / config.name / STATE_FILE).exists():
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


# ---------------------------------------------------------------- read-only commands: the index's own embedder


def _must_exist(root: Path, config: CatalogConfig) -> None:
    """Readers never create state: a mistyped --state-dir is an error, not a new catalog."""
    if not (root / config.name / STATE_FILE).exists():
        raise CommandError(
            f"nothing synced yet: no state for catalog {config.name!r} under {root} (run `catalog-sync sync` "
            "first, or check --state-dir)",
            ExitCode.FAILED,
        )


def built_with(index: IndexSettings) -> str:
    """The embedder an index was built with, for people: its kind and settings, else (an older record) its model."""
    return index.embedder.describe() if index.embedder is not None else index.embedding_model


def recorded_embedder(index: IndexSettings, base: EmbedderSettings) -> EmbedderSettings | None:
    """The settings that build the embedder the index was built with (where it runs and how it batches: `base`'s,
    a config's); for a state that recorded only the model id, those of the local kind that makes that model from
    `base`; None when none does."""
    if index.embedder is not None:
        return index.embedder.applied_to(base)
    return settings_producing(index.embedding_model, base)


def check_embedder_flag(
    catalog: str, index: IndexSettings | None, flag: EmbedderKind | None, base: EmbedderSettings
) -> None:
    """A read-only command embeds with the index's own embedder, or not at all: --embedder may name that one only
    (BAD_INPUT otherwise, naming both). Before a complete sync nothing is recorded to check it against."""
    if flag is None or index is None:
        return
    recorded = recorded_embedder(index, base)
    if recorded is not None and recorded.kind is flag:
        return
    raise CommandError(
        f"the index of catalog {catalog!r} was built with {built_with(index)}; --embedder {flag.value} would not "
        "match it: drop --embedder to use the one it was built with",
        ExitCode.BAD_INPUT,
    )


def query_embedder(config: CatalogConfig, flag: EmbedderKind | None, index: IndexSettings | None) -> Embedder:
    """The embedder that embeds a query of the index: the one the index was built with (as the state records
    it), whatever the config's default. A --embedder, or a config that names its embedder's kind, must agree with
    it (BAD_INPUT otherwise, naming both); before any complete sync nothing is recorded, and only they can say."""
    if index is None:
        if flag is not None or "kind" in config.embedder.model_fields_set:
            kind = flag or config.embedder.kind
            return embedder_for_settings(config.embedder.model_copy(update={"kind": kind}))
        raise CommandError(
            f"nothing synced yet: catalog {config.name!r} has had no complete sync, so which embedder built its "
            "index is not recorded; pass --embedder to query what is there",
            ExitCode.FAILED,
        )
    if not index.settled:
        raise CommandError(
            f"the index of catalog {config.name!r} holds vectors of two embedders: it was built with "
            f"{built_with(index)} and a sync that did not complete began re-embedding it; no "
            "one embedder can query it until a sync completes",
            ExitCode.FAILED,
        )
    check_embedder_flag(config.name, index, flag, config.embedder)
    recorded = recorded_embedder(index, config.embedder)
    if flag is None and "kind" in config.embedder.model_fields_set:
        named = embedder_for_settings(config.embedder)
        if named.model_id != index.embedding_model:
            remedy = f"pass --embedder {recorded.kind.value}" if recorded is not None else "pass the --embedder"
            described = IndexEmbedder.of(config.embedder, dimension=named.dimension).describe()
            raise CommandError(
                f"the index of catalog {config.name!r} was built with {built_with(index)}; the config's embedder "
                f"{described} would not match it: {remedy} to query it with the one it was built with",
                ExitCode.BAD_INPUT,
            )
        return named
    if recorded is None:
        raise CommandError(
            f"the index of catalog {config.name!r} was built with {index.embedding_model}, which no embedder of this "
            "command line makes with this config: pass the --embedder it was built with",
            ExitCode.BAD_INPUT,
        )
    embedder = embedder_for_settings(recorded)
    if embedder.model_id != index.embedding_model:
        # The same kind and settings make other vectors now (a new version of the embedder).
        raise CommandError(
            f"the index of catalog {config.name!r} was built with {built_with(index)} as {index.embedding_model}; "
            f"that embedder makes {embedder.model_id} now, whose vectors cannot be compared with the index's (the "
            "next sync re-embeds the index with it)",
            ExitCode.FAILED,
        )
    return embedder


@contextmanager
def reader(config: CatalogConfig, state_dir: Path | None, flag: EmbedderKind | None) -> Iterator[LocalCatalog]:
    """The catalog's local state, cache and index, for a command that embeds nothing: no embedder is built; the
    index is opened as it is stored. A --embedder other than the index's is refused."""
    root = state_root(state_dir)
    _must_exist(root, config)
    found = LocalCatalog(root, config)
    try:
        check_embedder_flag(config.name, found.state.index_settings(), flag, config.embedder)
        yield found
    finally:
        found.close()


@contextmanager
def query_workspace(
    config: CatalogConfig, state_dir: Path | None, flag: EmbedderKind | None
) -> Iterator[LocalWorkspace]:
    """The catalog's local state and index with the embedder the index was built with (`query_embedder`)."""
    root = state_root(state_dir)
    _must_exist(root, config)
    recorded = SqliteStateStore(root / config.name / STATE_FILE, config.name)
    try:
        index = recorded.index_settings()
    finally:
        recorded.close()
    reading = LocalWorkspace(root, config, query_embedder(config, flag, index), writable=False)
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
    # What the whole index was last built with (None before a complete sync).
    index: IndexSettings | None = None


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
        settings = load(config, None)
        with reader(settings, state_dir, embedder) as local:
            try:
                vectors = local.index.count()
            except NoLocalIndex:
                vectors = 0
            item = CatalogState(
                settings.name,
                local.state,
                vectors,
                cache_entries=local.cache.count(),
                writer=current_writer(local.directory),
                index=local.state.index_settings(),
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
        items = []
        for name, shards in names.items():
            store = DynamoStateStore(
                dynamodb,
                table=found.table,
                catalog=name,
                shards=state_shards or shards or DEFAULT_SHARDS,
                concurrency=concurrency,
            )
            index = store.index_settings()
            check_embedder_flag(name, index, embedder, EmbedderSettings())
            items.append(CatalogState(name, store, index=index))
        yield label, items


def find_run(
    run_id: str,
    *,
    state_dir: Path | None,
    stack: str | None,
    region: str | None,
    state_shards: int | None,
    embedder: EmbedderKind | None = None,
) -> RunRecord:
    """One run by its id alone: the catalog it belongs to comes from the local catalogs or the stack's table."""
    if stack is None:
        root = state_root(state_dir)
        name = catalog_of_run(root, run_id)
        if name is None:
            raise CommandError(f"no run {run_id!r} in the catalogs under {root}", ExitCode.FAILED)
        store = SqliteStateStore(root / name / STATE_FILE, name)
        try:
            check_embedder_flag(name, store.index_settings(), embedder, EmbedderSettings())
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
            check_embedder_flag(name, dynamo.index_settings(), embedder, EmbedderSettings())
            found = dynamo.find_run(run_id)
    if found is None:
        raise CommandError(f"run {run_id!r} of catalog {name!r} has no record", ExitCode.FAILED)
    return found
