"""Every compile-time error class: the file, the line, the column and a message an author can act on."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from erphub.core.errors import MappingError
from erphub.core.records import Direction, EntitySpec
from erphub.mappings.compiler import compile_mapping, compile_text

BOTH = frozenset({Direction.READ, Direction.WRITE})
JDY_ORDER = EntitySpec(
    name="sales_order",
    native_name="sales_order_form",
    directions=BOTH,
    key_field="order_no",
    fields=frozenset(
        {
            "_id",
            "order_no",
            "customer_code",
            "order_date",
            "currency",
            "salesperson",
            "remark",
            "status",
            "shipped_date",
            "lines",
        }
    ),
    child_fields={
        "lines": frozenset({"sku", "product_name", "qty", "unit", "price", "tax_rate", "amount", "shipped_qty"})
    },
)
KD_ORDER = EntitySpec(
    name="sales_order",
    native_name="SAL_SaleOrder",
    directions=BOTH,
    key_field="FBillNo",
    fields=frozenset(
        {
            "FID",
            "FBillNo",
            "FBillTypeID",
            "FDate",
            "FSaleOrgId",
            "FCustId",
            "FSalerId",
            "FNote",
            "FDocumentStatus",
            "FModifyDate",
            "FSaleOrderFinance",
            "FSaleOrderEntry",
        }
    ),
    child_fields={
        "FSaleOrderEntry": frozenset(
            {
                "FEntryID",
                "FMaterialId",
                "FUnitID",
                "FQty",
                "FTaxPrice",
                "FEntryTaxRate",
                "FAllAmount",
                "FDeliveryDate",
                "FStockOutQty",
            }
        )
    },
)

HEAD = "source: sales_order\ntarget: sales_order\n"


def fail(body: str, *, schemas: bool = False, lookups: Path | None = None, file: str = "m.yaml") -> MappingError:
    source, target = (JDY_ORDER, KD_ORDER) if schemas else (None, None)
    with pytest.raises(MappingError) as info:
        compile_text(body, file="m.yaml", lookups_dir=lookups, source=source, target=target)
    err = info.value
    assert err.file == file
    return err


def at(err: MappingError, line: int, column: int | None = None) -> None:
    assert err.line == line, err.render()
    if column is not None:
        assert err.column == column, err.render()


def test_yaml_syntax_error() -> None:
    err = fail(HEAD + "fields:\n  FBillNo: order_no\n   bad: [\n")
    assert "YAML syntax error" in err.message
    assert err.line is not None and err.line >= 3


def test_duplicate_yaml_key() -> None:
    err = fail(HEAD + "fields:\n  FBillNo: order_no\n  FBillNo: order_no\n")
    assert "YAML" in err.message and "FBillNo" in err.message


def test_not_an_object() -> None:
    err = fail("- just\n- a list\n")
    at(err, 1, 1)
    assert "a mapping file is a YAML object" in err.message


def test_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="file not found") as info:
        compile_mapping(tmp_path / "nope.yaml")
    assert info.value.file == str(tmp_path / "nope.yaml")


def test_missing_fields_key() -> None:
    err = fail(HEAD)
    assert err.message == "missing required key 'fields'"
    at(err, 1, 1)


def test_unknown_top_level_key_with_suggestion() -> None:
    err = fail(HEAD + "filters: []\nfields:\n  FBillNo: order_no\n")
    at(err, 3, 1)
    assert "unknown key 'filters'; did you mean 'filter'?" in err.message
    assert err.render().startswith("m.yaml:3:1: filters: unknown key 'filters'")


def test_unknown_field_key() -> None:
    err = fail(HEAD + "fields:\n  FBillNo:\n    from: order_no\n    transform: [trim]\n")
    at(err, 6, 5)
    assert "unknown key 'transform'; did you mean 'transforms'?" in err.message
    assert err.field == "fields.FBillNo.transform"


def test_field_needs_exactly_one_source() -> None:
    err = fail(HEAD + "fields:\n  FBillNo:\n    transforms: [trim]\n")
    at(err, 4, 3)
    assert "exactly one of from, const, coalesce, template, expr, cases (got none)" in err.message
    err = fail(HEAD + "fields:\n  FBillNo: {from: a, const: b}\n")
    assert "(got from, const)" in err.message


def test_unknown_transform_with_suggestion() -> None:
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    transforms: [trim, phon]\n")
    at(err, 6, 24)
    assert "unknown transform 'phon'; did you mean 'phone'?" in err.message
    assert err.field == "fields.FNote.transforms[1]"


def test_unknown_transform_in_object_form() -> None:
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    transforms:\n      - rounding: {places: 2}\n")
    at(err, 7, 9)
    assert "unknown transform 'rounding'" in err.message


def test_bad_argument_value_points_at_the_argument() -> None:
    err = fail(
        HEAD + "fields:\n  FNote:\n    from: remark\n    transforms:\n      - round: {places: 2, mode: half_sideways}\n"
    )
    at(err, 7, 28)
    assert "bad argument 'mode' for round" in err.message
    assert "'half_up'" in err.message and "'half_even'" in err.message


def test_missing_argument() -> None:
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    transforms:\n      - round: {places: 2}\n")
    at(err, 7, 9)
    assert "missing argument 'mode' (round: {places, mode})" in err.message


def test_unknown_argument() -> None:
    err = fail(
        HEAD + "fields:\n  FNote:\n    from: remark\n    transforms:\n      - truncate: {length: 3, ellipsis: yes}\n"
    )
    at(err, 7, 31)
    assert "unknown argument 'ellipsis' (arguments: length)" in err.message


def test_positional_argument_of_wrong_type() -> None:
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    transforms: [{truncate: many}]\n")
    at(err, 6, 19)
    assert "bad argument 'length' for truncate" in err.message


def test_transform_without_arguments_given_some() -> None:
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    transforms: [{trim: 3}]\n")
    assert "transform 'trim' takes no arguments" in err.message


def test_transform_item_shape() -> None:
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    transforms: [{trim: null, upper: null}]\n")
    at(err, 6, 18)
    assert "a transform is a name" in err.message


def test_bad_regex_argument() -> None:
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    transforms:\n      - regex_extract: {pattern: '(('}\n")
    at(err, 7, 25)
    assert "invalid regular expression '(('" in err.message


def test_unknown_date_format_and_zone() -> None:
    err = fail(
        HEAD + "fields:\n  FDate:\n    from: order_date\n    transforms:\n"
        "      - datetime: {from: iso8601, to: kingdee, to_tz: Asia/Beijing}\n"
    )
    at(err, 7, 48)
    assert "unknown time zone 'Asia/Beijing'" in err.message
    err = fail(
        HEAD + "fields:\n  FDate:\n    from: order_date\n    transforms:\n"
        "      - datetime: {from: rfc822, to: kingdee}\n"
    )
    assert "unknown date format 'rfc822'" in err.message


def test_unknown_lookup_table() -> None:
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    lookup: {table: materials}\n")
    at(err, 6, 14)
    assert "unknown lookup table 'materials'" in err.message
    assert "material_codes" in err.message  # the tables that do exist are listed


def test_unknown_lookup_column() -> None:
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    lookup: {table: material_codes, key: sku}\n")
    at(err, 6, 37)
    assert "lookup table 'material_codes' has no column 'sku'; columns: crm_sku, kingdee_number, name" in err.message


def test_lookup_table_with_a_duplicate_code(tmp_path: Path) -> None:
    (tmp_path / "units.csv").write_text("crm,kd\n个,Pcs\n台,Set\n个,Box\n", encoding="utf-8")
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    lookup: units\n", lookups=tmp_path,
               file=str(tmp_path / "units.csv"))
    assert "has code '个' twice in column 'crm' (lines 2 and 4)" in err.message
    assert (err.file, err.line) == (str(tmp_path / "units.csv"), 4)  # the CSV's own file and line
    assert "table used at m.yaml:6:5 fields.FNote.lookup" in err.message


def test_lookup_table_with_a_short_row(tmp_path: Path) -> None:
    (tmp_path / "units.csv").write_text("crm,kd\n个\n", encoding="utf-8")
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    lookup: units\n", lookups=tmp_path,
               file=str(tmp_path / "units.csv"))
    assert "line 2 has 1 cells, the header has 2" in err.message
    assert (err.file, err.line) == (str(tmp_path / "units.csv"), 2)


def test_on_unknown_default_needs_a_default() -> None:
    err = fail(HEAD + "fields:\n  FNote:\n    from: status\n    map: {values: {a: b}, on_unknown: default}\n")
    assert "on_unknown: default needs a `default:` value" in err.message
    at(err, 6, 27)


def test_bad_validation_rules() -> None:
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    validate: {regex: '[a-'}\n")
    at(err, 6, 16)
    assert "invalid regular expression '[a-'" in err.message
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    validate: {type: text}\n")
    assert "Input should be 'string'" in err.message
    at(err, 6, 16)
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    validate: {length: {min: 5, max: 2}}\n")
    assert "length min 5 is greater than max 2" in err.message
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    validate: {range: {}}\n")
    assert "range needs at least one of min, max, gt, lt" in err.message


def test_bad_source_path_syntax() -> None:
    err = fail(HEAD + "fields:\n  FNote:\n    from: lines[x].sku\n")
    at(err, 5, 5)
    assert "unexpected '[' at position 6 in path 'lines[x].sku'" in err.message


def test_source_field_not_in_connector_schema() -> None:
    err = fail(HEAD + "fields:\n  FBillNo: order_no\n  FNote: {from: remarks}\n", schemas=True)
    at(err, 5, 11)
    assert (
        "source field 'remarks' is not in the schema of source entity 'sales_order'; did you mean 'remark'?"
        in err.message
    )


def test_target_field_not_accepted() -> None:
    err = fail(HEAD + "fields:\n  FBillNo: order_no\n  FRemark: remark\n", schemas=True)
    at(err, 5, 3)
    assert "target field 'FRemark' is not accepted by target entity 'sales_order'" in err.message


def test_child_fields_are_checked_against_the_child_schemas() -> None:
    body = HEAD + textwrap.dedent("""\
        fields:
          FBillNo: order_no
          FSaleOrderEntry:
            from: lines
            each:
              fields:
                FQty: {from: quantity}
        """)
    err = fail(body, schemas=True)
    at(err, 9, 16)
    assert "source field 'quantity' is not in the schema of lines of 'lines'" in err.message
    body = body.replace("FQty: {from: quantity}", "FQuantity: qty")
    err = fail(body, schemas=True)
    at(err, 9, 9)
    assert "target field 'FQuantity' is not accepted by 'FSaleOrderEntry' lines" in err.message


def test_fields_inside_declared_children_are_checked() -> None:
    err = fail(HEAD + "fields:\n  FBillNo: order_no\n  FNote: {from: 'lines[*].price_each'}\n", schemas=True)
    at(err, 5, 11)
    assert "source field 'price_each' is not in the schema of 'lines'" in err.message
    target = EntitySpec(
        name="sales_order",
        native_name="SAL_SaleOrder",
        directions=BOTH,
        fields=KD_ORDER.fields,
        child_fields={**KD_ORDER.child_fields, "FSaleOrderFinance": frozenset({"FSettleCurrId"})},
    )
    with pytest.raises(MappingError, match="target field 'FSettleCurrency' is not accepted inside 'FSaleOrderFinance'"):
        compile_text(HEAD + "fields:\n  FSaleOrderFinance.FSettleCurrency.FNumber: currency\n", target=target)


def test_root_path_inside_a_line_is_checked_against_the_record() -> None:
    err = fail(
        HEAD + "fields:\n  FBillNo: order_no\n  FSaleOrderEntry:\n    from: lines\n    each:\n"
        "      fields:\n        FQty: {from: $.remarks}\n",
        schemas=True,
    )
    assert "source field 'remarks' is not in the schema of source entity" in err.message


def test_condition_paths_are_checked_against_the_schema() -> None:
    err = fail(HEAD + "filter: {path: state, eq: 已完成}\nfields:\n  FBillNo: order_no\n", schemas=True)
    at(err, 3, 10)
    assert "source field 'state'" in err.message and "did you mean 'status'?" in err.message


def test_entity_mismatch() -> None:
    err = fail("source: customer\ntarget: sales_order\nfields:\n  FBillNo: order_no\n", schemas=True)
    at(err, 1, 1)
    assert "this mapping's source is 'customer', but the connector's entity is 'sales_order'" in err.message


def test_key_not_produced_and_key_mismatch() -> None:
    err = fail(HEAD + "key: FNumber\nfields:\n  FBillNo: order_no\n")
    at(err, 3, 1)
    assert "key field 'FNumber' is not one of this mapping's fields" in err.message
    err = fail(HEAD + "key: FNote\nfields:\n  FBillNo: order_no\n  FNote: remark\n", schemas=True)
    assert "target entity 'sales_order' matches records by 'FBillNo', not 'FNote'" in err.message


def test_owned_field_not_produced() -> None:
    err = fail(HEAD + "owns: [FBillNo, FDate]\nfields:\n  FBillNo: order_no\n")
    at(err, 3, 17)
    assert "owned field 'FDate' is not produced by this mapping" in err.message


def test_conflicting_target_paths() -> None:
    err = fail(HEAD + "fields:\n  FCustId: {const: {FNumber: x}}\n  FCustId.FNumber: customer_code\n")
    at(err, 5, 3)
    assert "target field 'FCustId.FNumber' is inside 'FCustId', which is also set" in err.message


def test_bad_conditions() -> None:
    err = fail(HEAD + "filter: {path: status, equals: 已完成}\nfields:\n  FBillNo: order_no\n")
    at(err, 3, 24)
    assert "unknown condition key 'equals'" in err.message
    err = fail(HEAD + "filter: {path: status}\nfields:\n  FBillNo: order_no\n")
    assert "exactly one operator" in err.message
    err = fail(HEAD + "filter: {all: []}\nfields:\n  FBillNo: order_no\n")
    assert "'all' takes a non-empty list" in err.message
    err = fail(HEAD + "fields:\n  FNote: {from: remark, when: {path: qty, gt: many}}\n")
    assert "'gt' takes a number, got 'many'" in err.message
    err = fail(HEAD + "filter:\n  - when: {path: status, eq: x}\n    because: y\nfields:\n  FBillNo: order_no\n")
    at(err, 5, 5)
    assert "unknown key 'because' in a filter (allowed: when, reason)" in err.message


def test_bad_templates() -> None:
    err = fail(HEAD + "fields:\n  FNote: {template: '{remark'}\n")
    at(err, 4, 11)
    assert "bad template" in err.message
    err = fail(HEAD + "fields:\n  FNote: {template: 'x {} y'}\n")
    assert "empty placeholder" in err.message
    err = fail(HEAD + "fields:\n  FNote: {template: '{remark!r}'}\n")
    assert "conversions are not supported" in err.message


def test_child_collection_rules() -> None:
    err = fail(
        HEAD + "fields:\n  FSaleOrderEntry:\n    from: lines\n    transforms: [first]\n"
        "    each:\n      fields:\n        FQty: qty\n"
    )
    at(err, 4, 3)
    assert "takes no transforms" in err.message
    err = fail(HEAD + "fields:\n  FSaleOrderEntry:\n    const: []\n    each:\n      fields:\n        FQty: qty\n")
    assert "takes its lines `from` a list path" in err.message


def test_render_is_one_line_without_traceback_material() -> None:
    err = fail(HEAD + "fields:\n  FNote:\n    from: remark\n    transforms: [trim, phon]\n")
    assert err.render() == (
        "m.yaml:6:24: fields.FNote.transforms[1]: unknown transform 'phon'; "
        "did you mean 'phone'? (see `erphub mapping transforms`)"
    )
    assert "\n" not in err.render()
