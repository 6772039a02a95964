"""What every embedding backend returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Embedded:
    """Vectors in input order, and the prompt tokens they cost."""

    vectors: list[list[float]]
    prompt_tokens: int
