"""The `hookstream` command. Settings are loaded here, once, and handed down.

One module per command group; heavy imports wait inside the commands, so `--help` is fast.
Nothing else in hookstream imports this package.
"""

from __future__ import annotations

import click

from hookstream.cli import (
    broker,
    console,
    destinations,
    dlq,
    events,
    lanes,
    pipeline,
    replay,
    topics,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hookstream")
def main() -> None:
    """hookstream: a webhook gateway on Kafka."""


for command in (
    broker.kafka,
    topics.topics,
    pipeline.ingress,
    pipeline.worker,
    pipeline.run,
    pipeline.send,
    pipeline.keygen,
    pipeline.demo,
    dlq.dlq,
    events.events,
    lanes.lanes,
    replay.replay,
    destinations.destinations,
    console.console,
):
    main.add_command(command)
