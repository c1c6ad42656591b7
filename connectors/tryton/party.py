"""Customers: Tryton parties (`party.party`, key `code`), read and written with their first address,
first contact mechanism of each type and first identifier (the shape is in `__init__.py`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from erphub.connectors.tryton.changes import ReadPlan, Rows, fetch_records, read_pages
from erphub.connectors.tryton.refdata import RefData
from erphub.connectors.tryton.rpc import TrytonRPC
from erphub.connectors.tryton.settings import TrytonSettings
from erphub.connectors.tryton.values import check_fields, reference
from erphub.connectors.tryton.writer import WritePlan
from erphub.core.errors import RecordWriteRefused
from erphub.core.records import Cursor, Page, Record, WriteRequest

CUSTOMER_FIELDS = frozenset(
    {
        "code",
        "name",
        "tax_identifier",
        "phone",
        "mobile",
        "email",
        "street",
        "city",
        "postal_code",
        "subdivision",
        "country",
    }
)
READ = ReadPlan("party.party", (), ("code", "name", "addresses", "contact_mechanisms", "identifiers"))
MECHANISM_KINDS = ("phone", "mobile", "email")  # contact mechanism types that are customer fields


class Parties:
    def __init__(self, rpc: TrytonRPC, ref: RefData, settings: TrytonSettings) -> None:
        self.rpc = rpc
        self.ref = ref
        self.settings = settings

    def read(self, since: Cursor | None, until: Cursor | None, page_size: int) -> Iterator[Page]:
        return read_pages(self.rpc, READ, self.data, since, until, page_size)

    def fetch(self, ids: Sequence[str]) -> dict[str, Record]:
        return fetch_records(self.rpc, READ, self.data, ids)

    def data(self, rows: Rows) -> Rows:
        """Customer records of party rows (reads their first address, mechanisms and identifier)."""
        first_address = {r["id"]: r["addresses"][0] for r in rows if r.get("addresses")}
        addresses = {
            a["id"]: a
            for a in self.rpc.read(
                "party.address",
                list(first_address.values()),
                ["street", "city", "postal_code", "country.code", "subdivision.code"],
            )
        }
        mech_ids = [m for r in rows for m in r.get("contact_mechanisms") or []]
        mechanisms = {m["id"]: m for m in self.rpc.read("party.contact_mechanism", mech_ids, ["type", "value"])}
        ident_ids = [i for r in rows for i in (r.get("identifiers") or [])[:1]]
        identifiers = {i["id"]: i["code"] for i in self.rpc.read("party.identifier", ident_ids, ["code"])}
        out = []
        for r in rows:
            addr = addresses.get(first_address.get(r["id"], -1), {})
            mechs = [mechanisms[m] for m in r.get("contact_mechanisms") or [] if m in mechanisms]

            def first(kind: str, mechs: list[dict[str, Any]] = mechs) -> str | None:
                return next((m["value"] for m in mechs if m["type"] == kind), None)

            idents = r.get("identifiers") or []
            out.append(
                {
                    "code": r["code"],
                    "name": r["name"],
                    "tax_identifier": identifiers.get(idents[0]) if idents else None,
                    "phone": first("phone"),
                    "mobile": first("mobile"),
                    "email": first("email"),
                    "street": addr.get("street") or None,
                    "city": addr.get("city") or None,
                    "postal_code": addr.get("postal_code") or None,
                    "subdivision": (addr.get("subdivision.") or {}).get("code"),  # ISO code, as the mappings write it
                    "country": (addr.get("country.") or {}).get("code"),
                }
            )
        return out

    def find(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Parties by code, with the ids an update and a sale's header need. Deactivated parties too:
        Tryton's searches skip them unless asked (`active_test`), yet a code stays taken by its
        inactive party (`code_uniq` is `Unique(code)`, party/party.py), so a customer whose party was
        deactivated (by `on_delete: deactivate`, or by hand) and who comes back is updated and
        reactivated, not created again and refused as a duplicate code for ever."""
        if not keys:
            return {}
        rows = self.rpc.search_read(
            "party.party", [["code", "in", keys], ["active", "in", [True, False]]],
            ["code", "active", "addresses", "contact_mechanisms", "identifiers"],
        )
        return {r["code"]: r for r in rows}

    def plan(self) -> WritePlan:
        return WritePlan("party.party", "code", "customer", self.find, self.create_values, self.update)

    def create_values(self, req: WriteRequest, key: str) -> dict[str, Any]:
        data = req.data
        check_fields(data, CUSTOMER_FIELDS, "customer")
        if not data.get("name"):
            raise RecordWriteRefused("required", "customer name is required", "name")
        values: dict[str, Any] = {"code": key, "name": data["name"]}
        address = self._address_values(data)
        values["addresses"] = [["create", [address]]]
        mechanisms = [{"type": kind, "value": str(data[kind])} for kind in MECHANISM_KINDS if data.get(kind)]
        if mechanisms:
            values["contact_mechanisms"] = [["create", mechanisms]]
        if data.get("tax_identifier"):
            values["identifiers"] = [["create", [self._identifier(data["tax_identifier"])]]]
        return values

    def update(self, req: WriteRequest, existing: dict[str, Any]) -> None:
        """Change only the fields present; a present empty value clears (or deletes) it."""
        data = req.data
        check_fields(data, CUSTOMER_FIELDS, "customer")
        values: dict[str, Any] = {}
        if data.get("name"):
            values["name"] = data["name"]
        address = self._address_values(data)
        if address:
            addr_ids = existing.get("addresses") or []
            values["addresses"] = [["write", addr_ids[:1], address]] if addr_ids else [["create", [address]]]
        kinds = [k for k in MECHANISM_KINDS if k in data]
        if kinds:
            current = self.rpc.read(
                "party.contact_mechanism", existing.get("contact_mechanisms") or [], ["type", "value"]
            )
            ops: list[Any] = []
            for kind in kinds:
                match = next((m for m in current if m["type"] == kind), None)
                if data[kind] and match is None:
                    ops.append(["create", [{"type": kind, "value": str(data[kind])}]])
                elif data[kind] and match is not None and match["value"] != str(data[kind]):
                    ops.append(["write", [match["id"]], {"value": str(data[kind])}])
                elif not data[kind] and match is not None:
                    ops.append(["delete", [match["id"]]])
            if ops:
                values["contact_mechanisms"] = ops
        if "tax_identifier" in data:
            idents = existing.get("identifiers") or []
            code = data["tax_identifier"]
            if code and idents:
                values["identifiers"] = [["write", idents[:1], self._identifier(code)]]
            elif code:
                values["identifiers"] = [["create", [self._identifier(code)]]]
            elif idents:
                values["identifiers"] = [["delete", idents[:1]]]
        if not existing.get("active", True):  # False, or 0 as some Tryton backends answer it
            # A customer written again exists again; first, as an inactive party's fields are read-only
            # (DeactivableMixin: "You are not allowed to modify the field ...").
            self.rpc.write("party.party", [existing["id"]], {"active": True})
        if values:
            self.rpc.write("party.party", [existing["id"]], values)

    def _address_values(self, data: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in ("street", "city", "postal_code"):
            if name in data:
                values[name] = data[name] or None
        if data.get("country"):
            values["country"] = reference(self.ref.country, str(data["country"]), "country")
        if data.get("subdivision"):
            values["subdivision"] = reference(self.ref.subdivision, str(data["subdivision"]), "subdivision")
        return values

    def _identifier(self, code: Any) -> dict[str, Any]:
        # The type makes Tryton check the code (settings.tax_identifier_type; None accepts any).
        return {"type": self.settings.tax_identifier_type, "code": str(code)}
