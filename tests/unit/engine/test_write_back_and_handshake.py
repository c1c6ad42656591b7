"""Write-back of the target's number into the source, and handshake staging tables acknowledged after commit."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from erphub.config.loader import load_config
from erphub.connectors.memory import memory_system
from erphub.core.errors import RunFailed
from erphub.engine import run_pipeline
from erphub.runtime import Hub
from tests.unit.engine.configs import memory_pipeline_config

MAPPING = """\
source: opportunity
target: customer
key: number
filter:
  - when: {path: stage, eq: won}
    reason: only won opportunities become customers
fields:
  number: {from: code}
  name: {from: name, validate: {required: true}}
"""


def test_the_erp_number_is_written_back_and_the_write_back_is_not_an_echo(tmp_path: Path) -> None:
    crm, erp = memory_system("crm-wb"), memory_system("erp-wb")
    for i, stage in enumerate(["won", "won", "lost", "won"]):
        crm.put("opportunity", {"code": f"C{i}", "name": f"机会{i}", "stage": stage})
    config = memory_pipeline_config(tmp_path, "won_opportunities", MAPPING,
                                    source=("crm-wb", "opportunity", "code"), target=("erp-wb", "customer", "number"),
                                    options="write_back: {field: erp_customer_no, value: target_id}")
    with Hub(load_config(config)) as hub:
        first = run_pipeline(hub.pipeline("won_opportunities"), hub.store)
        assert (first.counts["created"], first.counts["skipped"]) == (3, 1)
        erp_ids = {r.data["number"]: r.id for r in erp.all("customer")}
        for record in crm.all("opportunity"):
            assert record.data.get("erp_customer_no") == erp_ids.get(record.data["code"])
        writes = erp.write_calls
        again = run_pipeline(hub.pipeline("won_opportunities"), hub.store)
        assert again.counts["read"] == 3 and again.counts["unchanged"] == 3  # our write-back, read back
        assert erp.write_calls == writes
        third = run_pipeline(hub.pipeline("won_opportunities"), hub.store)
        assert third.counts["read"] == 0


def staging_hub(tmp_path: Path) -> tuple[sa.Engine, Path]:
    """A handshake staging table of three rows (the second one fails the mapping) into a memory ERP."""
    db = tmp_path / "staging.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE stg_customer (id INTEGER PRIMARY KEY, code TEXT UNIQUE, name TEXT, "
                             "updated_at TIMESTAMP, status TEXT, error TEXT)")
        for i, name in enumerate(["甲", "", "丙"], start=1):
            conn.exec_driver_sql("INSERT INTO stg_customer (id, code, name, updated_at, status) VALUES "
                                 f"({i}, 'C{i}', '{name}', '2026-11-01 08:00:0{i}', 'new')")
    (tmp_path / "m.yaml").write_text(MAPPING.replace("opportunity", "customer").replace(
        "filter:\n  - when: {path: stage, eq: won}\n    reason: only won opportunities become customers\n", ""),
        encoding="utf-8")
    (tmp_path / "hub.yaml").write_text(f"""\
store: {{url: "sqlite:///state.db"}}
systems:
  staging:
    connector: sql
    settings:
      url: sqlite:///{db}
      entities:
        customer: {{table: stg_customer, key_column: code, status_column: status, error_column: error}}
  erp: {{connector: memory, settings: {{system: erp-{tmp_path.name}, entities: {{customer: number}}}}}}
pipelines:
  staged_customers:
    source: {{system: staging, entity: customer}}
    target: {{system: erp, entity: customer}}
    mapping: m.yaml
""", encoding="utf-8")
    return engine, tmp_path / "hub.yaml"


def statuses(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.exec_driver_sql("SELECT code, status FROM stg_customer").all())  # type: ignore[arg-type]


def test_handshake_rows_are_marked_done_or_error_after_the_commit(tmp_path: Path) -> None:
    engine, config = staging_hub(tmp_path)
    with Hub(load_config(config)) as hub:
        info = run_pipeline(hub.pipeline("staged_customers"), hub.store)
        assert (info.counts["created"], info.counts["dead_lettered"]) == (2, 1)
    assert statuses(engine) == {"C1": "done", "C2": "error", "C3": "done"}
    engine.dispose()


def test_a_run_that_lost_its_lease_leaves_handshake_rows_to_the_run_holding_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The acknowledgement writes to the source: it comes after the lease is kept, never from a run that
    lost the pipeline (the run holding it would find the rows already marked, and its marks ignored)."""
    engine, config = staging_hub(tmp_path)
    with Hub(load_config(config)) as hub:
        run_pipeline(hub.pipeline("staged_customers"), hub.store)
        with engine.begin() as conn:  # offered again (unchanged): the batch writes nothing to the ERP
            conn.exec_driver_sql("UPDATE stg_customer SET status = 'new' WHERE code IN ('C1', 'C3')")
        lose_the_lease(monkeypatch)
        with pytest.raises(RunFailed, match="lost its lease"):
            run_pipeline(hub.pipeline("staged_customers"), hub.store)
    assert statuses(engine) == {"C1": "new", "C2": "error", "C3": "new"}  # the staging table's own rows
    engine.dispose()


