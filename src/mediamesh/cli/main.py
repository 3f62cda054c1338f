"""The ``mediamesh`` command: wires the command groups together."""

from __future__ import annotations

import typer

from mediamesh import __version__
from mediamesh.cli import discover, jobs, media, project, scan, serve, source, token, webhook, worker

app = typer.Typer(
    rich_markup_mode=None,
    name="mediamesh",
    help="One catalog for the media scattered over your LAN, without copying a byte.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(source.app, name="source")
app.add_typer(media.app, name="media")
app.add_typer(token.app, name="token")
app.add_typer(project.app, name="project")
app.add_typer(jobs.app, name="jobs")
app.add_typer(media.files_app, name="files")
app.add_typer(webhook.app, name="webhook")
app.add_typer(worker.catalog_app, name="catalog")
app.command("events")(webhook.events)
app.command("import")(project.import_)
app.command("scan")(scan.scan)
app.command("whereis")(media.whereis)
app.command("serve")(serve.serve)
app.command("discover")(discover.discover)
app.command("worker")(worker.worker)
app.command("workers")(worker.workers)


@app.command("version")
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()
