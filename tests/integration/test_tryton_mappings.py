"""The Jiandaoyun -> Tryton mappings: compiled against both connectors' EntitySpecs, applied to the
shipped Jiandaoyun samples, and the mapped records written into a REAL Tryton server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from erphub.connectors.base import SystemContext
from erphub.connectors.jiandaoyun import JiandaoyunConnector, JiandaoyunSettings
from erphub.connectors.tryton import TrytonConnector, TrytonSettings
from erphub.core.records import EntitySpec, WriteRequest
from erphub.mappings import Mapped, Rejected, Skipped, compile_mapping
from tests.contract.harnesses.tryton import TrytonHarness, make_harness

ROOT = Path(__file__).resolve().parents[2] / "mappings"


@pytest.fixture(scope="module")
def specs() -> tuple[dict[str, EntitySpec], dict[str, EntitySpec]]:
    tryton = TrytonSettings(url="http://127.0.0.1:9", database="hub", login="admin", password=SecretStr("unused"))
    with (
        closing(JiandaoyunConnector(JiandaoyunSettings(api_key=SecretStr("unused")),
                                    SystemContext(name="jdy-specs"))) as jdy,
        closing(TrytonConnector(tryton, SystemContext(name="tryton-specs"))) as tr,
    ):
        return dict(jdy.entities()), dict(tr.entities())


def samples(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((ROOT / "samples" / f"jiandaoyun_{name}s.json").read_text("utf-8"))
    return data


def plan_for(entity: str, specs: Any) -> Any:
    source, target = specs
    return compile_mapping(ROOT / "jiandaoyun_to_tryton" / f"{entity}.yaml", source=source[entity],
                           target=target[entity])


@pytest.mark.parametrize("entity", ["customer", "sales_order"])
def test_mapping_compiles_against_both_schemas(entity: str, specs: Any) -> None:
    plan = plan_for(entity, specs)
    outcomes = [plan.apply(s["data"]) for s in samples(entity)]
    assert any(isinstance(o, Mapped) for o in outcomes)
    for outcome in outcomes:
        assert isinstance(outcome, Mapped | Rejected | Skipped)
        if isinstance(outcome, Mapped):
            assert set(outcome.data) <= (specs[1][entity].fields or set())


def test_sales_order_mapping_shape(specs: Any) -> None:
    plan = plan_for("sales_order", specs)
    first = next(s for s in samples("sales_order") if s["data"].get("order_no") == "SO-2026-00017")
    out = plan.apply(first["data"])
    assert isinstance(out, Mapped), out
    assert out.key == "SO-2026-00017"
    assert out.data["sale_date"] == "2026-03-02"  # 18:30Z is the next morning in Shanghai
    assert out.data["customer_code"] == "CUS-000123" and out.data["currency"] == "CNY"
    assert [(ln["product"], ln["unit"], ln["quantity"]) for ln in out.data["lines"]] == [
        ("1.01.016", "Box", Decimal("5")), ("1.01.002", "Unit", Decimal("10"))]
    assert out.data["lines"][1]["unit_price"] == Decimal("234.5177")  # 265.005 / 1.13, the tax-exclusive price


@pytest.fixture(scope="module")
def harness() -> Iterator[TrytonHarness]:
    with make_harness() as h:
        yield h


@pytest.mark.tryton
def test_mapped_samples_land_in_tryton(specs: Any, harness: TrytonHarness) -> None:
    conn = harness.connector()
    assert isinstance(conn, TrytonConnector)
    written: dict[str, list[str]] = {}
    for entity in ("customer", "sales_order"):
        plan = plan_for(entity, specs)
        requests = []
        for sample in samples(entity):
            out = plan.apply(sample["data"])
            if isinstance(out, Mapped):
                requests.append(WriteRequest(sample.get("id", out.key or ""), out.key, None,
                                             out.data, f"{entity}:{out.key}"))
        results = conn.write(entity, requests)
        failures = {r.source_id: r.error for r in results if not r.ok}
        written[entity] = [req.key or "" for req, res in zip(requests, results, strict=True) if res.ok]
        # Every mapped customer lands; an order may only fail for a customer the CRM never made formal.
        if entity == "customer":
            assert not failures, failures
        else:
            assert all(e is not None and e.field == "customer_code" for e in failures.values()), failures
    assert "CUS-000123" in written["customer"] and "SO-2026-00017" in written["sales_order"]
    [sale] = harness.admin_call("model.sale.sale.search_read", [
        [["reference", "=", "SO-2026-00017"]], 0, None, None, ["party.code", "sale_date", "total_amount"]])
    assert sale["party."]["code"] == "CUS-000123"
    # 5 × 120 + 10 × 265.005 tax-included: Tryton recomputes from untaxed prices and 13 % VAT.
    assert abs(sale["total_amount"] - Decimal("3250.05")) <= Decimal("0.01")
    conn.close()
