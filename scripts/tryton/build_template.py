"""Build the Tryton template database once; tests copy it instead of paying ~45 s per session.

Run with Tryton's own interpreter (the hub venv has no trytond):

    .venv-tryton/bin/python scripts/tryton/build_template.py [--out .erphub/tryton-template] [--force]

What the template holds (database `hub`, SQLite, one file `hub.sqlite`):
- modules party, company, currency, country, product, stock, sale, account, account_invoice,
  sale_opportunity (and what they pull in: account_product, account_invoice_stock);
- company "erphub Demo Co." in CNY (USD exists too, with a rate), its chart of accounts (the
  generic English template), fiscal years for last, this and next calendar year with periods and
  invoice sequences, payment terms "Direct" and "Net 30", a cash journal payment method "Cash";
- a 13 % VAT tax on an accounting product category, countries CN and US; party identifiers of
  type `cn_vat` (Tryton's alias of stdnum's cn_uscc, 统一社会信用代码) allowed;
- units: Tryton's "Unit" (symbol u) plus "Set" and "Box" in the same category;
- 20 goods products with codes `1.01.001`..`1.01.020` (the Kingdee material numbers, so the
  same CRM sku lookup table serves both ERPs), 1,000 of each in stock so shipments can be done.

`template.json` beside it records the admin login and password (test-only credentials), the ids
of the reference data, and the build's input hash; a rebuild is skipped while the hash (this
file's text + the calendar year, since fiscal years depend on it) is unchanged.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / ".erphub" / "tryton-template"
DB_NAME = "hub"
ADMIN_LOGIN = "admin"
ADMIN_PASSWORD = "admin-pass-123"  # test template only; never a real deployment's password
ADMIN_EMAIL = "admin@example.com"
MODULES = [
    "party", "company", "currency", "country", "product", "stock", "sale",
    "account", "account_invoice", "sale_opportunity",
]
PRODUCT_CODES = [f"1.01.{n:03d}" for n in range(1, 21)]


def build_hash() -> str:
    text = Path(__file__).read_bytes()
    return hashlib.sha256(text + str(dt.date.today().year).encode()).hexdigest()[:16]


def is_current(out: Path) -> bool:
    meta = out / "template.json"
    if not (meta.exists() and (out / f"{DB_NAME}.sqlite").exists()):
        return False
    try:
        return bool(json.loads(meta.read_text())["hash"] == build_hash())
    except (ValueError, KeyError):
        return False


def tryton_env(db_dir: Path, passfile: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TRYTONPASSFILE=str(passfile),
        TRYTOND_DATABASE__URI="sqlite://",
        TRYTOND_DATABASE__PATH=str(db_dir),
    )
    return env


def activate_modules(db_dir: Path, passfile: Path) -> None:
    (db_dir / f"{DB_NAME}.sqlite").touch()  # trytond-admin refuses a missing SQLite file
    admin = Path(sys.executable).with_name("trytond-admin")
    subprocess.run(
        [str(admin), "-d", DB_NAME, "--email", ADMIN_EMAIL, "-u", *MODULES, "--activate-dependencies"],
        env=tryton_env(db_dir, passfile), stdin=subprocess.DEVNULL, check=True,
        stdout=subprocess.DEVNULL,
    )


def populate() -> dict[str, object]:
    """Reference data through proteus in-process (config comes from the TRYTOND_* env vars)."""
    from proteus import Model, config

    config.set_trytond(DB_NAME)

    from trytond.modules.account.tests.tools import create_chart, create_tax, get_accounts
    from trytond.modules.account_invoice.tests.tools import (
        create_payment_term,
        set_fiscalyear_invoice_sequences,
    )
    from trytond.modules.company.tests.tools import create_company

    Currency = Model.get("currency.currency")
    Rate = Model.get("currency.currency.rate")
    Party = Model.get("party.party")
    Country = Model.get("country.country")

    cny = Currency(name="Chinese Yuan", code="CNY", symbol="¥", rounding=Decimal("0.01"))
    cny.save()
    Rate(date=dt.date(2000, 1, 1), rate=Decimal("1"), currency=cny).save()
    usd = Currency(name="U.S. Dollar", code="USD", symbol="$", rounding=Decimal("0.01"))
    usd.save()
    Rate(date=dt.date(2000, 1, 1), rate=Decimal("0.14"), currency=usd).save()

    cn = Country(name="China", code="CN", code3="CHN")
    cn.save()
    Country(name="United States", code="US", code3="USA").save()

    # Chinese Unified Social Credit Codes (统一社会信用代码) as party identifiers, checked by stdnum.
    PartyConfig = Model.get("party.configuration")
    party_config = PartyConfig(1)
    party_config.identifier_types = sorted({*(party_config.identifier_types or ()), "cn_vat"})
    party_config.save()

    company_party = Party(name="erphub Demo Co.")
    company_party.save()
    create_company(party=company_party, currency=cny)
    create_chart()

    FiscalYear = Model.get("account.fiscalyear")
    Sequence = Model.get("ir.sequence.strict")
    SequenceType = Model.get("ir.sequence.type")
    Company = Model.get("company.company")
    company, = Company.find()
    move_type, = SequenceType.find([("name", "=", "Account Move")], limit=1)
    this_year = dt.date.today().year
    for year in (this_year - 1, this_year, this_year + 1):
        move_seq = Sequence(name=str(year), sequence_type=move_type, company=company)
        move_seq.save()
        fy = FiscalYear(name=str(year), start_date=dt.date(year, 1, 1), end_date=dt.date(year, 12, 31),
                        company=company, move_sequence=move_seq)
        fy = set_fiscalyear_invoice_sequences(fy)
        fy.save()
        fy.click("create_period")

    direct = create_payment_term()
    direct.save()
    PaymentTerm = Model.get("account.invoice.payment_term")
    net30 = PaymentTerm(name="Net 30")
    line = net30.lines.new(type="remainder")
    line.relativedeltas.new(days=30)
    net30.save()

    accounts = get_accounts()
    Journal = Model.get("account.journal")
    PaymentMethod = Model.get("account.invoice.payment.method")
    cash_journal, = Journal.find([("type", "=", "cash")])
    method = PaymentMethod(name="Cash", journal=cash_journal,
                           credit_account=accounts["cash"], debit_account=accounts["cash"])
    method.save()

    tax = create_tax(Decimal("0.13"))
    tax.name = tax.description = "VAT 13%"
    tax.save()

    Category = Model.get("product.category")
    category = Category(name="Goods (VAT 13%)", accounting=True,
                        account_expense=accounts["expense"], account_revenue=accounts["revenue"])
    category.customer_taxes.append(tax)
    category.save()

    Uom = Model.get("product.uom")
    unit, = Uom.find([("name", "=", "Unit")])
    units = {"Unit": unit.id}
    for name, symbol in (("Set", "set"), ("Box", "box")):
        uom = Uom(name=name, symbol=symbol, category=unit.category, rate=1, factor=1,
                  rounding=1, digits=0)
        uom.save()
        units[name] = uom.id

    Template = Model.get("product.template")
    Inventory = Model.get("stock.inventory")
    Location = Model.get("stock.location")
    storage, = Location.find([("code", "=", "STO")])
    inventory = Inventory(location=storage)
    products: dict[str, int] = {}
    for n, code in enumerate(PRODUCT_CODES, start=1):
        tpl = Template(name=f"Material {code}", code=code, default_uom=unit, type="goods", salable=True,
                       list_price=Decimal(100 + n), account_category=category)
        tpl.save()
        product, = tpl.products
        products[code] = product.id
        inv_line = inventory.lines.new(product=product)
        inv_line.quantity = 1000.0
        inv_line.expected_quantity = 0.0
    inventory.click("confirm")

    return {
        "company": company.id,
        "currencies": {"CNY": cny.id, "USD": usd.id},
        "payment_terms": {"Direct": direct.id, "Net 30": net30.id},
        "payment_method": method.id,
        "tax_13": tax.id,
        "units": units,
        "products": products,
    }


def checkpoint(db_file: Path) -> None:
    """Fold the WAL into the main file so one file copy is the whole database."""
    con = sqlite3.connect(db_file)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode=DELETE")
    finally:
        con.close()


def build(out: Path) -> dict[str, object]:
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tryton-template.", dir=out.parent))
    try:
        passfile = work / "admin.pass"
        passfile.write_text(ADMIN_PASSWORD + "\n")
        t0 = time.monotonic()
        activate_modules(work, passfile)
        t1 = time.monotonic()
        # A child process, so trytond's connections are closed before the WAL is folded in.
        child = subprocess.run(
            [sys.executable, __file__, "--populate"], env=tryton_env(work, passfile),
            stdin=subprocess.DEVNULL, check=True, stdout=subprocess.PIPE, text=True,
        )
        ids = json.loads(child.stdout.strip().splitlines()[-1])
        t2 = time.monotonic()
        checkpoint(work / f"{DB_NAME}.sqlite")
        passfile.unlink()
        meta = {
            "hash": build_hash(),
            "database": DB_NAME,
            "login": ADMIN_LOGIN,
            "password": ADMIN_PASSWORD,
            "built_at": dt.datetime.now(dt.UTC).isoformat(),
            "seconds": {"activate_modules": round(t1 - t0, 1), "reference_data": round(t2 - t1, 1)},
            **ids,
        }
        (work / "template.json").write_text(json.dumps(meta, indent=2) + "\n")
        for leftover in work.glob(f"{DB_NAME}.sqlite-*"):
            leftover.unlink()
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
        return meta
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true", help="rebuild even if the template is current")
    parser.add_argument("--populate", action="store_true", help=argparse.SUPPRESS)  # internal step
    args = parser.parse_args()
    if args.populate:  # proteus/trytond read their config from the TRYTOND_* env vars set by build()
        print(json.dumps(populate()))
        return 0
    if not args.force and is_current(args.out):
        print(f"tryton template current: {args.out}")
        return 0
    start = time.monotonic()
    meta = build(args.out)
    print(f"tryton template built: {args.out} in {time.monotonic() - start:.1f} s {meta['seconds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
