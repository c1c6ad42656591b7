"""Orders and OrderItems as Salesforce takes them: price books, and create-only fields sent only on create.

Facts (Salesforce Object Reference, "Order" and "OrderItem",
developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_order.htm
and .../sforce_api_objects_orderitem.htm; summarised in shared/reference/vendor-gaps.md):
- an Order that takes items needs `Pricebook2Id`; an OrderItem needs `PricebookEntryId`, an entry of
  that price book (its product follows from the entry; `Product2Id` is not createable on the item);
- `OrderItem.OrderId` and `OrderItem.PricebookEntryId` are create-only: an update that sends them is
  refused (INVALID_FIELD_FOR_INSERT_UPDATE), so a re-upsert of an existing item must leave them out.

The mapping names an item's product by reference (`Product2: {SKU__c: "P-1001"}`); here it becomes
the `PricebookEntryId` of that product in the order's price book (one query for the products, one
for their entries). The price book is the configured one, else the org's standard price book.
Unverifiable without an org: the exact error texts; whether re-sending an unchanged Pricebook2Id on an
Order with items is accepted (we never re-send it, so it does not matter).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from erphub.connectors.salesforce.schema import soql_string

Query = Callable[[str], list[dict[str, Any]]]
ORDER_CREATE_ONLY = frozenset({"Pricebook2Id"})  # sent on create only: price book changes need no items
ITEM_CREATE_ONLY = frozenset({"OrderId", "Order", "PricebookEntryId", "Product2", "Product2Id"})


class PriceBook:
    """Price book entries of one price book, looked up by product external id and cached per run."""

    def __init__(self, query: Query, product_ext: str, pricebook_id: str | None) -> None:
        self._query = query
        self.product_ext = product_ext
        self._configured = pricebook_id
        self._id: str | None = pricebook_id
        self._entries: dict[str, str | None] = {}  # product key -> PricebookEntryId (None: none active)

    def pricebook_id(self) -> str | None:
        """The configured price book, else the org's standard one (None when the org has none)."""
        if self._id is None:
            rows = self._query("SELECT Id FROM Pricebook2 WHERE IsStandard = TRUE LIMIT 1")
            self._id = str(rows[0]["Id"]) if rows else None
        return self._id

    def product_key(self, item: dict[str, Any]) -> str | None:
        ref = item.get("Product2")
        if isinstance(ref, dict) and ref.get(self.product_ext) not in (None, ""):
            return str(ref[self.product_ext])
        return None

    def resolve(self, keys: Iterable[str]) -> dict[str, str | None]:
        """PricebookEntryId per product key (None when the product has no active entry in the book)."""
        wanted = [k for k in dict.fromkeys(keys) if k not in self._entries]
        book = self.pricebook_id()
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            values = ", ".join(soql_string(k) for k in chunk)
            products = {
                str(row["Id"]): str(row[self.product_ext])
                for row in self._query(
                    f"SELECT Id, {self.product_ext} FROM Product2 WHERE {self.product_ext} IN ({values})"
                )
            }
            found: dict[str, str] = {}
            if products and book is not None:
                ids = ", ".join(soql_string(i) for i in products)
                for row in self._query(
                    "SELECT Id, Product2Id FROM PricebookEntry WHERE Pricebook2Id = "
                    f"{soql_string(book)} AND Product2Id IN ({ids}) AND IsActive = TRUE"
                ):
                    # External ids compare blind to case in SOQL: match the keys the same way.
                    found.setdefault(products[str(row["Product2Id"])].casefold(), str(row["Id"]))
            for key in chunk:
                self._entries[key] = found.get(key.casefold())
        return {k: self._entries.get(k) for k in keys}
