"""The Jiandaoyun -> Yonyou mappings: compiled against both connectors' EntitySpecs, applied to the
shipped Jiandaoyun samples, and their output saved through the yonyou connector into the sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from erphub.connectors.base import SystemContext
from erphub.connectors.jiandaoyun import JiandaoyunConnector, JiandaoyunSettings
from erphub.connectors.yonyou import YonyouConnector, YonyouSettings
from erphub.core.records import EntitySpec, WriteRequest
from erphub.mappings import Mapped, Rejected, Skipped, compile_mapping
from erphub.sandbox.common import SandboxServer
from erphub.sandbox.yonyou import create_sandbox

ROOT = Path(__file__).resolve().parents[2] / "mappings"


def yonyou_settings(base_url: str = "http://127.0.0.1:9") -> YonyouSettings:
    return YonyouSettings(
        tenant_id="demo_tenant",
        app_key="yonyou_demo_app_key",
        app_secret=SecretStr("yonyou_demo_app_secret"),
        discovery_url=base_url,
        default_rate_per_second=500.0,
    )


@pytest.fixture(scope="module")
def specs() -> tuple[dict[str, EntitySpec], dict[str, EntitySpec]]:
    with (
        closing(
            JiandaoyunConnector(JiandaoyunSettings(api_key=SecretStr("unused")), SystemContext(name="jdy-specs"))
        ) as jdy,
        closing(YonyouConnector(yonyou_settings(), SystemContext(name="yonyou-specs"))) as yy,
    ):
        return dict(jdy.entities()), dict(yy.entities())


def samples(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((ROOT / "samples" / f"jiandaoyun_{name}s.json").read_text("utf-8"))
    return data


@pytest.mark.parametrize("entity", ["customer", "sales_order"])
def test_mapping_compiles_against_both_schemas(entity: str, specs: Any) -> None:
    source, target = specs
    plan = compile_mapping(
        ROOT / "jiandaoyun_to_yonyou" / f"{entity}.yaml", source=source[entity], target=target[entity]
    )
    outcomes = [plan.apply(s["data"]) for s in samples(entity)]
    assert any(isinstance(o, Mapped) for o in outcomes)
    for outcome in outcomes:
        assert isinstance(outcome, Mapped | Rejected | Skipped)
        if isinstance(outcome, Mapped):
            assert set(outcome.data) <= (target[entity].fields or set())


def test_sales_order_mapping_shape(specs: Any) -> None:
    source, target = specs
    plan = compile_mapping(
        ROOT / "jiandaoyun_to_yonyou/sales_order.yaml", source=source["sales_order"], target=target["sales_order"]
    )
    first = next(s for s in samples("sales_order") if s["data"].get("order_no") == "SO-2026-00017")
    out = plan.apply(first["data"])
    assert isinstance(out, Mapped), out
    assert out.key == "SO-2026-00017"
    assert out.data["vouchdate"] == "2026-03-02 02:30:00"  # 18:30Z is the next morning in Shanghai
    assert out.data["agentId"] == "CUS-000123" and out.data["orderPrices!currency"] == "CNY"
    lines = out.data["orderDetails"]
    assert [(line["productId"], line["masterUnitId"], line["taxId"]) for line in lines] == [
        ("1.01.016", "Box", "VAT13"),
        ("1.01.002", "Pcs", "VAT13"),
    ]
    unknown = next(s for s in samples("sales_order") if "P-9999" in json.dumps(s["data"]))
    assert isinstance(plan.apply(unknown["data"]), Rejected)


@pytest.fixture
def server() -> Iterator[tuple[Any, SandboxServer]]:
    sb = create_sandbox()
    with SandboxServer(sb) as srv:
        yield sb, srv


def test_mapped_records_are_accepted_by_the_yonyou_sandbox(specs: Any, server: Any) -> None:
    sb, srv = server
    source, target = specs
    customer_plan = compile_mapping(
        ROOT / "jiandaoyun_to_yonyou/customer.yaml", source=source["customer"], target=target["customer"]
    )
    order_plan = compile_mapping(
        ROOT / "jiandaoyun_to_yonyou/sales_order.yaml", source=source["sales_order"], target=target["sales_order"]
    )
    context = SystemContext(name="yonyou-mapping-it", max_retry_seconds=5)
    with closing(YonyouConnector(yonyou_settings(srv.base_url), context)) as conn:
        customers = [
            (s["id"], o) for s in samples("customer") if isinstance(o := customer_plan.apply(s["data"]), Mapped)
        ]
        results = conn.write("customer", [WriteRequest(sid, o.key, None, o.data, f"map:{sid}") for sid, o in customers])
        assert results and all(r.ok for r in results), results
        # Orders of customers the samples did not create get their customer from the sandbox directly.
        orders = [(s["id"], o) for s in samples("sales_order") if isinstance(o := order_plan.apply(s["data"]), Mapped)]
        for _, o in orders:
            code = o.data["agentId"]
            if not sb.state.count_customers_with_code(code):
                sb.state.seed_customer(code, f"客户{code}")
        results = conn.write("sales_order", [WriteRequest(sid, o.key, None, o.data, f"map:{sid}") for sid, o in orders])
        assert results and all(r.ok for r in results), results
        stored = sb.state.order_detail(results[0].target_id)
        assert stored["code"] == orders[0][1].key and len(stored["orderDetails"]) == len(
            orders[0][1].data["orderDetails"]
        )
