"""The `sync_pipeline` flow: one Prefect task per chunk of pages (about `CHUNK_RECORDS` records),
never per record; inside a chunk every page is still mapped, delivered and committed on its own.

Why chunks and not a task per page: a task run costs about 50 ms of Prefect bookkeeping here
(measured: 52 ms per page task, `--engine prefect` at 3x `--engine plain` over 20,000 records);
a chunk of 5,000 records spends that once per several seconds of work. Nothing is kept as a Prefect
result (`persist_result=False`): erphub's store holds the run's outcome, and Prefect's copy of a
PipelineRun or a page would only cost serialisation and disk.

Retries live in one layer per failure kind: tenacity retries single HTTP calls inside connectors;
the chunk task retries only when the whole target stayed unreachable after those (TransientError),
and a retry starts again at the page that failed, never at a page already committed (links would
make that idempotent, but it would count the page twice). Anything else fails the run, with the
cursor left at the last committed page. A source that fails mid-read is never "retried" into a
silently shortened read: the chunk ends at the failed read and the flow raises the error, outside
any task.

Inside a chunk the engine works as `--engine plain` does (engine.window, engine.prefetch): the
flow's reader thread reads ahead while a task writes, and a task writes the batches of its pages
concurrently (up to the target's `max_concurrency`), committing them in order. A task takes its
chunk's pages as they are read (`chunks_as_read`): its first batch is written once the first page
is there. Before, each chunk was read whole before its task started, so the writes of a run began
only after its first 5,000 records were read, and each task waited for its whole chunk.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import prefect.flow_engine
import structlog
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext, TaskRunContext
from prefect.states import State
from prefect.utilities.annotations import quote

from erphub.config.loader import load_config
from erphub.core.errors import TransientError
from erphub.core.records import Page
from erphub.engine import PipelineRun, run_pipeline
from erphub.engine.items import BatchWork
from erphub.engine.prefetch import prefetched
from erphub.engine.window import BatchWindow
from erphub.monitoring.logging import ensure_logging
from erphub.runtime import Hub

# Set by the CLI in the same process to draw its progress bar; a flow parameter could not carry it
# (Prefect records parameters as JSON).
progress_hook: Callable[[dict[str, int]], None] | None = None
# Set by the CLI in the same process: the Hub it checked the config with (pipelines built, mappings
# compiled, connectors started). A flow run of that config uses it rather than building its own.
given_hub: Hub | None = None

log = structlog.get_logger("erphub.flows")

T = TypeVar("T")


def _heartbeats_without_join() -> bool:
    """Prefect's sync flow engine (3.9) joins its heartbeat thread when a flow run ends; that thread
    sleeps in steps of 1 s, so every flow run waited 0-1 s for it (0.84 s measured, py-spy and
    cProfile of `erphub run --engine prefect`). Prefect's async engine does not join it
    (`_send_heartbeats(engine, join_on_exit=False)`): the thread is a daemon, sees the stop flag at
    its next step and emits nothing after it. Here the sync engine does the same. Heartbeats
    themselves stay (the crash automation of `erphub deploy` needs them). Checked by
    tests/flows/test_attach_and_overhead.py, so that a Prefect that renames it fails a test."""
    send = getattr(prefect.flow_engine, "_send_heartbeats", None)
    if send is None or isinstance(send, functools.partial):
        return isinstance(send, functools.partial)
    if "join_on_exit" not in inspect.signature(send).parameters:
        return False
    prefect.flow_engine._send_heartbeats = functools.partial(send, join_on_exit=False)
    return True


HEARTBEATS_UNJOINED = _heartbeats_without_join()


def preload() -> None:
    """Import now what Prefect imports on a flow's first call (its flow engine; FastAPI's encoder,
    for the parameters): about 0.5 s, spent while the embedded server starts instead of after."""
    import fastapi.encoders  # noqa: F401
    import prefect.flow_engine  # noqa: F401


def flow_run_name(pipeline: str, run_id: str) -> str:
    return f"{pipeline}-{run_id}"


def run_tags(pipeline: str, run_id: str) -> list[str]:
    return [f"erphub-run:{run_id}", f"erphub-pipeline:{pipeline}"]


def name_flow_run(pipeline: str, run_id: str) -> None:
    """Give the Prefect flow run erphub's run id (name and tags): the Prefect UI, `erphub logs RUN_ID`
    and `erphub status` then meet. A Prefect API hiccup here never fails the run."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    flow_run = context.flow_run
    name, tags = flow_run_name(pipeline, run_id), sorted({*flow_run.tags, *run_tags(pipeline, run_id)})
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, name=name, tags=tags)
    except Exception as exc:
        log.warning("could not name the flow run", flow_run_id=str(flow_run.id), error=str(exc))
        return
    flow_run.name, flow_run.tags = name, tags
    # Prefect's own lines of this flow run carry flow_run_id (their flow_run_name was fixed when the
    # engine started): erphub's lines carry it too, so `erphub logs RUN_ID` finds both.
    structlog.contextvars.bind_contextvars(flow_run_id=str(flow_run.id))


