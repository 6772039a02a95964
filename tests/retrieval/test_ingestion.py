"""Ingestion through the gateway: idempotent re-ingest, edits, deletes, uploads, bad input."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
from tests.support.collections import ingest, new_collection, search, wait_job
from tests.support.pdf import make_pdf

GUIDE = (
    "# Pond care\n\nKeep the water clean with a pump.\n\n## Winter\n\n"
    "In winter, stop feeding the fish when the water drops below ten degrees."
)


async def chunk_ids(db: asyncpg.Pool, collection: str) -> set[str]:
    rows = await db.fetch(
        "SELECT id::text FROM retrieval.chunks WHERE collection_id = $1::uuid", collection
    )
    return {row["id"] for row in rows}


async def test_reingest_edit_delete(http: httpx.AsyncClient, db: asyncpg.Pool) -> None:
    collection = (await new_collection(http))["id"]
    doc = {
        "external_id": "guide",
        "title": "Pond guide",
        "text": GUIDE,
        "content_type": "text/markdown",
    }
    first = await ingest(http, collection, [doc])
    assert first["status"] == "succeeded"
    assert first["results"][0]["status"] == "created"
    before = await chunk_ids(db, collection)
    assert len(before) == first["chunks_done"] >= 2  # the headings split the guide

    again = await ingest(http, collection, [doc])
    assert again["results"][0]["status"] == "unchanged"
    assert await chunk_ids(db, collection) == before  # a no-op: same chunks, same ids

    edited = {**doc, "text": GUIDE.replace("ten degrees", "eight degrees")}
    changed = await ingest(http, collection, [edited])
    assert changed["results"][0]["status"] == "updated"
    after = await chunk_ids(db, collection)
    assert after.isdisjoint(before)  # every old chunk replaced
    texts = [
        h["text"] for h in await search(http, collection, "when to stop feeding fish", top_k=5)
    ]
    assert any("eight degrees" in t for t in texts)
    assert not any("ten degrees" in t for t in texts)

    listed = (await http.get(f"/v1/collections/{collection}/documents")).json()["data"]
    assert [d["external_id"] for d in listed] == ["guide"]
    deleted = await http.delete(f"/v1/collections/{collection}/documents/guide")
    assert deleted.status_code == 200
    assert await search(http, collection, "pond winter fish", top_k=5) == []
    assert await chunk_ids(db, collection) == set()
    missing = await http.delete(f"/v1/collections/{collection}/documents/guide")
    assert missing.status_code == 404


async def test_multipart_upload_and_html(http: httpx.AsyncClient) -> None:
    collection = (await new_collection(http))["id"]
    html = (
        b"<html><head><title>Lighthouses</title><script>var x = 'ignore me';</script></head>"
        b"<body><h1>Lighthouses</h1><p>The Fresnel lens focuses the lamp into a beam.</p></body></html>"
    )
    response = await http.post(
        f"/v1/collections/{collection}/documents",
        files={"file": ("lights.html", html, "text/html")},
        data={"metadata": '{"kind": "history"}'},
    )
    assert response.status_code == 202, response.text
    job = await wait_job(http, response.json()["id"])
    assert job["status"] == "succeeded", job
    hits = await search(http, collection, "Fresnel lens", mode="fulltext")
    assert hits[0]["external_id"] == "lights.html"
    assert hits[0]["metadata"]["kind"] == "history"
    assert "ignore me" not in hits[0]["text"]


async def test_idempotency_key_returns_the_same_job(http: httpx.AsyncClient) -> None:
    collection = (await new_collection(http))["id"]
    key = uuid.uuid4().hex
    body = {"documents": [{"external_id": "one", "text": "The same submission, twice."}]}
    first = await http.post(
        f"/v1/collections/{collection}/documents", json=body, headers={"idempotency-key": key}
    )
    second = await http.post(
        f"/v1/collections/{collection}/documents", json=body, headers={"idempotency-key": key}
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    await wait_job(http, first.json()["id"])
    collection_state = (await http.get(f"/v1/collections/{collection}")).json()
    assert collection_state["document_count"] == 1


async def test_bad_documents(http: httpx.AsyncClient) -> None:
    collection = (await new_collection(http))["id"]
    url = f"/v1/collections/{collection}/documents"
    bodies: list[dict[str, Any]] = [
        {"documents": []},
        {"documents": [{"text": ""}]},
        {"docs": []},
        {"documents": [{"text": "x", "content_type": "image/png"}]},
    ]
    for body in bodies:
        response = await http.post(url, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["code"] == "invalid_request"
    unsupported = await http.post(url, files={"file": ("photo.png", b"\x89PNG", "image/png")})
    assert unsupported.status_code == 400
    corrupt = await http.post(
        url, files={"file": ("broken.pdf", b"%PDF-1.4 not really", "application/pdf")}
    )
    assert corrupt.status_code == 202  # accepted; parsing happens in the job
    job = await wait_job(http, corrupt.json()["id"])
    assert job["status"] == "failed"
    assert job["results"][0]["status"] == "failed"
    assert job["results"][0]["error"]
    missing = await http.post(
        "/v1/collections/no-such-collection/documents", json={"documents": [{"text": "x"}]}
    )
    assert missing.status_code == 404
    assert (await http.get(f"/v1/jobs/{uuid.uuid4().hex}")).status_code == 404
    assert (await http.get("/v1/jobs/not-a-job")).status_code == 404


async def test_collection_names_are_unique_per_tenant(http: httpx.AsyncClient) -> None:
    created = await new_collection(http)
    clash = await http.post("/v1/collections", json={"name": created["name"]})
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "conflict"
    by_name = await http.get(f"/v1/collections/{created['name']}")
    assert by_name.json()["id"] == created["id"]
    assert created["dimension"] == 384
    assert created["embedding_model"] == "all-minilm-l6-v2"
    bad = await http.post("/v1/collections", json={"name": "has spaces"})
    assert bad.status_code == 400
    unknown_model = await http.post(
        "/v1/collections", json={"name": f"m-{uuid.uuid4().hex[:8]}", "embedding_model": "nope"}
    )
    assert unknown_model.status_code == 404
    gone = await http.delete(f"/v1/collections/{created['id']}")
    assert gone.status_code == 200
    assert (await http.get(f"/v1/collections/{created['id']}")).status_code == 404


async def test_pdf_upload_is_searchable_by_page(http: httpx.AsyncClient) -> None:
    collection = (await new_collection(http))["id"]
    pdf = make_pdf(
        [
            ["Quarterly report.", "Revenue grew in the northern region."],
            ["Appendix: the Kestrel-9 turbine."],
        ],
        title="Q3 report",
    )
    response = await http.post(
        f"/v1/collections/{collection}/documents",
        files={"file": ("q3.pdf", pdf, "application/pdf")},
    )
    assert response.status_code == 202, response.text
    job = await wait_job(http, response.json()["id"])
    assert job["status"] == "succeeded", job
    hits = await search(http, collection, "Kestrel-9", mode="fulltext")
    assert hits[0]["external_id"] == "q3.pdf"
    assert hits[0]["section"] == "Page 2"
    assert hits[0]["title"] == "Q3 report"  # from the PDF's metadata
