"""Which models serve embeddings, and the check that keeps chat and embedding models apart."""

from __future__ import annotations

from switchyard.contracts import ErrorCode, SwitchyardError
from switchyard.inference.config import ModelEntry, ModelKind

_USE = {
    "chat": "POST /v1/chat/completions or POST /v1/completions",
    "embedding": "POST /v1/embeddings",
}


def check_kind(name: str, entry: ModelEntry, kind: ModelKind) -> None:
    """Refuse a request for `kind` that names a model of the other kind.

    Raises:
        SwitchyardError: `invalid_request` (param `model`) naming the endpoint the model serves.
    """
    if entry.kind != kind:
        raise SwitchyardError(
            ErrorCode.INVALID_REQUEST,
            f"The model '{name}' is a{'n' if entry.kind == 'embedding' else ''} {entry.kind} "
            f"model; use it with {_USE[entry.kind]}.",
            param="model",
            model=name,
        )


class EmbeddingModels:
    """Resolves the model name of an embeddings request (`default`: the first embedding model)."""

    def __init__(self, entries: dict[str, ModelEntry]) -> None:
        self._entries = entries
        self.default = next((n for n, e in entries.items() if e.kind == "embedding"), None)

    def names(self) -> list[str]:
        """The embedding models of the table."""
        return [name for name, entry in self._entries.items() if entry.kind == "embedding"]

    def resolve(self, name: str) -> tuple[str, ModelEntry]:
        """The embedding model called `name`.

        Raises:
            SwitchyardError: `model_not_found` for an unknown name, `invalid_request` for a chat
                model.
        """
        if name == "default" and self.default is not None:
            name = self.default
        entry = self._entries.get(name)
        if entry is None:
            raise SwitchyardError(
                ErrorCode.MODEL_NOT_FOUND,
                f"The model '{name}' does not exist. See GET /v1/models for the models available.",
                param="model",
                model=name,
            )
        check_kind(name, entry, "embedding")
        return name, entry
