-- Collections, documents and chunks of the retrieval service (schema `retrieval`).
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE retrieval.collections (
    id uuid PRIMARY KEY,
    tenant_id text NOT NULL,
    name text NOT NULL,
    embedding_model text NOT NULL,
    dimension int NOT NULL CHECK (dimension BETWEEN 1 AND 2000),
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE retrieval.documents (
    id uuid PRIMARY KEY,
    collection_id uuid NOT NULL REFERENCES retrieval.collections (id) ON DELETE CASCADE,
    tenant_id text NOT NULL,
    external_id text NOT NULL,
    title text,
    source text,
    metadata jsonb NOT NULL DEFAULT '{}',
    content_hash text NOT NULL,
    chunk_count int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (collection_id, external_id)
);
CREATE INDEX documents_metadata ON retrieval.documents USING gin (metadata jsonb_path_ops);

-- One table for every collection: the embedding column has no fixed dimension; each dimension
-- in use gets its own partial HNSW index on `embedding::vector(d)` (created with the first
-- collection of that dimension).
CREATE TABLE retrieval.chunks (
    id uuid PRIMARY KEY,
    document_id uuid NOT NULL REFERENCES retrieval.documents (id) ON DELETE CASCADE,
    collection_id uuid NOT NULL REFERENCES retrieval.collections (id) ON DELETE CASCADE,
    tenant_id text NOT NULL,
    position int NOT NULL,
    text text NOT NULL,
    section text,
    metadata jsonb NOT NULL DEFAULT '{}',
    dimension int NOT NULL,
    embedding vector NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (
        to_tsvector('english', coalesce(section, '') || ' ' || text)
    ) STORED,
    UNIQUE (document_id, position)
);
CREATE INDEX chunks_collection ON retrieval.chunks (collection_id);
CREATE INDEX chunks_tsv ON retrieval.chunks USING gin (tsv);
CREATE INDEX chunks_metadata ON retrieval.chunks USING gin (metadata jsonb_path_ops);

-- Date filters compare metadata strings as timestamps; a value that is not one never matches.
CREATE FUNCTION retrieval.try_timestamptz(value text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END;
$$;
