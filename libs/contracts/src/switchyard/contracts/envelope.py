"""Fields every message carries: who asked, for which tenant, and until when it is worth doing."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TypedDict

from pydantic import AwareDatetime, BaseModel, Field

REQUEST_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"


class EnvelopeFields(TypedDict):
    """The envelope's fields, to copy into the messages that answer a request."""

    request_id: str
    tenant_id: str
    deadline: datetime


class Envelope(BaseModel):
    """Common header fields of every message that crosses a service boundary."""

    request_id: str = Field(
        pattern=REQUEST_ID_PATTERN, description="Unique id of the request (a NATS subject token)."
    )
    tenant_id: str = Field(min_length=1, max_length=128, description="Tenant the request is for.")
    deadline: AwareDatetime = Field(description="Absolute time after which the work is dropped.")

    def header(self) -> EnvelopeFields:
        """This message's envelope fields, for the messages that answer it."""
        return {
            "request_id": self.request_id,
            "tenant_id": self.tenant_id,
            "deadline": self.deadline,
        }

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once it has passed)."""
        return self.deadline.timestamp() - time.time()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.remaining() <= 0


def deadline_in(seconds: float) -> datetime:
    """An absolute deadline `seconds` from now, in UTC."""
    return datetime.fromtimestamp(time.time() + seconds, UTC)  # half the cost of now() + timedelta
