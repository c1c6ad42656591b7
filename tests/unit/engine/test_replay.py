"""`erphub dlq replay` over in-memory systems: the fix made in the source is what is delivered, and a
replayed record keeps its own change time, so a later, genuinely newer version is never taken for stale."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from erphub.cli.main import app
from erphub.config.loader import load_config
from erphub.connectors.memory import memory_system
from erphub.core.outcomes import ErrorClass, Stage
from erphub.engine import replay, run_pipeline
from erphub.runtime import Hub
from erphub.store import BatchCommit, NewDeadLetter

MAPPING = """\
source: customer
target: customer
key: number
fields:
  number: {from: code}
  name: {from: name, validate: {required: true}}
"""


def make_hub(tmp_path: Path, tag: str) -> Hub:
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    (tmp_path / "hub.yaml").write_text(f"""\
store: {{url: "sqlite:///state.db"}}
systems:
  crm: {{connector: memory, settings: {{system: crm-{tag}, entities: {{customer: code}}}}}}
  erp: {{connector: memory, settings: {{system: erp-{tag}, entities: {{customer: number}}}}}}
pipelines:
  p:
    source: {{system: crm, entity: customer}}
    target: {{system: erp, entity: customer}}
    mapping: m.yaml
""", encoding="utf-8")
    return Hub(load_config(tmp_path / "hub.yaml"))


def test_a_kept_letter_without_a_change_time_never_hides_a_newer_version(tmp_path: Path) -> None:
    crm, erp = memory_system("crm-replay-time"), memory_system("erp-replay-time")
    old = crm.put("customer", {"code": "C1", "name": "old name"})
    with make_hub(tmp_path, "replay-time") as hub:
        # An inbox letter as older versions wrote them: no source change time kept.
        hub.store.commit_batch(BatchCommit("p", "inbox-1", dead_letters=[NewDeadLetter(
            source_id=old.id, source_payload=old.data, mapped_payload=None, stage=Stage.INBOX,
            error_class=ErrorClass.INBOX_GAVE_UP, error_code="max_attempts", message="gave up")]),
            hub.pipeline("p").endpoints)
        outcome = replay(hub.pipeline("p"), hub.store, kept=True)
        assert outcome.run is not None and outcome.run.counts["created"] == 1 and outcome.failed == []
        # The CRM record is then edited (its change time is after the original, before the replay's clock).
        crm.put("customer", {"code": "C1", "name": "new name"}, record_id=old.id)
        counts = run_pipeline(hub.pipeline("p"), hub.store).counts
    assert counts["updated"] == 1, counts
    [record] = erp.all("customer")
    assert record.data["name"] == "new name"


def test_replay_reports_failed_and_exits_1_while_letters_stay_open(tmp_path: Path) -> None:
    crm, erp = memory_system("crm-replay-failed"), memory_system("erp-replay-failed")
    crm.put("customer", {"code": "C1", "name": "ok"})
    broken = crm.put("customer", {"code": "C2", "name": ""})
    with make_hub(tmp_path, "replay-failed") as hub:
        assert run_pipeline(hub.pipeline("p"), hub.store).counts["dead_lettered"] == 1
    args = ["dlq", "replay", "--pipeline", "p", "--json", "--config", str(tmp_path / "hub.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    [outcome] = json.loads(result.stdout)
    assert (outcome["status"], outcome["failed"], outcome["source"]) == ("failed", 1, "fetched")
    crm.put("customer", {"code": "C2", "name": "fixed in the CRM"}, record_id=broken.id)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["failed"] == 0
    assert sorted(r.data["name"] for r in erp.all("customer")) == ["fixed in the CRM", "ok"]
