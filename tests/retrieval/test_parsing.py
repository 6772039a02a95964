"""Parsing turns plain text, Markdown, HTML and PDF bytes into a title and heading-path sections."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.errors import DependencyError
from tests.support.pdf import make_pdf

from switchyard.contracts import ErrorCode, SwitchyardError
from switchyard.retrieval.parsing import (
    ContentType,
    ParsedDocument,
    Section,
    detect_content_type,
    parse,
)


def sections(doc: ParsedDocument) -> list[tuple[str | None, str]]:
    return [(section.heading, section.text) for section in doc.sections]


def invalid(content: bytes, content_type: ContentType) -> SwitchyardError:
    with pytest.raises(SwitchyardError) as caught:
        parse(content, content_type)
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    return caught.value


# --------------------------------------------------------------------------------------------
# Content-type detection


@pytest.mark.parametrize(
    ("declared", "filename", "expected"),
    [
        ("text/plain", None, "text/plain"),
        ("text/markdown", None, "text/markdown"),
        ("text/html", None, "text/html"),
        ("application/pdf", None, "application/pdf"),
        ("text/html; charset=utf-8", None, "text/html"),
        ("Text/Markdown ; charset=UTF-8", None, "text/markdown"),
        ("text/x-markdown", None, "text/markdown"),
        ("application/xhtml+xml", None, "text/html"),
        # A specific declared type wins over the extension.
        ("text/plain", "notes.md", "text/plain"),
        # Generic or missing types defer to the file name.
        ("application/octet-stream", "report.PDF", "application/pdf"),
        (None, "notes.txt", "text/plain"),
        ("", "notes.text", "text/plain"),
        (None, "README.md", "text/markdown"),
        (None, "guide.markdown", "text/markdown"),
        (None, "page.htm", "text/html"),
        (None, "page.html", "text/html"),
        (None, "dir/sub.dir/archive.v2.pdf", "application/pdf"),
        (None, "C:\\Users\\me\\Notes.MD", "text/markdown"),
    ],
)
def test_detects_content_type(declared: str | None, filename: str | None, expected: str) -> None:
    assert detect_content_type(declared, filename) == expected


@pytest.mark.parametrize(
    ("declared", "filename"),
    [
        ("application/json", None),
        ("application/json", "data.txt"),  # an explicit, unsupported type is not overridden
        ("image/png", "scan.pdf"),
        (None, None),
        ("application/octet-stream", None),
        (None, "archive.zip"),
        (None, "Makefile"),
        (None, ".md"),  # a hidden file named ".md" has no extension
        (None, "notes."),
    ],
)
def test_rejects_unsupported_content_types(declared: str | None, filename: str | None) -> None:
    with pytest.raises(SwitchyardError) as caught:
        detect_content_type(declared, filename)
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert caught.value.body.details == {"param": "content_type"}
    assert str(caught.value).startswith("unsupported content type")
    assert "text/markdown" in str(caught.value)  # the message lists what is supported


# --------------------------------------------------------------------------------------------
# Plain text


def test_plain_text_paragraphs() -> None:
    doc = parse(b"First line\nsame paragraph.  \n\n\n  \nSecond paragraph.\n", "text/plain")
    assert doc == ParsedDocument(
        title=None,
        sections=[Section(heading=None, text="First line\nsame paragraph.\n\nSecond paragraph.")],
    )


def test_plain_text_tolerates_bom_and_normalises_newlines() -> None:
    doc = parse(b"\xef\xbb\xbfWindows\r\nline\r\n\r\nOld Mac\rline\r\rEnd", "text/plain")
    assert sections(doc) == [(None, "Windows\nline\n\nOld Mac\nline\n\nEnd")]


def test_plain_text_keeps_unicode_and_drops_nul() -> None:
    doc = parse("Grüße, 世界\x00!".encode(), "text/plain")
    assert sections(doc) == [(None, "Grüße, 世界!")]


def test_undecodable_text_is_an_invalid_request() -> None:
    error = invalid(b"valid start \xff\xfe broken", "text/plain")
    assert "UTF-8" in str(error)
    assert "offset 12" in str(error)


@pytest.mark.parametrize("content_type", ["text/plain", "text/markdown", "text/html"])
@pytest.mark.parametrize("content", [b"", b"   \n\t\r\n  ", b"\xef\xbb\xbf"])
def test_empty_documents_have_no_text(content: bytes, content_type: ContentType) -> None:
    assert str(invalid(content, content_type)) == "document has no text"


# --------------------------------------------------------------------------------------------
# Markdown

MARKDOWN = b"""\
Preamble before any heading.

# User Guide

Welcome to the **guide**.

## Install

Get it first.

### Linux

Use the package manager.

```bash
# this is a comment, not a heading
pip install switchyard

echo done
```

### macOS ###

Use brew.

## Usage

Run it.

# Appendix

