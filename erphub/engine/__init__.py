"""Run a pipeline: plain Python, no Prefect (erphub.flows wraps a run page by page).

    pipeline   Pipeline: the runtime pieces of one configured pipeline (and PlanLike, what it needs of a plan)
    run        PipelineRun: one run, batch by batch (map -> classify -> deliver -> commit)
    drive      run_pipeline (from the cursor), deliver_records (records in hand: webhooks, replays), drive_run
    twoway     two-way fields: the pure rules (echo, news or conflict, per field)
    twoway_batch  those rules on one batch: what the target has now, the reverse links, held conflicts
    replay     dead letters replayed with the fix: the source record re-read by id (or the kept payload)
    deletions  a source deletion applied to the target as the pipeline's `on_delete` says
    writeback  the target's number written back into the source record
    lease      one run of a pipeline at a time: wait, renew, release
    items      Classified: a mapped record that needs a write, with its link
    keys       keys are identities: records that map to another record's target key are key_conflicts
    judge      `--full` compares with the target's current records where the target can tell
"""

from erphub.engine.deletions import apply_deletions, check_on_delete
from erphub.engine.drive import dead_letter_records, deliver_records, drive_run, replay_dead_letters, run_pipeline
from erphub.engine.pipeline import Pipeline, PlanLike
from erphub.engine.replay import ReplayOutcome, replay
from erphub.engine.run import PipelineRun
from erphub.engine.twoway import TwoWaySpec

__all__ = [
    "Pipeline",
    "PipelineRun",
    "PlanLike",
    "ReplayOutcome",
    "TwoWaySpec",
    "apply_deletions",
    "check_on_delete",
    "dead_letter_records",
    "deliver_records",
    "drive_run",
    "replay",
    "replay_dead_letters",
    "run_pipeline",
]
