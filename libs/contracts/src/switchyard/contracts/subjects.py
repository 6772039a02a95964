"""NATS subject names: `<domain>.<action>.v<N>`, lower-case, versioned."""

from typing import Final

CHAT: Final = "llm.chat.v1"
COMPLETION: Final = "llm.completion.v1"
EMBED: Final = "llm.embed.v1"
MODELS: Final = "llm.models.v1"
CANCEL_PREFIX: Final = "llm.cancel.v1"
CANCEL_ALL: Final = f"{CANCEL_PREFIX}.*"

RETRIEVAL_SEARCH: Final = "retrieval.search.v1"
RETRIEVAL_INGEST: Final = "retrieval.ingest.v1"
RETRIEVAL_COLLECTIONS: Final = "retrieval.collections.v1"
RETRIEVAL_DOCUMENTS: Final = "retrieval.documents.v1"

TOOLS_LIST: Final = "tools.list.v1"
TOOLS_EXECUTE: Final = "tools.execute.v1"

EVENTS_USAGE: Final = "events.usage.v1"
EVENTS_DOCUMENT_INDEXED: Final = "events.document.indexed.v1"

# Queue groups: each service subscribes in a group named after itself so replicas share load.
QUEUE_INFERENCE: Final = "inference"
QUEUE_RETRIEVAL: Final = "retrieval"
QUEUE_TOOLS: Final = "tools"


def cancel(request_id: str) -> str:
    """The subject on which the gateway announces that a request's client went away."""
    return f"{CANCEL_PREFIX}.{request_id}"
