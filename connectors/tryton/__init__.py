"""The `tryton` connector: a real Tryton 8.x ERP over JSON-RPC (see rpc.py for the wire facts).

Record shapes (the `data` of records read, and what a mapping must produce to write):

customer  (party.party, key `code`; read and write)
    {code, name, tax_identifier?, phone?, mobile?, email?, street?, city?, postal_code?,
     subdivision?, country?}
    The address fields are the party's first address; phone/mobile/email its first contact
    mechanism of that type; tax_identifier its first identifier (free type). `country` is an ISO
    code (CN, US) and `subdivision` a subdivision name or code; an unknown one fails the record.
    On update only the fields present are changed; a present empty value clears it.

sales_order  (sale.sale, key `reference` = the CRM order number; read and write)
    {reference, customer_code, sale_date? (YYYY-MM-DD), currency? (ISO code), description?,
     payment_term? (name), lines: [{product (product code, e.g. 1.01.001), quantity,
     unit? (uom name or symbol; default the product's sale unit), unit_price (untaxed) or
     unit_price_tax_included (the connector divides by 1 + the product's customer tax rates),
     tax_rate? (percent; when given it must equal the product's, or the record fails), description?}]}
    Read adds: number, state, shipment_state (none/waiting/partially shipped/sent/exception),
    invoice_state, untaxed_amount, tax_amount, total_amount, shipped_date (latest done customer
    move) and per line amount, tax_rate (percent), unit_price_tax_included, shipped_quantity.
    Taxes come from the product. Writes create drafts; settings.sale_workflow quotes or confirms
    them. A draft is rewritten on update (lines replaced); a quotation is changed through Tryton's
    workflow (back to draft, rewritten, quoted again, confirmed if so configured); past quotation
    an identical re-send is `unchanged` and a change is refused with code `locked` naming the fields
    (the ERP owns a confirmed order). `--full` compares each sale with Tryton's current one.

receipt  (account.invoice type out, state posted/paid/cancelled, key `number`; read only)
    {number, customer_code, order_no (reference of its sale), currency, invoice_date, due_date
     (earliest maturity), total_amount, amount_paid, amount_to_pay, state, paid_date (latest
     payment line), status: paid | partly_paid | overdue | open | cancelled}
    Change capture is by `last_modified_at` (write_date): posting, payment and cancelling all
    write the invoice; a cancelled invoice is read (status cancelled, nothing paid or owed).

account_status  (per party, key `customer_code`; read only)
    {customer_code, customer_name, outstanding_balance, overdue_balance, account_status:
     overdue | partly_paid | open | paid | none, open_invoices, last_paid_date, currency,
     balances: {invoice currency: {outstanding, overdue}}}
    A customer appears when one of its invoices changed or fell due after the cursor, so the
    CRM's account status follows payments and due dates without a full re-read. `open` is owed
    but not yet due. The two balances are in the company currency (`currency`), each invoice
    converted at the rate Tryton posted it with; `balances` keeps the amounts per invoice currency
    (account_status.py).

Numbers are Decimals, dates `datetime.date`, as Tryton returns them.
"""

from erphub.connectors.tryton.connector import TrytonConnector
from erphub.connectors.tryton.settings import TrytonSettings

__all__ = ["TrytonConnector", "TrytonSettings"]
