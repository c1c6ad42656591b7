

def test_native_dates_from_typed_connectors_are_accepted() -> None:
    """Tryton's JSON-RPC decodes dates to objects; mappings take them like text."""
    from datetime import date, datetime

    from erphub.mappings.compiler import compile_text
    from erphub.mappings.plan import Mapped

    plan = compile_text(
        "source: sale\ntarget: order\nfields:\n"
        "  shipped: {from: d, transforms: [{datetime: {from: date, to: iso8601}}]}\n"
        "  day: {from: d, transforms: [to_str]}\n"
        "  at: {from: t, transforms: [{datetime: {from: iso8601, to: kingdee}}]}\n",
        file="native.yaml")
    out = plan.apply({"d": date(2026, 2, 28), "t": datetime(2026, 3, 1, 2, 30)})
    assert isinstance(out, Mapped)
    assert out.data["day"] == "2026-02-28"
    assert out.data["shipped"].startswith("2026-02-2")
    assert out.data["at"] == "2026-03-01 10:30:00"
