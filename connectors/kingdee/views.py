"""Read-only views the business processes need, computed from several Kingdee forms.

order_shipment  (one record per sales order that an outbound delivery touched; key FBillNo)
    {FID, FBillNo, FCustId{FNumber}, FDate, FShipDate (latest audited SAL_OUTSTOCK FDate, or null),
     FShipBills (its audited outstock numbers, comma separated), FQty, FStockOutQty, FRemainOutQty
     (order totals), FSaleOrderEntry[{FEntryID, FMaterialId{FNumber}, FQty, FStockOutQty, FRemainOutQty}]}
    Shipped quantities are the audited outstock lines' FRealQty of the order (FSoorDerno) per material,
    given to the order's lines of that material in entry order. Changes are found through the
    outstocks (their change time: the latest of FModifyDate, FApproveDate and FCancelDate, since an
    outstock audited after it was read changes what shipped), so the cursor is the outstock cursor.

customer_account  (one record per customer; key FNumber)
    {FNumber, FName, FReceivable, FReceived, FOutstanding, FOverdue, FAccountStatus
     (overdue | partly_paid | paid | none), FOpenOrders, FLastReceiptDate}
    Receivables are the audited sales orders (FAllAmount summed), due `receivable_days` after FDate;
    audited receipts (AR_RECEIVEBILL) pay the order named in FSALEORDERNO first, the rest pays the
    oldest open orders. A customer appears when one of its orders or receipts was saved, audited or
    cancelled after the cursor, or one of its orders fell due (the start of the day after its due
    date, Shanghai time).

Both are ASSUMPTIONS about how a K/3 Cloud site would expose this (a real site would read 应收单
AR_receivable and its 核销 records for the balance); they use only fields of SCHEMAS.md's forms plus
SAL_OUTSTOCK.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from erphub.connectors.kingdee.query import (
    MAX_IN_LIST,
    MAX_LIMIT,
    SHANGHAI,
    in_filter,
    kd_literal,
    parse_kd_datetime,
    quote,
)
from erphub.connectors.kingdee.schema import SHAPES
from erphub.core.records import Cursor, Direction, EntitySpec, Page, Record

Query = Callable[..., list[list[Any]]]
READ = frozenset({Direction.READ})
ZERO = Decimal(0)

VIEW_SPECS: dict[str, EntitySpec] = {
    "order_shipment": EntitySpec(
        name="order_shipment",
        native_name="SAL_SaleOrder+SAL_OUTSTOCK",
        directions=READ,
        fields=frozenset({"FID", "FBillNo", "FCustId", "FDate", "FShipDate", "FShipBills", "FQty",
                          "FStockOutQty", "FRemainOutQty", "FSaleOrderEntry"}),
        key_field="FBillNo",
        child_fields={"FSaleOrderEntry": frozenset({"FEntryID", "FMaterialId", "FQty", "FStockOutQty",
                                                    "FRemainOutQty"})},
        description="sales orders with their outbound deliveries (computed, read only)",
        state_changes_timestamped=False,  # built from SAL_OUTSTOCK: its UnAudit sets no date (schema.NO_SUBMIT_DATE)
    ),
    "customer_account": EntitySpec(
        name="customer_account",
        native_name="BD_Customer+SAL_SaleOrder+AR_RECEIVEBILL",
        directions=READ,
        fields=frozenset({"FNumber", "FName", "FReceivable", "FReceived", "FOutstanding", "FOverdue",
                          "FAccountStatus", "FOpenOrders", "FLastReceiptDate"}),
        key_field="FNumber",
        description="per customer: receivable, received, outstanding and overdue (computed, read only)",
        state_changes_timestamped=False,  # built from AR_RECEIVEBILL/SAL_SaleOrder: UnAudit sets no date
    ),
}


def _dec(value: Any) -> Decimal:
    return ZERO if value in (None, "") else Decimal(str(value))


def _day(value: Any) -> date | None:
    return None if value in (None, "") else parse_kd_datetime(value).astimezone(SHANGHAI).date()


def _kd_date(value: date) -> str:
    return value.isoformat()


def _after(since: Cursor | None, ts: datetime, record_id: str) -> bool:
    return since is None or (since.updated_at, since.id) < (ts, record_id)


def _within(until: Cursor | None, ts: datetime, record_id: str) -> bool:
    return until is None or (ts, record_id) <= (until.updated_at, until.id)


class KingdeeViews:
    """The views, over the connector's query function and its incremental reader of one form."""

    def __init__(self, query: Query, read_form: Callable[..., Iterator[Page]], receivable_days: int,
                 now: Callable[[], datetime]) -> None:
        self._query = query
        self._read_form = read_form
        self.receivable_days = receivable_days
        self.now = now

    def read(self, entity: str, since: Cursor | None, until: Cursor | None, page_size: int) -> Iterator[Page]:
        if entity == "order_shipment":
            return self._read_shipments(since, until, page_size)
        return self._read_accounts(since, until, page_size)

    # -- helpers --------------------------------------------------------------------------------
    def _all(self, form_id: str, keys: Sequence[str], filter_string: str, order: str) -> list[list[Any]]:
        rows: list[list[Any]] = []
        while True:
            page = self._query(form_id, keys, filter_string, order, limit=MAX_LIMIT, start_row=len(rows))
            rows += page
            if len(page) < MAX_LIMIT:
                return rows

    def _in_chunks(self, form_id: str, keys: Sequence[str], key: str, values: Sequence[str], extra: str,
                   order: str) -> list[list[Any]]:
        rows: list[list[Any]] = []
        for start in range(0, len(values), MAX_IN_LIST):
            flt = in_filter(key, values[start:start + MAX_IN_LIST])
            rows += self._all(form_id, keys, f"{flt} and {extra}" if extra else flt, order)
        return rows

    # -- order_shipment ----------------------------------------------------------------------------
    def _read_shipments(self, since: Cursor | None, until: Cursor | None, page_size: int) -> Iterator[Page]:
        for page in self._read_form("shipment", since, page_size=page_size, until=until):
            stamps: dict[str, datetime] = {}
            for record in page.records:
                for line in record.data.get("FEntity") or []:
                    order_no = str(line.get("FSoorDerno") or "").strip()
                    if order_no:
                        stamps[order_no] = max(stamps.get(order_no, record.updated_at), record.updated_at)
            records = self._shipment_records(stamps) if stamps else []
            yield Page(records, page.checkpoint)

    def _shipment_records(self, stamps: dict[str, datetime]) -> list[Record]:
        order = SHAPES["sales_order"]
        numbers = sorted(stamps)
        keys = ["FID", "FBillNo", "FCustId.FNumber", "FDate", "FSaleOrderEntry_FEntryID",
                "FMaterialId.FNumber", "FQty"]
        orders: dict[str, dict[str, Any]] = {}
        for fid, bill_no, cust, fdate, entry_id, material, qty in self._in_chunks(
                order.form_id, keys, "FBillNo", numbers, "", "FID ASC, FSaleOrderEntry_FEntryID ASC"):
            doc = orders.setdefault(str(bill_no).casefold(), {
                "FID": fid, "FBillNo": bill_no, "FCustId": {"FNumber": cust}, "FDate": fdate, "lines": []})
            if entry_id not in (None, 0, ""):
                doc["lines"].append((entry_id, material, _dec(qty)))
        out_keys = ["FID", "FBillNo", "FDate", "FEntity_FEntryID", "FMaterialID.FNumber", "FRealQty", "FSoorDerno"]
        shipped: dict[tuple[str, str], Decimal] = {}
        dates: dict[str, date] = {}
        bills: dict[str, set[str]] = {}
        for _fid, bill_no, fdate, _entry, material, qty, order_no in self._in_chunks(
                "SAL_OUTSTOCK", out_keys, "FSoorDerno", numbers, "FDocumentStatus = 'C'", "FID ASC"):
            match = str(order_no).casefold()  # Kingdee compares text case-insensitively
            if match not in orders:
                continue
            shipped[(match, str(material))] = shipped.get((match, str(material)), ZERO) + _dec(qty)
            day = _day(fdate)
            if day is not None:
                dates[match] = max(dates.get(match, day), day)
            bills.setdefault(match, set()).add(str(bill_no))
        records = []
        for number in numbers:
            order_doc = orders.get(number.casefold())
            if order_doc is None:
                continue  # an outstock naming an order this ERP does not have: nothing to report
            lines = []
            folded = number.casefold()
            left = {m: q for (n, m), q in shipped.items() if n == folded}
            for index, (entry_id, material, qty) in enumerate(order_doc["lines"]):
                last_of_material = all(m != material for _, m, _ in order_doc["lines"][index + 1:])
                available = left.get(str(material), ZERO)
                out = available if last_of_material else min(available, qty)
                left[str(material)] = available - out
                lines.append({"FEntryID": entry_id, "FMaterialId": {"FNumber": material}, "FQty": qty,
                              "FStockOutQty": out, "FRemainOutQty": max(qty - out, ZERO)})
            data = {
                "FID": order_doc["FID"], "FBillNo": order_doc["FBillNo"], "FCustId": order_doc["FCustId"],
                "FDate": order_doc["FDate"],
                "FShipDate": _kd_date(dates[folded]) if folded in dates else None,
                "FShipBills": ",".join(sorted(bills.get(folded, ()))) or None,
                "FQty": sum((line["FQty"] for line in lines), ZERO),
                "FStockOutQty": sum((line["FStockOutQty"] for line in lines), ZERO),
                "FRemainOutQty": sum((line["FRemainOutQty"] for line in lines), ZERO),
                "FSaleOrderEntry": lines,
            }
            records.append(Record(str(order_doc["FID"]), stamps[number], data))
        records.sort(key=lambda r: (r.updated_at, r.id))
        return records

    # -- customer_account --------------------------------------------------------------------------
    def _read_accounts(self, since: Cursor | None, until: Cursor | None, page_size: int) -> Iterator[Page]:
        now = self.now()
        stamps: dict[str, datetime] = {}

        def touch(number: Any, ts: datetime) -> None:
            if number not in (None, ""):
                stamps[str(number)] = max(stamps.get(str(number), ts), ts)

        # Whole timestamps from the cursor on; the (time, customer) order is re-checked below. Every
        # date a change sets counts: an order or receipt audited (FApproveDate) or cancelled
        # (FCancelDate) changes the account without a new FModifyDate.
        for entity, cust_key in (("sales_order", "FCustId.FNumber"), ("receipt", "FCONTACTUNIT.FNumber")):
            shape = SHAPES[entity]
            for stamp_key in shape.stamp_keys():
                window = [] if since is None else [f"{stamp_key} >= {quote(kd_literal(since.updated_at))}"]
                if until is not None:
                    window.append(f"{stamp_key} <= {quote(kd_literal(until.updated_at))}")
                elif since is None and stamp_key != shape.modify_key:
                    continue  # a full read: every document is already found by FModifyDate
                for cust, stamped in self._all(shape.form_id, [cust_key, stamp_key], " and ".join(window),
                                               "FID ASC"):
                    if stamped not in (None, ""):
                        touch(cust, parse_kd_datetime(stamped))
        # Orders that fell due since the cursor: nothing is saved when that happens.
        last_due = now.astimezone(SHANGHAI).date() - timedelta(days=self.receivable_days + 1)
        due_filter = ["FDocumentStatus = 'C'", f"FDate <= {quote(_kd_date(last_due))}"]
        if since is not None:
            first = since.updated_at.astimezone(SHANGHAI).date() - timedelta(days=self.receivable_days + 1)
            due_filter.append(f"FDate >= {quote(_kd_date(first))}")
        for cust, fdate in self._all("SAL_SaleOrder", ["FCustId.FNumber", "FDate"], " and ".join(due_filter),
                                     "FID ASC"):
            day = _day(fdate)
            if day is None:
                continue
            fell_due = datetime.combine(day + timedelta(days=self.receivable_days + 1), time(), SHANGHAI)
            if fell_due <= now:
                touch(cust, fell_due.astimezone(UTC))
        ordered = sorted((ts, number) for number, ts in stamps.items()
                         if _after(since, ts, number) and _within(until, ts, number))
        if not ordered:
            yield Page([], None)
            return
        for offset in range(0, len(ordered), page_size):
            chunk = ordered[offset:offset + page_size]
            data = self._account_data([number for _, number in chunk], now)
            records = [Record(number, ts, data[number]) for ts, number in chunk if number in data]
            yield Page(records, Cursor(chunk[-1][0], chunk[-1][1]))

    def _account_data(self, numbers: list[str], now: datetime) -> dict[str, dict[str, Any]]:
        today = now.astimezone(SHANGHAI).date()
        names = {str(n).casefold(): (str(n), name) for n, name in self._in_chunks(
            "BD_Customer", ["FNumber", "FName"], "FNumber", numbers, "", "FCUSTID ASC")}
        orders: dict[str, dict[str, Any]] = {}
        for fid, bill_no, cust, fdate, amount in self._in_chunks(
                "SAL_SaleOrder", ["FID", "FBillNo", "FCustId.FNumber", "FDate", "FAllAmount"], "FCustId.FNumber",
                numbers, "FDocumentStatus = 'C'", "FDate ASC, FID ASC"):
            doc = orders.setdefault(str(fid), {"no": str(bill_no), "cust": str(cust).casefold(),
                                               "day": _day(fdate), "amount": ZERO, "paid": ZERO})
            doc["amount"] += _dec(amount)
        by_no = {doc["no"].casefold(): doc for doc in orders.values()}
        received: dict[str, Decimal] = {}
        unallocated: dict[str, Decimal] = {}
        last_receipt: dict[str, date] = {}
        for cust, fdate, amount, order_no in self._in_chunks(
                "AR_RECEIVEBILL", ["FCONTACTUNIT.FNumber", "FDATE", "FRECTOTALAMOUNTFOR", "FSALEORDERNO"],
                "FCONTACTUNIT.FNumber", numbers, "FDOCUMENTSTATUS = 'C'", "FDATE ASC, FID ASC"):
            folded, value = str(cust).casefold(), _dec(amount)
            received[folded] = received.get(folded, ZERO) + value
            day = _day(fdate)
            if day is not None:
                last_receipt[folded] = max(last_receipt.get(folded, day), day)
            target = by_no.get(str(order_no or "").casefold())
            if target is not None and target["cust"] == folded:
                applied = min(value, target["amount"] - target["paid"])
                target["paid"] += applied
                value -= applied
            if value > 0:
                unallocated[folded] = unallocated.get(folded, ZERO) + value
        for doc in orders.values():  # orders arrive oldest first: the rest pays the oldest open ones
            spare = unallocated.get(doc["cust"], ZERO)
            applied = min(spare, doc["amount"] - doc["paid"])
            if applied > 0:
                doc["paid"] += applied
                unallocated[doc["cust"]] = spare - applied
        out: dict[str, dict[str, Any]] = {}
        for number in numbers:
            folded = number.casefold()
            if folded not in names:
                continue
            mine = [d for d in orders.values() if d["cust"] == folded]
            open_orders = [d for d in mine if d["amount"] - d["paid"] > 0]
            overdue = sum((d["amount"] - d["paid"] for d in open_orders if d["day"] is not None
                           and d["day"] + timedelta(days=self.receivable_days) < today), ZERO)
            if overdue > 0:
                status = "overdue"
            elif any(d["paid"] > 0 for d in open_orders):
                status = "partly_paid"
            elif mine and not open_orders:
                status = "paid"
            else:
                status = "none"
            out[number] = {
                "FNumber": names[folded][0],
                "FName": names[folded][1],
                "FReceivable": sum((d["amount"] for d in mine), ZERO),
                "FReceived": received.get(folded, ZERO),
                "FOutstanding": sum((d["amount"] - d["paid"] for d in open_orders), ZERO),
                "FOverdue": overdue,
                "FAccountStatus": status,
                "FOpenOrders": len(open_orders),
                "FLastReceiptDate": _kd_date(last_receipt[folded]) if folded in last_receipt else None,
            }
        return out

