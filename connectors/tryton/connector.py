"""The `tryton` connector: customers, sales orders, receipts and account status over JSON-RPC.

This class declares the entities and routes each call to the module of its entity: party.py
(customers), sale.py (sales orders), invoice.py (receipts), account_status.py; changes.py reads
incrementally, writer.py creates or updates. Record shapes (the dicts mappings produce and
consume) are documented in `connectors/tryton/__init__.py`, the wire facts in rpc.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from erphub.connectors.base import ConnectorBase, ConnectorSettings, SystemContext
from erphub.connectors.discovery import field_info
from erphub.connectors.tryton.account_status import STATUS_FIELDS, AccountStatus
from erphub.connectors.tryton.changes import Reader
from erphub.connectors.tryton.invoice import RECEIPT_FIELDS, Receipts
from erphub.connectors.tryton.party import CUSTOMER_FIELDS, Parties
from erphub.connectors.tryton.refdata import RefData
from erphub.connectors.tryton.rpc import TrytonRPC
from erphub.connectors.tryton.sale import SALE_FIELDS, SALE_LINE_FIELDS, Sales
from erphub.connectors.tryton.settings import TrytonSettings
from erphub.connectors.tryton.writer import Finder, WritePlan, write_batch
from erphub.core.errors import CannotFetch, ConfigError, PermanentError
from erphub.core.records import (
    Cursor,
    Direction,
    EntitySpec,
    Page,
    Record,
    WriteAction,
    WriteRequest,
    WriteResult,
)

RW = frozenset({Direction.READ, Direction.WRITE})
# Models whose field definitions describe an entity's record shape (the first is the entity's own).
DISCOVERY_MODELS: dict[str, tuple[str, ...]] = {
    "customer": ("party.party", "party.address", "party.contact_mechanism"),
    "sales_order": ("sale.sale",),
    "receipt": ("account.invoice",),
    "account_status": ("party.party",),
}
RO = frozenset({Direction.READ})


class TrytonConnector(ConnectorBase):
    kind: ClassVar[str] = "tryton"
    settings_model: ClassVar[type[ConnectorSettings]] = TrytonSettings

    def __init__(self, settings: TrytonSettings, context: SystemContext) -> None:
        self.settings = settings
        self.context = context
        self.rpc = TrytonRPC(
            context,
            url=settings.url,
            database=settings.database,
            login=settings.login,
            password=settings.password,
            language=settings.language,
        )
        self.ref = RefData(self.rpc)
        # The clock that decides what is overdue (injectable so tests need not wait for a due date);
        # the entities call it through the connector, so replacing `now` reaches them.
        self.now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
        self.parties = Parties(self.rpc, self.ref, settings)
        self.sales = Sales(self.rpc, self.ref, settings, self.parties.find)
        self.receipts = Receipts(self.rpc, lambda: self.now())
        self.account_status = AccountStatus(self.rpc, self.receipts, lambda: self.now())
        self._readers: dict[str, Reader] = {
            "customer": self.parties.read,
            "sales_order": self.sales.read,
            "receipt": self.receipts.read,
            "account_status": self.account_status.read,
        }
        self._plans: dict[str, Callable[[], WritePlan]] = {
            "customer": self.parties.plan,
            "sales_order": self.sales.plan,
        }
        self._fetchers: dict[str, Callable[[Sequence[str]], dict[str, Record]]] = {
            "customer": self.parties.fetch,
            "sales_order": self.sales.fetch,
            "receipt": self.receipts.fetch,
        }
        self._finders: dict[str, Finder] = {
            "customer": self.parties.find,
            "sales_order": self.sales.find,
            "receipt": self.receipts.find,
            "account_status": self.parties.find,
        }

    # -- protocol --------------------------------------------------------------------------
    def entities(self) -> Mapping[str, EntitySpec]:
        return {
            "customer": EntitySpec(
                "customer",
                "party.party",
                RW,
                CUSTOMER_FIELDS,
                "code",
                description="parties with their first address and contact mechanisms",
            ),
            "sales_order": EntitySpec(
                "sales_order",
                "sale.sale",
                RW,
                SALE_FIELDS,
                "reference",
                {"lines": SALE_LINE_FIELDS},
                description="sales keyed by `reference` (the CRM order number)",
            ),
            "receipt": EntitySpec(
                "receipt",
                "account.invoice",
                RO,
                RECEIPT_FIELDS,
                "number",
                description="posted customer invoices with what was paid and what is due",
            ),
            "account_status": EntitySpec(
                "account_status",
                "party.party",
                RO,
                STATUS_FIELDS,
                "customer_code",
                description="per customer: outstanding, overdue, paid status",
            ),
        }

    def read_changes(
        self, entity: str, since: Cursor | None, *, page_size: int = 100, until: Cursor | None = None
    ) -> Iterator[Page]:
        self.spec(entity)
        yield from self._readers[entity](since, until, page_size)

    def write(self, entity: str, batch: Sequence[WriteRequest]) -> list[WriteResult]:
        self.spec(entity)
        if entity not in self._plans:
            raise ConfigError(f"entity {entity!r} of tryton cannot be written (read-only)")
        return write_batch(self.rpc, self._plans[entity](), batch)

    def lookup(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        """By key, exactly: Tryton's `in` domain compares text as PostgreSQL does (case, width and
        spaces count; party codes and sale references are varchar)."""
        self.spec(entity)
        return {k: str(v["id"]) for k, v in self._finders[entity](list(keys)).items()}

    # -- SupportsCompare: `--full` compares sales orders with what Tryton holds now --------------
    def compares(self, entity: str) -> bool:
        return entity == "sales_order"

    def differing(self, entity: str, batch: Sequence[WriteRequest]) -> set[str]:
        if entity != "sales_order":
            raise ConfigError(f"entity {entity!r} of tryton cannot be compared with the ERP's records")
        return self.sales.differing(batch)

    def fetch(self, entity: str, ids: Sequence[str]) -> dict[str, Record]:
        """`SupportsFetch`: records by id as they are now (`search_read` on `id in`, see changes.py).

        account_status is computed per customer from several models and cannot be fetched by id.
        """
        self.spec(entity)
        if entity not in self._fetchers:
            raise CannotFetch(f"entity {entity!r} of tryton is computed and cannot be fetched by id",
                              system=self.context.name)
        return self._fetchers[entity](ids)

    def delete_modes(self, entity: str) -> frozenset[str]:
        """`SupportsDelete`: a customer (party.party, a DeactivableMixin model) can be deactivated; sales
        and invoices are documents with a workflow and take no deletion."""
        self.spec(entity)
        return frozenset({"deactivate"}) if entity == "customer" else frozenset()

    def delete(self, entity: str, ids: Sequence[str], *, mode: str) -> list[WriteResult]:
        """Deactivate parties: `write` `active = False` (inactive records drop out of searches and reads,
        Tryton's `active_test`); a party that no longer exists counts as done. A customer written
        again later finds its inactive party by code and reactivates it (`Parties.find`)."""
        if mode not in self.delete_modes(entity):
            raise ConfigError(f"tryton cannot {mode} {entity!r} records")
        wanted = [int(i) for i in ids if str(i).isdigit()]
        existing = self.rpc.search("party.party", [["id", "in", wanted], ["active", "in", [True, False]]])
        if existing:
            self.rpc.write("party.party", existing, {"active": False})
        return [WriteResult(i, i, WriteAction.UPDATED) for i in ids]

    def check(self) -> None:
        version = self.rpc.server_version()
        if not version.startswith(("7.", "8.")):
            raise PermanentError(f"unsupported Tryton version {version}", system=self.context.name)
        if "company" not in self.rpc.context or not self.rpc.context.get("company"):
            raise PermanentError(
                "the Tryton user has no company (set one in its preferences)", system=self.context.name
            )
        self.rpc.search_read("party.party", [], ["code"], limit=1)

    def discover(self, entities: Sequence[str]) -> dict[str, dict[str, Any]]:
        """`SupportsDiscovery`: each entity's fields with types from Tryton's own `fields_get` (the
        model's field definitions, trytond ModelView.fields_get, RPC-exposed) of the model it is read
        from; fields of the record shape that the connector computes (addresses, amounts, states of
        related records) are listed as such. Read-only entities list read-only fields."""
        out: dict[str, dict[str, Any]] = {}
        specs = self.entities()
        for entity in entities:
            spec = self.spec(entity)
            models = DISCOVERY_MODELS.get(entity, (spec.native_name,))
            defs: dict[str, Any] = {}
            for model in reversed(models):  # the entity's own model wins over related ones
                defs.update(self.rpc.model(model, "fields_get", None) or {})
            writable = Direction.WRITE in specs[entity].directions

            def info(name: str, defs: dict[str, Any] = defs, writable: bool = writable) -> dict[str, Any]:
                d = defs.get(name)
                if not isinstance(d, dict):
                    return field_info("computed", createable=False, updateable=False)
                return field_info(str(d.get("type")), label=d.get("string"), required=bool(d.get("required")),
                                  createable=writable and not d.get("readonly"),
                                  updateable=writable and not d.get("readonly"), reference=d.get("relation"))

            fields = {name: info(name) for name in sorted(spec.fields or ())}
            if entity == "sales_order":
                line_defs = self.rpc.model("sale.line", "fields_get", None) or {}
                fields["lines"] = field_info("one2many", label="Lines", items={
                    name: info(name, line_defs) for name in sorted(spec.child_fields.get("lines", ()))})
            out[entity] = {"native_name": spec.native_name, "key_field": spec.key_field, "source": "fields_get",
                           "fields": fields}
        return out

    def close(self) -> None:
        self.rpc.close()
