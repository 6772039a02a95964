"""Request/reply between services: one place that turns NATS failures into structured errors."""

from __future__ import annotations

from typing import TypeVar

from nats.aio.client import Client
from nats.errors import MaxPayloadError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel

from switchyard.contracts import ErrorCode, ServiceReply, SwitchyardError
from switchyard.runtime.telemetry import trace_headers

Reply = TypeVar("Reply", bound=ServiceReply)


async def call(
    nc: Client,
    subject: str,
    message: BaseModel,
    reply_type: type[Reply],
    timeout: float,
    service: str,
) -> Reply:
    """Send `message` to `subject` and return the reply; the reply's error is raised.

    Raises:
        SwitchyardError: the reply's error; `service_unavailable` when no replica of `service`
            answers (in time); `payload_too_large` when the request does not fit in a message.
    """
    try:
        msg = await nc.request(
            subject, message.model_dump_json().encode(), timeout=timeout, headers=trace_headers()
        )
    except NoRespondersError as exc:
        raise SwitchyardError(
            ErrorCode.SERVICE_UNAVAILABLE, f"no {service} service is running"
        ) from exc
    except NatsTimeoutError as exc:
        raise SwitchyardError(
            ErrorCode.SERVICE_UNAVAILABLE, f"{service} did not answer in time"
        ) from exc
    except MaxPayloadError as exc:
        raise SwitchyardError(
            ErrorCode.PAYLOAD_TOO_LARGE, "the request is too large for one message"
        ) from exc
    reply = reply_type.model_validate_json(msg.data)
    if reply.error is not None:
        error = SwitchyardError(reply.error.code, reply.error.message, **reply.error.details)
        error.body = reply.error
        raise error
    return reply
