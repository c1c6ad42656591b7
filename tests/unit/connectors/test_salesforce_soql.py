"""The Salesforce sandbox's SOQL subset and the connector's SOQL literals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from erphub.connectors.salesforce.schema import parse_datetime, soql_datetime, soql_string
from erphub.sandbox.salesforce import SalesforceOrg, SoqlError, id18, parse

T = datetime(2026, 3, 1, 8, 0, 0, 123000, tzinfo=UTC)


def test_id18_matches_the_documented_case_safe_suffix() -> None:
    # The example Salesforce's own docs and tooling use for the 15 -> 18 character conversion.
    assert id18("001A0000006Vm9r") == "001A0000006Vm9rIAC"


def test_literals_round_trip_through_the_parser() -> None:
    q = parse(
        f"SELECT Id FROM Account WHERE Name = {soql_string(chr(39) + 'x' + chr(92) + 'y')} "
        f"AND SystemModstamp > {soql_datetime(T)} ORDER BY SystemModstamp DESC, Id LIMIT 5"
    )
    assert q.where.parts[0].value == "'x\\y"
    assert q.where.parts[1].value == T
    assert q.order_by == [("SystemModstamp", True, True), ("Id", False, False)] and q.limit == 5
    assert parse("SELECT Id FROM Order WHERE CreatedDate >= 2026-03-01T16:00:00+08:00").where.value == datetime(
        2026, 3, 1, 8, tzinfo=timezone(timedelta(0))
    )
    assert parse_datetime("2026-03-01T08:00:00.123+0000") == T


@pytest.mark.parametrize(
    "soql,code",
    [
        ("SELECT FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
        ("SELECT Nope FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE SystemModstamp > '2026-01-01T00:00:00Z'", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD"),
        ("SELECT Id FROM Account LIMIT -1", "MALFORMED_QUERY"),
    ],
)
def test_errors_carry_salesforce_codes(soql: str, code: str) -> None:
    with pytest.raises(SoqlError) as err:
        SalesforceOrg().run_query(soql)
    assert err.value.error_code == code


def test_keyset_condition_and_relationship_fields() -> None:
    org = SalesforceOrg()
    acc = org.seed("Account", {"Name": "甲", "CRM_Code__c": "C1"}, modstamp=T)
    same = [org.seed("Account", {"Name": f"乙{i}", "CRM_Code__c": f"C{i + 2}"}, modstamp=T) for i in range(3)]
    org.seed(
        "Opportunity",
        {"Name": "机会", "AccountId": acc, "StageName": "Prospecting", "CloseDate": "2026-04-01"},
        modstamp=T,
    )
    after = org.run_query(
        f"SELECT Id FROM Account WHERE (SystemModstamp > {soql_datetime(T)} OR (SystemModstamp = "
        f"{soql_datetime(T)} AND Id > '{same[0]}')) ORDER BY SystemModstamp, Id"
    )
    assert [r["Id"] for r in after] == same[1:]
    [opp] = org.run_query("SELECT Name, Account.CRM_Code__c FROM Opportunity WHERE account.crm_code__c = 'c1'")
    assert opp["Account"]["CRM_Code__c"] == "C1" and opp["Account"]["attributes"]["type"] == "Account"
    assert [
        r["CRM_Code__c"]
        for r in org.run_query(
            "SELECT CRM_Code__c FROM Account WHERE CRM_Code__c IN ('C3', 'C1') AND NOT Name LIKE '乙%'"
        )
    ] == ["C1"]