def _only_outages(task: Any, task_run: Any, state: State[Any]) -> bool:
    try:
        state.result()
    except TransientError:
        return True
    except Exception:
        return False
    return False


# Records per task run: about a second of work unthrottled (6,600 records/s into the Kingdee sandbox
# here), five at the demo's quotas, while a task run costs Prefect about 6 ms (40 tasks on a running
# server, 2026-12-07) and each chunk's end waits for its last writes; the Prefect UI shows progress as
# the chunks complete. A chunk holds only the pages of the batches in flight, so size costs no memory.
CHUNK_RECORDS = 5000


@dataclass
class Released:
    """What a chunk has let go of: its first `pages` pages, holding `batches` batches and `records` records."""

    pages: int = 0
    batches: int = 0
    records: int = 0


@dataclass
class Chunk:
    """Pages for one task run. `done` counts the chunk's batches committed (its pages cut by the
    pipeline's `batch_size`, in order), so a retry resumes at the first batch not committed.

    A chunk with a `source` takes its pages from it while its task runs (`taken`: the pages it has,
    then the source's next ones until it holds `size` records): its first batch is written as soon
    as its first page is read, not after the whole chunk. A read error ends the chunk (`read_error`)
    instead of failing its task: the flow raises it, outside any task, so it is never retried.

    A page whose batches are all committed is let go (`let_go`): a retry never needs it again, so a
    task holds the pages of the batches in flight, not its whole chunk. `pages` are the pages held;
    `released` counts the pages, batches and records let go before them."""

    pages: list[Page]
    done: int = 0
    # The run's counts without those of the batches from `done` on: a retry counts each of them once.
    counts_before: Counter[str] | None = field(default=None, repr=False)
    source: Iterator[Page] | None = field(default=None, repr=False)
    size: int = 0
    read_error: Exception | None = field(default=None, repr=False)
    released: Released = field(default_factory=Released, repr=False)

    @property
    def records(self) -> int:
        """Records of the chunk: those let go and those held."""
        return self.released.records + sum(len(page.records) for page in self.pages)

    def taken(self) -> Iterator[Page]:
        """Every page of the chunk still held, in order, then new ones from its source."""
        held = self.records
        index = self.released.pages  # of the chunk's pages, counting those let go meanwhile
        while True:
            if index < self.released.pages + len(self.pages):
                index += 1
                yield self.pages[index - 1 - self.released.pages]
                continue
            if self.source is None or held >= self.size:
                return
            try:
                page = next(self.source)
            except StopIteration:
                self.source = None
                return
            except Exception as exc:  # the source failed: the chunk ends here, the flow raises it
                self.source, self.read_error = None, exc
                return
            self.pages.append(page)
            held += len(page.records)

    def let_go(self, committed: int, batches_of: Callable[[Page], int]) -> None:
        """Drop the leading pages all of whose batches are among the first `committed`."""
        while self.pages and self.released.batches + (batches := batches_of(self.pages[0])) <= committed:
            page = self.pages.pop(0)
            self.released.pages += 1
            self.released.batches += batches
            self.released.records += len(page.records)


class CountingWindow(BatchWindow):
    """engine.window's BatchWindow (writes of several batches at once, commits in order) that counts
    its commits and keeps the batches given to it and not committed yet (`uncommitted`, in order): a
    committed batch is let go, so a task holds a few batches' records and links, not its chunk's."""

    def __init__(self, run: PipelineRun) -> None:
        super().__init__(run)
        self.uncommitted: deque[BatchWork] = deque()
        self.committed = 0

    def submit(self, work: BatchWork) -> None:
        self.uncommitted.append(work)  # before its start: a failure while it waits for a slot leaves it uncommitted
        super().submit(work)
        if self._pool is None:  # one batch at a time: committed inside submit
            self._committed_one()

    def _commit_oldest(self) -> None:
        super()._commit_oldest()
        self._committed_one()

    def _committed_one(self) -> None:
        self.uncommitted.popleft()
        self.committed += 1


@task(name="sync-pages", retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=_only_outages,
      cache_policy=NO_CACHE, persist_result=False, log_prints=False)
