"""Metadata filters → SQL over a jsonb column, every value a bind parameter."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from switchyard.contracts import ErrorCode, SwitchyardError
from switchyard.contracts.retrieval import AllOf, AnyOf, Condition, Filter

_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class SqlParams:
    """Collects bind parameters and hands out their `$n` placeholders."""

    def __init__(self, *initial: Any) -> None:
        self.values: list[Any] = list(initial)

    def add(self, value: Any) -> str:
        """Bind `value`; returns its placeholder."""
        self.values.append(value)
        return f"${len(self.values)}"


def _nested(path: list[str], value: Any) -> dict[str, Any]:
    doc: Any = value
    for key in reversed(path):
        doc = {key: doc}
    return doc  # type: ignore[no-any-return]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _date(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise SwitchyardError(
            ErrorCode.INVALID_REQUEST,
            f"filter bound {value!r} is neither a number nor an ISO date",
            param="filters",
        ) from None


def _condition(cond: Condition, params: SqlParams, column: str) -> str:
    path = cond.field.split(".")
    if cond.eq is not None:
        return f"{column} @> {params.add(_nested(path, cond.eq))}::jsonb"  # the codec encodes
    where = params.add(path)
    if cond.in_ is not None:
        values = params.add([_as_text(v) for v in cond.in_])
        return f"({column} #>> {where}::text[]) = ANY({values}::text[])"
    parts = []
    for name, op in _OPS.items():
        bound = getattr(cond, name)
        if bound is None:
            continue
        if isinstance(bound, str):
            value = params.add(_date(bound))
            parts.append(f"retrieval.try_timestamptz({column} #>> {where}::text[]) {op} {value}")
        else:
            value = params.add(float(bound))
            parts.append(
                f"(CASE WHEN jsonb_typeof({column} #> {where}::text[]) = 'number'"
                f" THEN ({column} #>> {where}::text[])::float8 END) {op} {value}"
            )
    return "(" + " AND ".join(parts) + ")"


def compile_filter(node: Filter, params: SqlParams, column: str = "c.metadata") -> str:
    """A SQL boolean expression for `node` over the jsonb `column`."""
    if isinstance(node, AllOf):
        return "(" + " AND ".join(compile_filter(n, params, column) for n in node.all_) + ")"
    if isinstance(node, AnyOf):
        return "(" + " OR ".join(compile_filter(n, params, column) for n in node.any_) + ")"
    return _condition(node, params, column)
