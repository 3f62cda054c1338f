"""What the leader among the servers runs (services/leader.py): the source monitor (with sources.yaml and
the restore at start), the scan schedule, the webhook sender, the watches and, in scale-out mode, the
task engine's reconciler. Made afresh at every promotion."""

from __future__ import annotations

from pathlib import Path

from mediamesh.catalog.events import Event
from mediamesh.context import Context
from mediamesh.services.engine import Reconciler
from mediamesh.services.jobs import JobRunner
from mediamesh.services.leader import Duty
from mediamesh.services.lifecycle import SourceManager
from mediamesh.services.scan_runner import ScanQueue
from mediamesh.services.scheduler import Scheduler
from mediamesh.services.watch import WatchManager
from mediamesh.services.webhooks import WebhookSender


class _Sources:
    """The source monitor as a duty: sources.yaml applied, then every source restored and probed."""

    def __init__(self, manager: SourceManager, declared: Path | None) -> None:
        self.manager = manager
        self.declared = declared

    def start(self) -> None:
        self.manager.start(self.declared)

    def stop(self) -> None:
        self.manager.stop()


class LeaderDuties:
    def __init__(self, ctx: Context, scans: ScanQueue, runner: JobRunner, declared: Path | None) -> None:
        self.ctx = ctx
        self.scans = scans
        self.runner = runner
        self.declared = declared
        self.manager: SourceManager | None = None
        self.scheduler: Scheduler | None = None
        self.sender: WebhookSender | None = None
        self.watches: WatchManager | None = None

    def make(self) -> list[Duty]:
        ctx = self.ctx
        self.manager = SourceManager(ctx, ctx.settings.health_interval)
        self.scheduler = Scheduler(ctx, self.scans)
        self.sender = WebhookSender(ctx)
        # Live changes: notifications or polls become scans of the folders that changed.
        self.watches = WatchManager(ctx, wake=self.runner.wake)
        duties: list[Duty] = [
            _Sources(self.manager, self.declared),
            self.scheduler,
            self.sender,
            self.watches,
        ]
        if ctx.catalog.dispatch:
            duties.append(Reconciler(ctx))
        return duties

    def wake_sender(self, events: list[Event] | None = None) -> None:
        if self.sender is not None:
            self.sender.wake(events)