The end.
"""


def test_markdown_heading_paths_and_title() -> None:
    doc = parse(MARKDOWN, "text/markdown")
    assert doc.title == "User Guide"
    assert sections(doc) == [
        (None, "Preamble before any heading."),
        ("User Guide", "Welcome to the guide."),
        ("User Guide > Install", "Get it first."),
        (
            "User Guide > Install > Linux",
            "Use the package manager.\n\n"
            "# this is a comment, not a heading\npip install switchyard\necho done",
        ),
        ("User Guide > Install > macOS", "Use brew."),
        ("User Guide > Usage", "Run it."),
        ("Appendix", "The end."),  # a second H1 starts a new path but is not the title
    ]


def test_markdown_without_h1_has_no_title() -> None:
    doc = parse(b"## Only level two\n\nText.", "text/markdown")
    assert doc.title is None
    assert sections(doc) == [("Only level two", "Text.")]


def test_markdown_fences_never_become_headings() -> None:
    text = (
        b"# T\n\n~~~\n# inside tilde fence\n```\n## still inside\n~~~\n\nAfter.\n\n````\n# unclosed"
    )
    doc = parse(text, "text/markdown")
    assert sections(doc) == [
        ("T", "# inside tilde fence\n```\n## still inside\n\nAfter.\n\n# unclosed"),
    ]


def test_markdown_code_spans_are_kept_verbatim() -> None:
    doc = parse(b"Call `__init__(*args)` and `a_b_c`, not *this*.", "text/markdown")
    assert sections(doc) == [(None, "Call __init__(*args) and a_b_c, not this.")]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("See [the docs](https://example.com/docs) now.", "See the docs now."),
        ("A [wiki](https://en.wikipedia.org/wiki/Foo_(bar)) link.", "A wiki link."),
        ('A [titled](https://x.io "Title") link.', "A titled link."),
        ("A [reference][ref] link.", "A reference link."),
        ("An ![alt text](img.png) image.", "An alt text image."),
        ("Visit <https://example.com>.", "Visit https://example.com."),
        ("**bold**, __strong__, *em*, _em_, ~~gone~~.", "bold, strong, em, em, gone."),
        ("Keep snake_case_names and 2 * 3 * 4.", "Keep snake_case_names and 2 * 3 * 4."),
        (r"Escaped \*stars\* and \[brackets\].", "Escaped *stars* and [brackets]."),
        ("> Quoted text.", "Quoted text."),
    ],
)
def test_markdown_inline_markup_is_stripped_lightly(source: str, expected: str) -> None:
    assert sections(parse(source.encode(), "text/markdown")) == [(None, expected)]


def test_markdown_setext_headings() -> None:
    text = b"Title Here\n==========\n\nIntro.\n\nPart A\n------\n\nBody A.\n"
    doc = parse(text, "text/markdown")
    assert doc.title == "Title Here"
    assert sections(doc) == [("Title Here", "Intro."), ("Title Here > Part A", "Body A.")]


def test_markdown_front_matter_breaks_and_link_definitions_are_not_text() -> None:
    text = b"---\ntitle: Meta\ntags: [a]\n---\nFirst.\n\n***\n\nSecond.\n\n[ref]: https://x.io\n"
    assert sections(parse(text, "text/markdown")) == [(None, "First.\n\nSecond.")]


def test_markdown_lists_stay_one_paragraph() -> None:
    text = b"# Steps\n\n- one\n- *two*\n- three\n"
    assert sections(parse(text, "text/markdown")) == [("Steps", "- one\n- two\n- three")]


def test_markdown_with_only_headings_has_no_text() -> None:
    assert str(invalid(b"# Title\n\n## Part\n", "text/markdown")) == "document has no text"


# --------------------------------------------------------------------------------------------
# HTML

HTML = b"""<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>  Switchyard &amp; Friends </title>
  <style>body { color: red; }</style>
  <script>var hidden = "<p>not text</p>";</script>
</head>
<body>
  <nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
  <h1>Main   Heading</h1>
  <p>Hello,&nbsp;<b>bold</b>
     world &lt;3 &#8212; caf&eacute;.</p>
  <div>First block<br>after break</div>
  <script type="module">console.log("skipped")</script>
  <h2>Sub <em>section</em></h2>
  <ul><li>item one</li><li>item two</li></ul>
  <table><tr><th>Name</th><th>Value</th></tr><tr><td>a</td><td>1</td></tr></table>
  <noscript>Enable JavaScript</noscript>
  <template><p>template text</p></template>
  <h3>Deeper</h3>
  <pre>line one
    line   two</pre>
  <h2>Second</h2>
  <section><article><p>Nested <span>inline</span> text.</p></article></section>
