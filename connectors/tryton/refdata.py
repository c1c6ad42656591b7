"""Reference data looked up by business code (product code, unit, currency, ...), cached per connector.

Reference data changes rarely and a lookup per record would double the calls of every write, so
each table is read once; a miss re-reads it once before the record is refused (someone may have
added the product since).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from erphub.connectors.tryton.rpc import TrytonRPC
from erphub.core.errors import UnknownReference


class RefData:
    def __init__(self, rpc: TrytonRPC) -> None:
        self.rpc = rpc
        self._tables: dict[str, dict[str, Any]] = {}

    def _table(
        self, name: str, load: Callable[[], dict[str, Any]], *, reload: bool = False
    ) -> dict[str, Any]:
        if reload or name not in self._tables:
            self._tables[name] = load()
        return self._tables[name]

    def _get(self, name: str, load: Callable[[], dict[str, Any]], key: str, what: str, field: str) -> Any:
        wanted = key.strip().casefold()
        for reload in (False, True):
            table = self._table(name, load, reload=reload)
            if wanted in table:
                return table[wanted]
        raise UnknownReference(what, key, field)

    # -- tables ------------------------------------------------------------------------------
    def product(self, code: str, field: str = "product") -> dict[str, Any]:
        """{id, uom (id), uom_category (id), taxes (ids), tax_rate (sum of percentage rates)}."""

        def load() -> dict[str, Any]:
            # Customer taxes live on the accounting category (the template's are a Python property).
            rows = self.rpc.search_read(
                "product.product", [["salable", "=", True]],
                ["code", "sale_uom", "default_uom.category", "template.account_category"],
            )
            category_ids = sorted({c for r in rows if (c := (r.get("template.") or {}).get("account_category"))})
            categories = {
                c["id"]: list(c.get("customer_taxes_used") or [])
                for c in self.rpc.read("product.category", category_ids, ["customer_taxes_used"])
            }
            taxes = {t["id"]: t for t in self.rpc.search_read("account.tax", [], ["rate", "type"])}
            out: dict[str, Any] = {}
            for row in rows:
                if not row.get("code"):
                    continue
                tax_ids = categories.get((row.get("template.") or {}).get("account_category"), [])
                rate = sum(
                    (Decimal(taxes[t]["rate"] or 0) for t in tax_ids
                     if t in taxes and taxes[t]["type"] == "percentage"),
                    Decimal(0),
                )
                category = (row.get("default_uom.") or {}).get("category")
                out[str(row["code"]).casefold()] = {
                    "id": row["id"], "uom": row["sale_uom"], "uom_category": category,
                    "taxes": tax_ids, "tax_rate": rate,
                }
            return out

        return dict(self._get("products", load, code, "product", field))

    def unit(self, name: str, field: str = "unit") -> dict[str, Any]:
        """By unit name or symbol: {id, category}."""

        def load() -> dict[str, Any]:
            out: dict[str, Any] = {}
            for row in self.rpc.search_read("product.uom", [], ["name", "symbol", "category"]):
                entry = {"id": row["id"], "category": row["category"]}
                out.setdefault(str(row["symbol"]).casefold(), entry)
                out[str(row["name"]).casefold()] = entry
            return out

        return dict(self._get("units", load, name, "unit", field))

    def unit_name(self, unit_id: int) -> str:
        def load() -> dict[str, Any]:
            return {str(r["id"]): r["name"] for r in self.rpc.search_read("product.uom", [], ["name"])}

        return str(self._get("unit_names", load, str(unit_id), "unit", "unit"))

    def currency(self, code: str, field: str = "currency") -> int:
        def load() -> dict[str, Any]:
            return {
                str(r["code"]).casefold(): r["id"]
                for r in self.rpc.search_read("currency.currency", [], ["code"])
            }

        return int(self._get("currencies", load, code, "currency", field))

    def country(self, code: str, field: str = "country") -> int:
        def load() -> dict[str, Any]:
            out: dict[str, Any] = {}
            for r in self.rpc.search_read("country.country", [], ["code", "name"]):
                out[str(r["name"]).casefold()] = r["id"]
                if r.get("code"):
                    out[str(r["code"]).casefold()] = r["id"]
            return out

        return int(self._get("countries", load, code, "country", field))

    def subdivision(self, name: str, field: str = "subdivision") -> int:
        def load() -> dict[str, Any]:
            out: dict[str, Any] = {}
            for r in self.rpc.search_read("country.subdivision", [], ["code", "name"]):
                out[str(r["name"]).casefold()] = r["id"]
                if r.get("code"):
                    out[str(r["code"]).casefold()] = r["id"]
            return out

        return int(self._get("subdivisions", load, name, "subdivision", field))

    def payment_term(self, name: str, field: str = "payment_term") -> int:
        def load() -> dict[str, Any]:
            return {
                str(r["name"]).casefold(): r["id"]
                for r in self.rpc.search_read("account.invoice.payment_term", [], ["name"])
            }

        return int(self._get("payment_terms", load, name, "payment term", field))

    def tax_rates(self) -> dict[int, Decimal]:
        def load() -> dict[str, Any]:
            return {
                str(t["id"]): Decimal(t["rate"] or 0)
                for t in self.rpc.search_read("account.tax", [["type", "=", "percentage"]], ["rate"])
            }

        return {int(k): v for k, v in self._table("tax_rates", load).items()}
