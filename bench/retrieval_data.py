"""Synthetic data of the retrieval benchmark: seeded vectors with cluster structure, and prose.

The vectors are not model embeddings (embedding 100,000 chunks on two CPU cores would take the
whole time budget). They imitate what matters to an HNSW index: a mixture of `centres` Gaussian
clusters of unequal size around random unit centres in `dimension` dimensions, each cluster spread
mostly along a low-rank subspace of its own (sentence embeddings have a low intrinsic dimension)
plus a little isotropic noise, every vector L2-normalised (cosine = dot product, as with
all-MiniLM-L6-v2). Queries are held-out draws from the same mixture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]

# Common English words, so that the tokenizer, the chunker and the embedding model see prose
# (about one word piece per word) rather than random strings.
_WORDS = """
the of and to in is that for it as with was on be by this are from at or an have not which but
all they were one their has been more will would there can about other into some than its also
only two time could these may then first any new like over such our after most made between
system data model service request response network storage index query search document report
table record value memory process thread server client message stream queue event batch cluster
node region replica backup release version update change policy access token account tenant
user team project budget cost price market customer order invoice payment contract supplier
product design review test build deploy monitor alert metric latency throughput error failure
retry timeout limit quota schedule meeting agenda decision summary analysis result figure
chapter section paragraph sentence language river mountain forest garden city village harbour
bridge road station train engine energy power water weather season winter summer autumn spring
history science physics chemistry biology medicine patient doctor hospital school student teacher
lesson course library museum music painting theatre film camera light colour sound signal radio
animal bird fish horse tree flower stone metal glass paper cloth wood fire earth ocean island
coast valley desert north south east west morning evening night week month year century early
late quick slow large small long short high low strong weak bright dark warm cold open closed
simple complex careful clear useful common rare public private local global final current
"""
WORDS = _WORDS.split()


@dataclass(frozen=True)
class Mixture:
    """Unit vectors from the mixture: the stored ones and held-out queries."""

    vectors: Vectors  # (n, dimension) float32, unit length
    queries: Vectors  # (q, dimension) float32, unit length
    labels: npt.NDArray[np.int64]  # the cluster of each stored vector


def mixture(
    n: int,
    queries: int,
    dimension: int = 384,
    centres: int = 1000,
    rank: int = 16,
    subspace_spread: float = 0.15,
    noise: float = 0.25,
    seed: int = 20261128,
) -> Mixture:
    """`n` stored vectors and `queries` held-out ones from one seeded mixture.

    Cluster sizes follow a Gamma(2) weighting (some clusters several times bigger than others).
    Within a cluster a point is `centre + basis_k @ z + noise`, z ~ N(0, subspace_spread² I_rank)
    on a random `rank`-dimensional basis of the cluster, noise ~ N(0, noise²/dimension I): with the
    defaults the within-cluster part has norm about 0.65 against the centre's 1, so neighbours in
    a cluster have cosine similarity around 0.7 and clusters are nearly orthogonal.
    """
    rng = np.random.default_rng(seed)
    f32 = np.float32
    centre = rng.standard_normal((centres, dimension), dtype=f32)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    weights = rng.gamma(2.0, size=centres)
    total = n + queries
    labels = np.sort(rng.choice(centres, size=total, p=weights / weights.sum()))
    bounds = np.searchsorted(labels, np.arange(centres + 1))
    scale = f32(1.0 / math.sqrt(dimension))
    bases = rng.standard_normal((centres, rank, dimension), dtype=f32) * scale
    z = rng.standard_normal((total, rank), dtype=f32) * f32(subspace_spread)
    out = rng.standard_normal((total, dimension), dtype=f32) * (f32(noise) * scale)
    out += centre[labels]
    for k in range(centres):  # rows sorted by cluster: one slice (a view) per cluster
        start, end = int(bounds[k]), int(bounds[k + 1])
        if end > start:
            out[start:end] += z[start:end] @ bases[k]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    # Held-out queries: a random subset of the draws, never stored; the stored rows shuffled
    # (generated sorted by cluster, which is not the order documents arrive in).
    held = rng.permutation(total)
    query_rows, stored_rows = held[:queries], held[queries:]
    return Mixture(
        vectors=np.ascontiguousarray(out[stored_rows]),
        queries=np.ascontiguousarray(out[query_rows]),
        labels=labels[stored_rows].astype(np.int64),
    )


def sentences(rng: np.random.Generator, count: int) -> list[str]:
    """`count` sentences of 8 to 20 words drawn from `WORDS`."""
    lengths = rng.integers(8, 21, size=count)
    picks = rng.integers(0, len(WORDS), size=int(lengths.sum()))
    out = []
    start = 0
    for length in lengths.tolist():
        words = [WORDS[i] for i in picks[start : start + length].tolist()]
        start += length
        out.append(" ".join(words).capitalize() + ".")
    return out


def chunk_texts(n: int, seed: int = 7, sentences_per_chunk: int = 9) -> list[str]:
    """`n` texts of about 120 words (≈ 750 characters, like a 200-token chunk)."""
    rng = np.random.default_rng(seed)
    pool = sentences(rng, max(4096, sentences_per_chunk * 8))
    picks = rng.integers(0, len(pool), size=(n, sentences_per_chunk))
    return [" ".join(pool[i] for i in row) for row in picks.tolist()]


def documents(count: int, seed: int = 11) -> list[tuple[str, str, str]]:
    """`count` Markdown documents (external id, title, text): a heading or two and three to eight
    paragraphs of three to seven sentences, so about 300-900 words each."""
    rng = np.random.default_rng(seed)
    docs = []
    for number in range(count):
        title = " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=4).tolist()).title()
        lines = [f"# {title}", ""]
        paragraphs = int(rng.integers(3, 9))
        for p in range(paragraphs):
            if p and p % 3 == 0:
                heading = " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=3).tolist())
                lines += [f"## {heading.capitalize()}", ""]
            lines += [" ".join(sentences(rng, int(rng.integers(3, 8)))), ""]
        docs.append((f"doc-{number:05d}", title, "\n".join(lines)))
    return docs
