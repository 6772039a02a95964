"""Get-or-create helpers for JetStream streams, key-value buckets and object stores, so every
service that uses one can start first."""

from __future__ import annotations

from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from switchyard.contracts import subjects
from switchyard.contracts.retrieval import INGEST_STREAM


async def ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> None:
    """Create the stream unless it exists."""
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)


async def key_value(js: JetStreamContext, bucket: str, ttl: float) -> KeyValue:
    """The bucket, created with `ttl` seconds per entry if it does not exist."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        return await js.create_key_value(bucket=bucket, ttl=ttl, history=1)


async def object_store(js: JetStreamContext, bucket: str, ttl: float) -> ObjectStore:
    """The object store, created with `ttl` seconds per object if it does not exist."""
    try:
        return await js.object_store(bucket)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_object_store(bucket, config=api.ObjectStoreConfig(ttl=ttl))


def ingest_stream_config() -> api.StreamConfig:
    """The durable stream of ingestion jobs: a work queue, de-duplicated by `Nats-Msg-Id`
    (the job id) for 10 minutes. Both its producer (gateway) and consumer (retrieval) ensure it."""
    return api.StreamConfig(
        name=INGEST_STREAM,
        subjects=[subjects.RETRIEVAL_INGEST],
        retention=api.RetentionPolicy.WORK_QUEUE,
        storage=api.StorageType.FILE,
        duplicate_window=600,
    )
