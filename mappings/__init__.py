"""Declarative field mappings: YAML files compiled once into plans applied to many records.

    plan = compile_mapping("mappings/jiandaoyun_to_kingdee/customer.yaml", source=spec_a, target=spec_b)
    outcome = plan.apply(record.data)   # Mapped | Rejected | Skipped, never raises

See mappings/README.md for the language.
"""

from erphub.mappings.compiler import compile_mapping, compile_text
from erphub.mappings.plan import Mapped, Outcome, Plan, Rejected, Skipped

__all__ = ["Mapped", "Outcome", "Plan", "Rejected", "Skipped", "compile_mapping", "compile_text"]
