"""Run a pipeline: plain Python, no Prefect (erphub.flows wraps a run page by page).

    pipeline   Pipeline: the runtime pieces of one configured pipeline (and PlanLike, what it needs of a plan)
    run        PipelineRun: one run, batch by batch (map -> classify -> deliver -> commit)
    drive      run_pipeline (from the cursor), deliver_records (records in hand: webhooks, replays), drive_run
    twoway     two-way fields: the pure rules, and their use on one batch (echoes, conflicts)
    writeback  the target's number written back into the source record
    lease      one run of a pipeline at a time: wait, renew, release
    items      Classified: a mapped record that needs a write, with its link
"""

from erphub.core.outcomes import OUTCOMES
from erphub.engine.drive import dead_letter_records, deliver_records, drive_run, replay_dead_letters, run_pipeline
from erphub.engine.pipeline import Pipeline, PlanLike
from erphub.engine.run import PipelineRun
from erphub.engine.twoway import TwoWaySpec

__all__ = [
    "OUTCOMES",
    "Pipeline",
    "PipelineRun",
    "PlanLike",
    "TwoWaySpec",
    "dead_letter_records",
    "deliver_records",
    "drive_run",
    "replay_dead_letters",
    "run_pipeline",
]
