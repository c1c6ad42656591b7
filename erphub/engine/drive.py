"""Drive a run to its end: from the cursor (`run_pipeline`), or over records in hand (`deliver_records`).

Records in hand are pushed webhook events or, for `replay_dead_letters`, dead letters rebuilt from their
kept payloads; both go through the same batches and never move the cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

from erphub.core.errors import PipelineBusy, RunFailed
from erphub.core.records import Cursor, Page, Record
from erphub.engine.gcpolicy import run_collection
from erphub.engine.pipeline import Pipeline
from erphub.engine.prefetch import prefetched
from erphub.engine.run import PipelineRun
from erphub.engine.window import BatchWindow
from erphub.store import RunInfo, Store


def _begin(run: PipelineRun) -> None:
    """Start a run; a pipeline busy for longer than its lease wait is a failed run, not a crash."""
    try:
        run.begin()
    except PipelineBusy as exc:
        raise RunFailed(str(exc), pipeline=run.pipeline.name, run_id="-", cause=exc) from None


def drive_run(run: PipelineRun, work: Callable[[], None], on_start: Callable[[str], None] | None = None) -> RunInfo:
    """Begin, work, finish. Whatever stops the work is recorded on the run and releases the pipeline:
    an error becomes RunFailed (the CLI's exit 1, the worker's retry), an interrupt is re-raised.
    *on_start* learns the run id as soon as the store gave it (the Prefect flow names its flow run)."""
    _begin(run)
    if on_start is not None:
        on_start(run.run_id)
    try:
        with run_collection():
            work()
    except Exception as exc:
        info = run.finish(exc)
        raise RunFailed(info.error or str(exc), pipeline=run.pipeline.name, run_id=run.run_id, cause=exc) from None
    except BaseException as exc:  # Ctrl-C, SystemExit: still leave a finished run and a free pipeline
        run.finish(exc)
        raise
    return run.finish()


def _process(run: PipelineRun, page: Page) -> object:
    return run.process_page(page)


def _each_page(page_step: Callable[[PipelineRun, Page], object]) -> Callable[[PipelineRun, Iterator[Page]], None]:
    def work(run: PipelineRun, pages: Iterator[Page]) -> None:
        for page in pages:
            page_step(run, page)
    return work


def run_pipeline(pipeline: Pipeline, store: Store, *, trigger: str = "manual", since: datetime | None = None,
                 until: datetime | None = None, full: bool = False,
                 on_progress: Callable[[dict[str, int]], None] | None = None,
                 page_step: Callable[[PipelineRun, Page], object] = _process,
                 on_start: Callable[[str], None] | None = None,
                 pages_step: Callable[[PipelineRun, Iterator[Page]], None] | None = None) -> RunInfo:
    """Run one pipeline to the end; raise RunFailed (after recording the failed run) if it cannot go on.

    `page_step` processes one page; `pages_step`, when given, takes the run's whole page iterator
    instead (the Prefect flow groups pages into a few task runs, each committing page by page).
    """
    run = PipelineRun(pipeline, store, trigger=trigger, full=full, on_progress=on_progress,
                      since=Cursor(since) if since else None, until=Cursor(until, "\uffff") if until else None)

    def work() -> None:
        if pages_step is not None:
            pages_step(run, run.pages())
        elif page_step is not _process:
            _each_page(page_step)(run, run.pages())
        else:
            # The plain engine: the next page is read while this one is mapped and written, batches are
            # written concurrently and committed in order (engine.window, engine.prefetch).
            with BatchWindow(run) as window, prefetched(run.pages()) as pages:
                for page in pages:
                    run.submit_page(page, window)

    return drive_run(run, work, on_start)


def deliver_records(pipeline: Pipeline, store: Store, records: Sequence[Record], *,
                    trigger: str = "webhook", rewrite: bool = False) -> RunInfo:
    """Map and deliver records in hand, in batches, without touching the cursor.

    `trigger` names the run; "replay" also marks the dead letters it delivers as replayed. `rewrite`
    writes records even when their link says the target already has them (reconcile's repair).
    """
    run = PipelineRun(pipeline, store, trigger=trigger, rewrite=rewrite)

    def work() -> None:
        with BatchWindow(run) as window:
            for start in range(0, len(records), pipeline.batch_size):
                window.submit(run.prepare(records[start:start + pipeline.batch_size], None))

    return drive_run(run, work)


# A letter kept without the record's change time (written before the store kept one) replays as
# the oldest possible version: its link then never claims a change time the record did not have,
# so the next read of a newer version is delivered, not taken for stale.
UNKNOWN_CHANGE_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def dead_letter_records(store: Store, pipeline: str, ids: Sequence[int] | None = None) -> list[Record]:
    """The open dead letters of a pipeline (all, or these ids) as records again, from their kept payloads.

    Each record keeps its own change time (`source_updated_at`), never the letter's creation time.
    """
    letters = store.list_dead_letters(pipeline=pipeline, status="open", limit=100_000, ids=ids)
    return [Record(letter.source_id, letter.source_updated_at or UNKNOWN_CHANGE_TIME, letter.source_payload)
            for letter in letters]


def replay_dead_letters(pipeline: Pipeline, store: Store, ids: Sequence[int] | None = None) -> RunInfo:
    """Send open dead letters of a pipeline through mapping and delivery again, from their kept payloads."""
    return deliver_records(pipeline, store, dead_letter_records(store, pipeline.name, ids), trigger="replay")