</body>
</html>
"""


def test_html_visible_text_headings_and_title() -> None:
    doc = parse(HTML, "text/html")
    assert doc.title == "Switchyard & Friends"
    assert sections(doc) == [
        (
            "Main Heading",
            "Hello, bold world <3 \u2014 caf\u00e9.\n\nFirst block\n\nafter break",
        ),
        ("Main Heading > Sub section", "item one\n\nitem two\n\nName Value\n\na 1"),
        ("Main Heading > Sub section > Deeper", "line one\nline two"),
        ("Main Heading > Second", "Nested inline text."),
    ]


def test_html_skipped_elements_leave_no_trace() -> None:
    text = "\n".join(section.text for section in parse(HTML, "text/html").sections)
    for hidden in ("color", "not text", "skipped", "Home", "Docs", "JavaScript", "template"):
        assert hidden not in text


def test_html_title_falls_back_to_first_h1() -> None:
    doc = parse(b"<body><p>Intro</p><h1>First</h1><p>A</p><h1>Second</h1><p>B</p>", "text/html")
    assert doc.title == "First"
    assert sections(doc) == [(None, "Intro"), ("First", "A"), ("Second", "B")]


def test_html_fragment_without_head() -> None:
    doc = parse(b"Loose text <i>here</i><p>para</p>", "text/html")
    assert doc.title is None
    assert sections(doc) == [(None, "Loose text here\n\npara")]


def test_html_unclosed_head_and_svg_title() -> None:
    page = b"<html><head><title>Real</title><body><svg><title>Icon</title></svg><p>Text</p>"
    doc = parse(page, "text/html")
    assert doc.title == "Real"
    assert sections(doc) == [(None, "Text")]


def test_html_heading_levels_pop_back() -> None:
    page = b"<h2>A</h2><p>a</p><h4>A deep</h4><p>b</p><h3>A mid</h3><p>c</p><h1>B</h1><p>d</p>"
    assert [heading for heading, _ in sections(parse(page, "text/html"))] == [
        "A",
        "A > A deep",
        "A > A mid",
        "B",
    ]


def test_html_hidden_elements_and_navigation_roles_are_skipped() -> None:
    page = b"""<body>
      <p>before</p>
      <div role="navigation"><div><p>menu<br><img src=x></div><p>unclosed</div>
      <div hidden><h2>Hidden heading</h2></div>
      <span aria-hidden="true">icon</span>
      <p>after</p>
    </body>"""
    assert sections(parse(page, "text/html")) == [(None, "before\n\nafter")]


def test_html_heading_permalinks_are_dropped() -> None:
    page = '<h1>Intro<a class="headerlink" href="#intro">¶</a></h1><p>Text</p>'.encode()
    doc = parse(page, "text/html")
    assert doc.title == "Intro"
    assert sections(doc) == [("Intro", "Text")]


def test_html_declared_charset_is_honoured() -> None:
    page = '<meta charset="iso-8859-1"><p>Déjà vu</p>'.encode("latin-1")
    assert sections(parse(page, "text/html")) == [(None, "Déjà vu")]


def test_html_undecodable_without_charset_is_invalid() -> None:
    assert "UTF-8" in str(invalid(b"<p>caf\xe9</p>", "text/html"))


def test_html_with_only_hidden_content_has_no_text() -> None:
    page = b"<html><head><title>T</title></head><body><script>x()</script><nav>n</nav></body>"
    assert str(invalid(page, "text/html")) == "document has no text"


# --------------------------------------------------------------------------------------------
# PDF


def encrypt(pdf: bytes, user_password: str) -> bytes:
    # RC4 needs no optional crypto library; AES would need `cryptography`.
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


PDF = make_pdf(
    [
        ["Switchyard (PDF) manual.", "It explains the gateway."],
        [],  # a blank page makes no section but keeps the numbering
        ["Third page: retrieval."],
    ],
    title="  The   Manual ",
)


def test_handmade_pdf_is_valid() -> None:
    reader = PdfReader(io.BytesIO(PDF), strict=True)
    assert len(reader.pages) == 3
    assert "Switchyard (PDF) manual." in reader.pages[0].extract_text()


def test_pdf_pages_become_sections() -> None:
    doc = parse(PDF, "application/pdf")
    assert doc.title == "The Manual"
    assert sections(doc) == [
        ("Page 1", "Switchyard (PDF) manual.\nIt explains the gateway."),
        ("Page 3", "Third page: retrieval."),
    ]


def test_pdf_without_title_metadata() -> None:
    assert parse(make_pdf([["Hello."]]), "application/pdf").title is None


def test_password_protected_pdf_is_invalid() -> None:
    error = invalid(encrypt(PDF, "secret"), "application/pdf")
    assert "encrypted" in str(error)


def test_pdf_with_owner_password_only_opens() -> None:
    assert parse(encrypt(PDF, ""), "application/pdf") == parse(PDF, "application/pdf")


def test_pdf_needing_a_missing_crypto_library_is_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    def decrypt(self: PdfReader, password: str) -> None:
        raise DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(PdfReader, "decrypt", decrypt)
    assert "encrypted" in str(invalid(encrypt(PDF, ""), "application/pdf"))


@pytest.mark.parametrize(
    "content",
    [b"", b"not a pdf at all", b"%PDF-1.4\n1 0 obj garbage", PDF[: len(PDF) // 2]],
)
def test_corrupt_pdf_is_invalid(content: bytes) -> None:
    assert "PDF could not be read" in str(invalid(content, "application/pdf"))


def test_pdf_without_text_has_no_text() -> None:
    assert str(invalid(make_pdf([[], []]), "application/pdf")) == "document has no text"