def sync_pages(run: PipelineRun, chunk: Chunk) -> dict[str, int]:
    """Map, deliver and commit the chunk's batches from the first one not yet committed, through one
    batch window (as the plain engine: consecutive batches written concurrently, committed in order).
    A failure leaves `done` at the first batch not committed."""
    context = TaskRunContext.get()
    if context is not None and context.task_run.run_count > 1 and chunk.counts_before is not None:
        run.counts.clear()  # the batches a retry does again are counted once
        run.counts.update(chunk.counts_before)
    window = CountingWindow(run)
    complete = False
    try:
        with window:
            index = chunk.released.batches  # of the chunk's batches, in order
            for page in chunk.taken():
                for page_end, (records, checkpoint) in _marked_last(run.page_batches(page)):
                    if index >= chunk.done:
                        window.submit(run.prepare(records, checkpoint))
                        if page_end:
                            run.report_progress()
                    index += 1
                chunk.let_go(chunk.done + window.committed, run.batch_count)
        complete = True
    finally:  # the window has waited for every write in flight: the counts are final
        chunk.done += window.committed
        chunk.let_go(chunk.done, run.batch_count)
        if not complete:
            # Every count but those of the batches a retry does again. (A snapshot of the counts taken
            # when a page was submitted missed earlier batches' writes still finishing in other threads.)
            again = sum((work.counts for work in window.uncommitted), Counter[str]())
            chunk.counts_before = run.counts - again
    return dict(run.counts)


def chunks_as_read(pages: Iterator[Page], size: int = CHUNK_RECORDS) -> Iterator[Chunk]:
    """Chunks that take their pages from `pages` while their task runs (`Chunk.taken`): each is
    yielded once its first page is read, and the next one only after its task has taken its pages.
    The first page of a chunk is read here, so no task starts for an empty chunk; a read error a
    chunk met is raised here too."""
    source = iter(pages)
    for first in source:
        chunk = Chunk([first], source=source, size=size)
        yield chunk
        if chunk.read_error is not None:
            raise chunk.read_error


def _marked_last(batches: list[T]) -> Iterator[tuple[bool, T]]:
    """Each batch of a page, with whether it is the page's last."""
    for index, batch in enumerate(batches):
        yield index == len(batches) - 1, batch


def chunks(pages: Iterator[Page], size: int = CHUNK_RECORDS) -> Iterator[Chunk]:
    """Consecutive pages grouped until a group holds `size` records (a page is never split), each
    chunk read whole before it is yielded."""
    chunk = Chunk([])
    for page in pages:
        chunk.pages.append(page)
        if chunk.records >= size:
            yield chunk
            chunk = Chunk([])
    if chunk.pages:
        yield chunk


def in_chunks(chunk_task: Any) -> Callable[[PipelineRun, Iterator[Page]], None]:
    """The run's pages through `chunk_task` (sync_pages with the pipeline's retries), a chunk per task run."""
    def work(run: PipelineRun, pages: Iterator[Page]) -> None:
        # The flow's reader thread reads ahead while a task writes (a read error is raised here, in
        # the flow, outside any task).
        ahead = max(2, -(-CHUNK_RECORDS // max(1, run.pipeline.page_size)))
        with prefetched(pages, depth=ahead) as read_ahead:
            for chunk in chunks_as_read(read_ahead):
                # quote(): Prefect would otherwise walk both arguments, the run's whole object graph
                # (its connectors, store, ...) and every record, looking for futures: that walk was
                # most of the 52 ms a page task cost.
                chunk_task(quote(run), quote(chunk), return_state=False)
    return work


@flow(name="sync-pipeline", log_prints=False, validate_parameters=False, persist_result=False)
def sync_pipeline(pipeline: str, config_path: str = "config/demo.yaml", trigger: str = "schedule",
                  since: datetime | None = None, until: datetime | None = None, full: bool = False,
                  page_retries: int | None = None) -> dict[str, Any]:
    """Run one pipeline from its cursor to the newest change; returns the run's summary."""
    given = given_hub
    hub_context: contextlib.AbstractContextManager[Hub]
    if given is not None and str(given.config.path) == config_path:
        loaded, hub_context = given.config, contextlib.nullcontext(given)
    else:
        loaded = load_config(config_path)
        hub_context = Hub(loaded)
    ensure_logging(loaded.secret_values)  # a scheduled run is a fresh process: structured, redacted logs
    retries = loaded.pipeline(pipeline).flow_retries if page_retries is None else page_retries
    delay = loaded.pipeline(pipeline).flow_retry_delay_s
    chunk_task = sync_pages.with_options(retries=retries, retry_delay_seconds=delay)

    with hub_context as hub:
        info = run_pipeline(hub.pipeline(pipeline), hub.store, trigger=trigger, since=since, until=until, full=full,
                            on_progress=progress_hook, pages_step=in_chunks(chunk_task),
                            on_start=lambda run_id: name_flow_run(pipeline, run_id))
    return info.as_dict()
