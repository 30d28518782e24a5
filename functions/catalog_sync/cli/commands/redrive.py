"""`redrive`: dead-lettered change messages back on their queue."""

from __future__ import annotations

from typing import Annotated

import typer

from catalog_sync.cli.application import command
from catalog_sync.cli.console import out, write_json
from catalog_sync.cli.errors import CommandError, ExitCode
from catalog_sync.cli.options import JsonOption


@command
def redrive(
    dead_letter_queue: Annotated[str, typer.Option("--dlq-url", help="The dead-letter queue's URL.")],
    target_queue: Annotated[str, typer.Option("--queue-url", help="The queue to put the messages back on.")],
    limit: Annotated[int | None, typer.Option(min=1, help="Move at most this many messages.")] = None,
    region: Annotated[str | None, typer.Option(help="AWS region (default: the environment's).")] = None,
    json_output: JsonOption = False,
) -> ExitCode:
    """Put dead-lettered change messages back on their queue (after fixing what made them fail)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from catalog_sync.adapters.aws.sqs_queue import redrive_dead_letters

    try:
        sqs = boto3.client("sqs", region_name=region)
        moved = redrive_dead_letters(sqs, dead_letter_url=dead_letter_queue, target_url=target_queue, limit=limit)
    except (BotoCoreError, ClientError) as exc:
        raise CommandError(f"SQS: {exc}", ExitCode.FAILED) from exc
    if json_output:
        write_json({"moved": moved})
    else:
        out.print(f"moved {moved:,} messages back to {target_queue}")
    return ExitCode.OK
