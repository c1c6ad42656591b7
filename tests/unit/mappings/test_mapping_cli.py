"""`erphub mapping check|test|transforms`: output, exit codes, and errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from erphub.cli.mapping import mapping_app
from erphub.mappings.expressions import FUNCTIONS
from erphub.mappings.transforms import TRANSFORMS

ROOT = Path(__file__).resolve().parents[3]
ORDER = ROOT / "mappings/jiandaoyun_to_kingdee/sales_order.yaml"
ORDERS = ROOT / "mappings/samples/jiandaoyun_sales_orders.json"
runner = CliRunner()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real process: exit code and stderr exactly as an operator sees them."""
    return subprocess.run(
        [sys.executable, "-c", "from erphub.cli.mapping import mapping_app; mapping_app()", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )


def test_check_compiles_every_shipped_mapping() -> None:
    result = runner.invoke(mapping_app, ["check"])
    assert result.exit_code == 0, result.output
    for name in ("customer.yaml", "sales_order.yaml", "receipt.yaml"):
        assert name in result.output
    assert "mapping(s) compiled" in result.output


def test_check_a_broken_mapping_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: a\ntarget: b\nfields:\n  x:\n    from: y\n    transforms: [trim, uper]\n", encoding="utf-8")
    proc = cli("check", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"{bad}:6:24: fields.x.transforms[1]: unknown transform 'uper'; did you mean 'upper'? "
        "(see `erphub mapping transforms`)"
    )
    assert "Traceback" not in proc.stderr + proc.stdout


def test_check_with_a_config_uses_the_connectors_schemas(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "source: customer\ntarget: customer\nkey: FNumber\nfields:\n  FNumber: customer_code\n", encoding="utf-8"
    )
    (tmp_path / "hub.yaml").write_text(
        "version: 1\nstore: {url: 'sqlite:///hub.db'}\n"
        "systems:\n  a: {connector: memory, settings: {system: a, entities: {customer: customer_code}}}\n"
        "  b: {connector: memory, settings: {system: b, entities: {customer: FNumber}}}\n"
        "pipelines:\n  p:\n    source: {system: a, entity: customer}\n    target: {system: b, entity: customer}\n"
        "    mapping: m.yaml\n",
        encoding="utf-8",
    )
    result = runner.invoke(mapping_app, ["check", "--config", str(tmp_path / "hub.yaml")])
    assert result.exit_code == 0, result.output
    assert "(p: customer -> customer)" in result.output

    # Without its key, a create that landed before a crash could not be found again: refused.
    (tmp_path / "m.yaml").write_text(
        "source: customer\ntarget: customer\nfields:\n  FNumber: customer_code\n", encoding="utf-8"
    )
    refused = runner.invoke(mapping_app, ["check", "--config", str(tmp_path / "hub.yaml")])
    assert refused.exit_code == 2
    assert "m.yaml:2:1: target: target entity 'customer' matches records by 'FNumber'" in refused.output


def test_check_against_the_demo_config_and_its_real_connector_schemas() -> None:
    result = runner.invoke(mapping_app, ["check", "--config", str(ROOT / "config/demo.yaml")])
    assert result.exit_code == 0, result.output
    assert "3 mapping(s) compiled" in result.output


def test_test_prints_mapped_records_and_rejections() -> None:
    result = runner.invoke(mapping_app, ["test", str(ORDER), "--input", str(ORDERS)])
    assert result.exit_code == 0, result.output
    assert '"FDate": "2026-03-02 02:30:00"' in result.output
    assert (
        "REJECTED FSaleOrderEntry[1].FMaterialId.FNumber: code 'P-9999' not found in lookup table "
        "material_codes (column crm_sku) [lookup_missing]"
    ) in result.output
    assert "7 record(s): 2 mapped, 5 rejected, 0 skipped" in result.output


def test_test_json_output() -> None:
    result = runner.invoke(mapping_app, ["test", str(ORDER), "--input", str(ORDERS), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["counts"] == {"mapped": 2, "rejected": 5, "skipped": 0}
    first = doc["results"][0]
    assert first["outcome"] == "mapped" and first["key"] == "SO-2026-00017"
    assert first["data"]["FSaleOrderEntry"][1]["FTaxPrice"] == "265.01"  # Decimals printed exactly
    rejection = doc["results"][2]
    assert rejection["field"] == "FSaleOrderEntry[1].FMaterialId.FNumber"
    assert rejection["code"] == "lookup_missing"


def test_test_accepts_a_single_record_and_records_key(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"records": [{"order_no": "SO-1"}]}), encoding="utf-8")
    result = runner.invoke(mapping_app, ["test", str(ORDER), "--input", str(one)])
    assert result.exit_code == 0
    assert "REJECTED FDate: required value is missing (source: order_date) [required]" in result.output


def test_test_with_broken_input_json_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"order_no": "SO-1",}\n]\n', encoding="utf-8")
    proc = cli("test", str(ORDER), "--input", str(broken))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{broken}:2:")
    assert "invalid JSON" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("test", str(ORDER), "--input", str(tmp_path / "missing.json"))
    assert proc.returncode == 2 and "input file not found" in proc.stderr


def test_transforms_lists_every_transform_with_arguments_and_example() -> None:
    result = runner.invoke(mapping_app, ["transforms"])
    assert result.exit_code == 0
    for name in TRANSFORMS:
        assert name in result.output
    assert "round(places, mode)" in result.output
    assert "lookup(table, key=None, value=None, on_missing='error', default=None)" in result.output
    assert result.output.count("e.g. ") == len(TRANSFORMS) + len(FUNCTIONS)
    for name in FUNCTIONS:  # and every expression function, each with an example
        assert f"{name}()" in result.output
    for feature in ("expr:", "cases:", "let:", "params:", "include:", "decimal: comma", "${param:"):
        assert feature in result.output