def test_an_update_only_pipeline_skips_records_the_target_does_not_have(tmp_path: Path) -> None:
    erp, crm = memory_system("erp-uo"), memory_system("crm-uo")
    crm.put("customer", {"code": "C1", "name": "甲", "status": "new"})
    erp.put("account", {"number": "C1", "balance": 100})
    erp.put("account", {"number": "X9", "balance": 5})   # only the ERP has it: must not appear in the CRM
    config = memory_pipeline_config(
        tmp_path, "balances", "source: account\ntarget: customer\nkey: code\nowns: [code, balance]\n"
        "fields:\n  code: {from: number}\n  balance: {from: balance}\n",
        source=("erp-uo", "account", "number"), target=("crm-uo", "customer", "code"), options="create_missing: false")
    with Hub(load_config(config)) as hub:
        info = run_pipeline(hub.pipeline("balances"), hub.store)
    assert (info.counts["updated"], info.counts["skipped"], info.counts["created"]) == (1, 1, 0)
    assert [r.data for r in crm.all("customer")] == [{"code": "C1", "name": "甲", "status": "new", "balance": 100}]


def test_a_refused_write_back_stays_an_open_dead_letter(tmp_path: Path) -> None:
    crm = memory_system("crm-wbf")
    crm.put("opportunity", {"code": "C1", "name": "甲", "stage": "won"})
    crm.validators["opportunity"] = lambda data: "field erp_customer_no is read-only" if "erp_customer_no" in data \
        else None
    config = memory_pipeline_config(tmp_path, "won", MAPPING, source=("crm-wbf", "opportunity", "code"),
                                    target=("erp-wbf", "customer", "number"),
                                    options="write_back: {field: erp_customer_no, value: key}")
    with Hub(load_config(config)) as hub:
        info = run_pipeline(hub.pipeline("won"), hub.store)
        assert (info.counts["created"], info.counts["dead_lettered"]) == (1, 1)
        [letter] = hub.store.list_dead_letters(pipeline="won")
        assert (letter.stage, letter.status, letter.field) == ("write_back", "open", "erp_customer_no")


def test_a_write_back_alone_is_not_sent_once_the_run_has_lost_its_lease(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that writes nothing to the target (the customer is unchanged there) but still owes the
    source its number keeps the lease before that write: a run that lost the pipeline writes nothing."""
    crm, _erp = memory_system("crm-wb-lease"), memory_system("erp-wb-lease")
    crm.put("opportunity", {"code": "C1", "name": "机会", "stage": "won"})
    config = memory_pipeline_config(tmp_path, "won_opportunities", MAPPING,
                                    source=("crm-wb-lease", "opportunity", "code"),
                                    target=("erp-wb-lease", "customer", "number"),
                                    options="write_back: {field: erp_customer_no, value: target_id}")
    with Hub(load_config(config)) as hub:
        run_pipeline(hub.pipeline("won_opportunities"), hub.store)
        record = crm.all("opportunity")[0]
        assert record.data["erp_customer_no"]
        crm.put("opportunity", {**record.data, "erp_customer_no": ""}, record_id=record.id)  # cleared by hand
        lose_the_lease(monkeypatch)
        with pytest.raises(RunFailed, match="lost its lease"):
            run_pipeline(hub.pipeline("won_opportunities"), hub.store)
    assert crm.all("opportunity")[0].data["erp_customer_no"] == ""  # the CRM's own record: not written


def lose_the_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on every lease keep is due (it asks the store) and finds that another run took the pipeline."""
    from erphub.engine import lease as lease_module
    from erphub.store import Store

    clock = [0.0]

    def ever_later() -> tuple[float, float]:
        clock[0] += 3600
        return clock[0], clock[0]

    monkeypatch.setattr(lease_module, "_elapsed_clocks", ever_later)
    monkeypatch.setattr(Store, "renew_lease", lambda *args, **kwargs: False)
