"""The mapping file model: what a person may write in a mapping YAML.

Only the shape is checked here (pydantic, unknown keys refused); meaning (paths, transform names,
lookup tables, the connectors' schemas) is checked by the compiler, which has the context.
Conditions stay plain data because their nesting reads better checked by hand (see conditions.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

Number = StrictInt | float


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class LengthSpec(_Strict):
    min: StrictInt | None = Field(default=None, ge=0)
    max: StrictInt | None = Field(default=None, ge=0)


class RangeSpec(_Strict):
    min: Number | None = None  # inclusive
    max: Number | None = None  # inclusive
    gt: Number | None = None  # exclusive
    lt: Number | None = None  # exclusive


ValueType = Literal["string", "integer", "number", "boolean", "object", "list"]


class ValidateSpec(_Strict):
    required: StrictBool = False
    type: ValueType | None = None
    regex: str | None = None
    length: StrictInt | LengthSpec | None = None
    range: RangeSpec | None = None
    one_of: list[Any] | None = Field(default=None, min_length=1)


class EachSpec(_Strict):
    filter: Any = None
    fields: dict[str, FieldSpec] = Field(min_length=1)


SOURCES = ("from", "const", "coalesce", "template", "expr", "cases")


class CaseSpec(_Strict):
    """One branch of `cases:`: `{if: EXPR, then: VALUE}`, or the last `{else: VALUE}`. A VALUE is a
    constant, or `{expr: EXPR}` for a computed one."""

    if_: str | None = Field(default=None, alias="if")
    then: Any = None
    else_: Any = Field(default=None, alias="else")

    @model_validator(mode="after")
    def _shape(self) -> CaseSpec:
        given = {("if" if n == "if_" else "else" if n == "else_" else n) for n in self.model_fields_set}
        if given not in ({"if", "then"}, {"else"}):
            raise ValueError("a case is {if: EXPRESSION, then: VALUE} or, last, {else: VALUE}")
        return self


class FieldSpec(_Strict):
    from_: str | None = Field(default=None, alias="from")
    const: Any = None
    coalesce: list[str] | None = Field(default=None, min_length=1)
    template: str | None = None
    expr: str | None = None
    cases: list[CaseSpec] | None = Field(default=None, min_length=1)
    default: Any = None
    transforms: list[Any] = Field(default_factory=list)
    map: Any = None
    lookup: Any = None
    when: Any = None
    validate_: ValidateSpec | None = Field(default=None, alias="validate")
    each: EachSpec | None = None
    omit_if_null: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `FName: customer_name` means `FName: {from: customer_name}`.
        if isinstance(data, str):
            return {"from": data}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        given = [name for name in SOURCES if name in self._given()]
        if len(given) != 1:
            which = ", ".join(given) if given else "none"
            raise ValueError(f"say where the value comes from with exactly one of from, const, coalesce, "
                             f"template, expr, cases (got {which})")
        attr = {"from": "from_"}.get(given[0], given[0])
        if given[0] != "const" and getattr(self, attr) is None:
            raise ValueError(f"{given[0]} needs a value (null is not a {given[0]})")
        if self.each is not None and given != ["from"]:
            raise ValueError("a child collection (each) takes its lines `from` a list path")
        return self

    def _given(self) -> set[str]:
        return {("from" if n == "from_" else n) for n in self.model_fields_set}

    @property
    def source_kind(self) -> str:
        return next(name for name in SOURCES if name in self._given())

    def has(self, key: str) -> bool:
        return key in self._given()


EachSpec.model_rebuild()


class MappingSpec(_Strict):
    source: str = Field(min_length=1)
    target: str = Field(min_length=1)
    description: str = ""
    decimal: Literal["point", "comma"] = "point"  # how number text writes its decimal mark
    params: dict[str, StrictStr | StrictInt | float] = Field(default_factory=dict)  # ${param:NAME} defaults
    let: dict[str, StrictStr] = Field(default_factory=dict)  # named expressions every field can use
    include: list[StrictStr] = Field(default_factory=list)  # shared fragments (params, let, fields)
    key: str | None = None
    owns: list[str] | None = None
    filter: Any = None
    fields: dict[str, FieldSpec] = Field(min_length=1)


ALLOWED_KEYS = {
    "mapping": tuple(f.alias or n for n, f in MappingSpec.model_fields.items()),
    "field": tuple(f.alias or n for n, f in FieldSpec.model_fields.items()),
    "each": tuple(f.alias or n for n, f in EachSpec.model_fields.items()),
    "validate": tuple(f.alias or n for n, f in ValidateSpec.model_fields.items()),
    "length": ("min", "max"),
    "range": ("min", "max", "gt", "lt"),
    "cases": ("if", "then", "else"),
}
