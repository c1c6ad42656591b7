"""Records per second of the compiled customer and sales-order mappings, in one run, against
hand-written Python doing the same mapping and against jsonata-python doing the same mapping.

    python bench/mapping_bench.py [--customers 4000] [--orders 2000] [--repeat 5]

Fairness: all three produce the same output for the same input (checked before timing), read the
same CSV code tables (loaded once, outside the timed loop), and call the same phone / USCC /
full-width helpers, which jsonata gets as registered functions because it has none of its own.
What is measured is the cost of the mapping machinery around that shared work.
Targets (issue 3): compiled >= 0.7x hand-written, >= 10x jsonata-python.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonata
from common import report

from erphub.mappings import Mapped, Rejected, Skipped, compile_mapping
from erphub.mappings.lookups import LookupTables
from erphub.mappings.textnorm import halfwidth, normalise_phone, normalise_uscc
from erphub.sandbox.fakedata import Fake

ROOT = Path(__file__).resolve().parent.parent

CUSTOMER_YAML = ROOT / "mappings/jiandaoyun_to_kingdee/customer.yaml"
ORDER_YAML = ROOT / "mappings/jiandaoyun_to_kingdee/sales_order.yaml"

# --- input data ------------------------------------------------------------------------------------


def make_customers(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        if i % 500 == 0:  # a generator has a few thousand distinct company names; start a new one
            fake = Fake(2026 + i)
        c = fake.company()
        out.append({
            "_id": f"{i:024x}", "customer_code": f"CUS-{i:06d}", "customer_name": c.name,
            "short_name": c.short_name if i % 3 else "", "credit_code": c.credit_code,
            "phone": c.phone if i % 4 else f"+86 {c.phone[:3]} {c.phone[3:7]} {c.phone[7:]}",
            "contact_name": c.contact_name, "email": c.email, "address": c.address,
            "customer_group": ("KA", "SMB", "GOV")[i % 3], "salesperson": fake.staff_code(),
            "currency": "CNY" if i % 5 else "USD", "status": "正式" if i % 10 else "潜在",
        })
    return out


def make_orders(n: int) -> list[dict[str, Any]]:
    fake = Fake(7)
    out = []
    for i in range(n):
        out.append({
            "_id": f"{i:024x}", "order_no": f"SO-2026-{i:05d}", "customer_code": f"CUS-{i % 500:06d}",
            "order_date": f"2026-03-{1 + i % 28:02d}T{i % 24:02d}:30:00.000Z", "currency": "CNY",
            "salesperson": fake.staff_code(), "remark": "请于  周五前发货" if i % 2 else "", "status": "待发货",
            "lines": fake.order_lines(1 + i % 5),
        })
        if i % 7 == 0:  # some CRM lines carry no amount: the mapping's expression computes qty × price
            for line in out[-1]["lines"]:
                del line["amount"]
    return out


# --- hand-written Python, the same mapping as the YAML files ----------------------------------------

SHANGHAI = ZoneInfo("Asia/Shanghai")
CENT = Decimal("0.01")
_CODE = re.compile(r"[A-Z0-9][A-Z0-9_.-]{1,29}")
_BILL = re.compile(r"[A-Z0-9][A-Z0-9_-]{1,39}")
_SPACES = re.compile(r"\s+")


class Refused(Exception):
    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason


def dec(v: Any) -> Decimal:
    if isinstance(v, float):
        return Decimal(repr(v))
    return Decimal(str(v).strip())


class HandWritten:
    def __init__(self, tables: LookupTables) -> None:
        self.groups = tables.get("customer_groups").index("crm_group", "kingdee_group")
        self.sellers = tables.get("salespersons").index("crm_staff", "kingdee_staff")
        self.currencies = tables.get("currencies").index("crm_currency", "kingdee_currency")
        self.materials = tables.get("material_codes").index("crm_sku", "kingdee_number")
        self.units = tables.get("units").index("crm_unit", "kingdee_unit")
        self.rates = tables.get("tax_rates").index("crm_rate", "kingdee_rate")

    @staticmethod
    def _look(table: dict[str, str], code: str | None, name: str, field: str) -> str | None:
        if code is None:
            return None
        found = table.get(code)
        if found is None:
            raise Refused(field, f"code {code!r} not found in lookup table {name}")
        return found

    def customer(self, r: dict[str, Any]) -> Mapped | Rejected | Skipped:
        if r.get("status") != "正式":
            return Skipped("only formal customers (status 正式) are created in the ERP")
        try:
            number = r.get("customer_code")
            number = halfwidth(str(number)).strip().upper() if number is not None else None
            if not number:
                raise Refused("FNumber", "required value is missing")
            if not _CODE.fullmatch(number):
                raise Refused("FNumber", "bad code")
            name = r.get("customer_name")
            name = _SPACES.sub(" ", name).strip() if name is not None else None
            if not name:
                raise Refused("FName", "required value is missing")
            if len(name) > 80:
                raise Refused("FName", "too long")
            short = r.get("short_name")
            if not short or not short.strip():
                short = r.get("customer_name")
            short = short.strip()[:40] if short is not None else None
            phone = r.get("phone")
            try:
                phone = normalise_phone(phone) if phone and phone.strip() else None
            except ValueError as exc:
                raise Refused("FTEL", str(exc)) from None
            credit = r.get("credit_code")
            try:
                credit = normalise_uscc(credit) if credit and credit.strip() else None
            except ValueError as exc:
                raise Refused("FTAXREGISTERCODE", str(exc)) from None
            if not credit:
                raise Refused("FTAXREGISTERCODE", "required value is missing")
            addr = r.get("address") or {}
            parts = [addr.get(k) for k in ("province", "city", "district", "detail")] if isinstance(addr, dict) else []
            address = "".join(p for p in parts if p) or None
            address = address.strip()[:255] if address is not None else None
            group = r.get("customer_group")
            group = self._look(self.groups, group.strip().upper() if group else None, "customer_groups", "FGroup")
            seller = r.get("salesperson")
            seller = self._look(self.sellers, seller.strip().upper() if seller else None, "salespersons", "FSELLER")
            cur = r.get("currency")
            cur = cur if cur and cur.strip() else "CNY"
            cur = self._look(self.currencies, cur.strip().upper(), "currencies", "FTRADINGCURRID")
        except Refused as no:
            return Rejected(no.field, no.reason, "refused")
        return Mapped({
            "FNumber": number, "FName": name, "FShortName": short, "FTEL": phone, "FTAXREGISTERCODE": credit,
            "FADDRESS": address, "FGroup": {"FNumber": group}, "FSELLER": {"FNumber": seller},
            "FTRADINGCURRID": {"FNumber": cur}, "FCreateOrgId": {"FNumber": "100"}, "FUseOrgId": {"FNumber": "100"},
        }, number)

    def order(self, r: dict[str, Any]) -> Mapped | Rejected | Skipped:
        try:
            bill = r.get("order_no")
            bill = halfwidth(str(bill)).strip().upper() if bill is not None else None
            if not bill:
                raise Refused("FBillNo", "required value is missing")
            if not _BILL.fullmatch(bill):
                raise Refused("FBillNo", "bad number")
            when = r.get("order_date")
            if not when:
                raise Refused("FDate", "required value is missing")
            try:
                fdate = datetime.fromisoformat(when).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
            except ValueError:
                raise Refused("FDate", "not an ISO 8601 date/time") from None
            cust = r.get("customer_code")
            cust = halfwidth(str(cust)).strip().upper() if cust is not None else None
            if not cust:
                raise Refused("FCustId.FNumber", "required value is missing")
            seller = r.get("salesperson")
            seller = self._look(self.sellers, seller.strip().upper() if seller else None, "salespersons", "FSalerId")
            if not seller:
                raise Refused("FSalerId.FNumber", "required value is missing")
            note = r.get("remark")
            note = _SPACES.sub(" ", note).strip()[:255] if note is not None else None
            cur = r.get("currency")
            cur = cur if cur and cur.strip() else "CNY"
            cur = self._look(self.currencies, cur.strip().upper(), "currencies", "FSettleCurrId")
            lines = r.get("lines")
            if not isinstance(lines, list) or not lines:
                raise Refused("FSaleOrderEntry", "required value is missing")
            entries = []
            for i, line in enumerate(lines):
                sku = line.get("sku")
                sku = halfwidth(str(sku)).strip().upper() if sku is not None else None
                material = self._look(self.materials, sku, "material_codes", f"FSaleOrderEntry[{i}].FMaterialId")
                if not material:
                    raise Refused(f"FSaleOrderEntry[{i}].FMaterialId", "required value is missing")
                unit = line.get("unit")
                unit = self._look(self.units, unit.strip() if unit else None, "units", f"FSaleOrderEntry[{i}].FUnitID")
                if not unit:
                    raise Refused(f"FSaleOrderEntry[{i}].FUnitID", "required value is missing")
                qty = dec(line["qty"])
                if qty <= 0:
                    raise Refused(f"FSaleOrderEntry[{i}].FQty", "out of range")
                price = dec(line["price"]).quantize(CENT, rounding=ROUND_HALF_UP)
                if price < 0:
                    raise Refused(f"FSaleOrderEntry[{i}].FTaxPrice", "out of range")
                rate = line.get("tax_rate")
                rate = 13 if rate is None else rate
                rate = Decimal(self._look(self.rates, str(int(dec(rate))), "tax_rates", "FEntryTaxRate") or "0")
                amount = line.get("amount")
                amount = (dec(amount) if amount is not None and amount != "" else qty * dec(line["price"])
                          ).quantize(CENT, rounding=ROUND_HALF_UP)
                entries.append({"FMaterialId": {"FNumber": material}, "FUnitID": {"FNumber": unit}, "FQty": qty,
                                "FTaxPrice": price, "FEntryTaxRate": rate, "FAllAmount": amount})
        except Refused as no:
            return Rejected(no.field, no.reason, "refused")
        return Mapped({
            "FBillNo": bill, "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}, "FDate": fdate, "FSaleOrgId": {"FNumber": "100"},
            "FCustId": {"FNumber": cust}, "FSalerId": {"FNumber": seller}, "FNote": note,
            "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": cur}}, "FSaleOrderEntry": entries,
        }, bill)


# --- jsonata-python, the same mapping ----------------------------------------------------------------

JSONATA_CUSTOMER = """
status = "正式" ? {
  "FNumber": $uc($trim($hw(customer_code))),
  "FName": $trim($replace(customer_name, /\\s+/, " ")),
  "FShortName": $substring($trim($trim(short_name) != "" ? short_name : customer_name), 0, 40),
  "FTEL": $phone(phone),
  "FTAXREGISTERCODE": $uscc(credit_code),
  "FADDRESS": $substring($trim($join([address.province, address.city, address.district, address.detail], "")), 0, 255),
  "FGroup": {"FNumber": $need($groups, $uc($trim(customer_group)), "customer_groups")},
  "FSELLER": {"FNumber": $need($sellers, $uc($trim(salesperson)), "salespersons")},
  "FTRADINGCURRID": {"FNumber": $need($currencies, $uc($trim(currency ? currency : "CNY")), "currencies")},
  "FCreateOrgId": {"FNumber": "100"},
  "FUseOrgId": {"FNumber": "100"}
} : "skip"
"""

JSONATA_ORDER = """
{
  "FBillNo": $uc($trim($hw(order_no))),
  "FBillTypeID": {"FNUMBER": "XSDD01_SYS"},
  "FDate": $fromMillis($toMillis(order_date), "[Y0001]-[M01]-[D01] [H01]:[m01]:[s01]", "+0800"),
  "FSaleOrgId": {"FNumber": "100"},
  "FCustId": {"FNumber": $uc($trim($hw(customer_code)))},
  "FSalerId": {"FNumber": $need($sellers, $uc($trim(salesperson)), "salespersons")},
  "FNote": $substring($trim($replace(remark, /\\s+/, " ")), 0, 255),
  "FSaleOrderFinance": {"FSettleCurrId": {
    "FNumber": $need($currencies, $uc($trim(currency ? currency : "CNY")), "currencies")}},
  "FSaleOrderEntry": [lines.{
    "FMaterialId": {"FNumber": $need($materials, $uc($trim($hw(sku))), "material_codes")},
    "FUnitID": {"FNumber": $need($units, $trim(unit), "units")},
    "FQty": $dec(qty),
    "FTaxPrice": $round2(price),
    "FEntryTaxRate": $dec($need($rates, $string(tax_rate ? tax_rate : 13), "tax_rates")),
    "FAllAmount": $round2($exists(amount) ? amount : qty * price)
  }]
}
"""


def jsonata_mapper(expr: str, bindings: dict[str, Any], key: str) -> Callable[[dict[str, Any]], Any]:
    compiled = jsonata.Jsonata(expr)

    def need(table: dict[str, str], code: Any, name: str) -> str:
        found = table.get(code)
        if found is None:
            raise Refused(name, f"code {code!r} not found in lookup table {name}")
        return found

    for name, fn in {
        "hw": lambda s: None if s is None else halfwidth(str(s)),
        "uc": lambda s: None if s is None else s.upper(),
        "phone": lambda s: normalise_phone(s) if s and s.strip() else None,
        "uscc": lambda s: normalise_uscc(s) if s and s.strip() else None,
        "need": need,
        "dec": lambda v: None if v is None else dec(v),
        "round2": lambda v: None if v is None else dec(v).quantize(CENT, rounding=ROUND_HALF_UP),
    }.items():
        compiled.register_lambda(name, fn)

    def apply(record: dict[str, Any]) -> Any:
        try:
            out = compiled.evaluate(record, bindings)
        except Exception as exc:
            return Rejected("", str(exc), "jsonata")
        if out == "skip":
            return Skipped("filter")
        return Mapped(out, out.get(key))

    return apply


# --- timing ------------------------------------------------------------------------------------------


def rates(fns: Sequence[Callable[[dict[str, Any]], Any]], records: Sequence[dict[str, Any]],
          repeat: int, chunk: int = 250) -> list[float]:
    """Records per CPU-second of each function.

    The records are cut into chunks; every chunk is timed for each function in turn (CPU time of
    this process, so other work on the machine does not count), the best of `repeat` rounds is
    kept per chunk and function, and the chunks are summed. Load spikes then hit all functions
    alike instead of deciding the ratio.
    """
    chunks = [records[i:i + chunk] for i in range(0, len(records), chunk)]
    total = [0.0] * len(fns)
    for part in chunks:
        best = [float("inf")] * len(fns)
        for round_no in range(repeat):
            order = list(enumerate(fns)) if round_no % 2 == 0 else list(enumerate(fns))[::-1]
            for i, fn in order:
                start = time.process_time()
                for record in part:
                    fn(record)
                best[i] = min(best[i], time.process_time() - start)
        for i, b in enumerate(best):
            total[i] += b
    return [len(records) / t for t in total]


def same_output(name: str, fns: dict[str, Callable[[dict[str, Any]], Any]], records: Sequence[dict[str, Any]]) -> None:
    """Refuse to time mappings that do not do the same thing."""
    for record in records:
        outs = {label: fn(record) for label, fn in fns.items()}
        kinds = {label: type(o).__name__ for label, o in outs.items()}
        if len(set(kinds.values())) != 1:
            raise SystemExit(f"{name}: outcomes differ for {record.get('_id')}: {kinds}")
        datas = [o.data for o in outs.values() if isinstance(o, Mapped)]
        if datas and any(d != datas[0] for d in datas[1:]):
            raise SystemExit(f"{name}: outputs differ for {record.get('_id')}: {datas}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--jsonata-fraction", type=float, default=0.1,
                        help="share of the records jsonata maps (it is slow; its rate is per record anyway)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    tables = LookupTables()
    customer_plan = compile_mapping(CUSTOMER_YAML, tables=tables)
    order_plan = compile_mapping(ORDER_YAML, tables=tables)
    hand = HandWritten(tables)
    bindings = {"groups": hand.groups, "sellers": hand.sellers, "currencies": hand.currencies,
                "materials": hand.materials, "units": hand.units, "rates": hand.rates}
    jn_customer = jsonata_mapper(JSONATA_CUSTOMER, bindings, "FNumber")
    jn_order = jsonata_mapper(JSONATA_ORDER, bindings, "FBillNo")

    customers, orders = make_customers(args.customers), make_orders(args.orders)
    same_output("customer", {"compiled": customer_plan.apply, "hand": hand.customer, "jsonata": jn_customer},
                customers[:200])
    same_output("sales_order", {"compiled": order_plan.apply, "hand": hand.order, "jsonata": jn_order}, orders[:200])

    rows = []
    for name, plan, manual, jn, records in (
        ("customer", customer_plan.apply, hand.customer, jn_customer, customers),
        ("sales_order", order_plan.apply, hand.order, jn_order, orders),
    ):
        few = records[: max(50, int(len(records) * args.jsonata_fraction))]
        r_compiled, r_hand = rates([plan, manual], records, args.repeat)
        (r_jsonata,) = rates([jn], few, max(1, args.repeat // 2))
        rows.append((name, r_compiled, r_hand, r_jsonata))

    print(f"{'mapping':<12} {'compiled rec/s':>15} {'hand-written':>13} {'jsonata':>10} "
          f"{'vs hand':>8} {'vs jsonata':>11}")
    ok = True
    for name, c, h, j in rows:
        print(f"{name:<12} {c:>15,.0f} {h:>13,.0f} {j:>10,.0f} {c / h:>7.2f}x {c / j:>10.1f}x")
        ok = ok and c / h >= 0.7 and c / j >= 10
    print("targets: >= 0.70x hand-written, >= 10x jsonata-python:", "met" if ok else "NOT met")
    for name, c, h, j in rows:
        report(f"mapping {name}: compiled / hand-written", c / h, 0.7, ">=", f"{c:,.0f} vs {h:,.0f} rec/s")
        report(f"mapping {name}: compiled / jsonata", c / j, 10.0, ">=", f"{c:,.0f} vs {j:,.0f} rec/s")


if __name__ == "__main__":
    main()
