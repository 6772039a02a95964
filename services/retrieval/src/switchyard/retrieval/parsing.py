"""Turn an uploaded document's bytes into a title and a list of sections of plain text.

The first step of ingestion (parse → chunk → embed → upsert). Pure and I/O-free: every function
takes bytes or strings and returns values, so it can run in a worker thread and be tested alone.

Supported formats: plain text, Markdown, HTML (stdlib `html.parser`) and PDF (`pypdf`). Every
problem with the input itself raises `SwitchyardError(INVALID_REQUEST)`, never a bare exception,
because an uploaded file is client data and its faults are the client's to fix.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Final, Literal

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from switchyard.contracts.errors import ErrorCode, SwitchyardError

ContentType = Literal["text/plain", "text/markdown", "text/html", "application/pdf"]

_MIME_TYPES: Final[dict[str, ContentType]] = {
    "text/plain": "text/plain",
    "text/markdown": "text/markdown",
    "text/x-markdown": "text/markdown",
    "text/html": "text/html",
    "application/xhtml+xml": "text/html",
    "application/pdf": "application/pdf",
    "application/x-pdf": "application/pdf",
}

# Declared types that say nothing about the format, so the file name decides.
_GENERIC_MIME_TYPES: Final = frozenset({"", "application/octet-stream", "binary/octet-stream"})

_EXTENSIONS: Final[dict[str, ContentType]] = {
    "txt": "text/plain",
    "text": "text/plain",
    "md": "text/markdown",
    "markdown": "text/markdown",
    "html": "text/html",
    "htm": "text/html",
    "xhtml": "text/html",
    "pdf": "application/pdf",
}


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path.

    Attributes:
        heading: The heading path, outermost first (e.g. ``"Install > Linux"``), or None for text
            outside any heading.
        text: The section's paragraphs, separated by blank lines; never empty.
    """

    heading: str | None
    text: str


@dataclass(frozen=True)
class ParsedDocument:
    """A parsed document: its title (when the format has one) and its non-empty sections."""

    title: str | None
    sections: list[Section]


def _invalid(message: str) -> SwitchyardError:
    return SwitchyardError(ErrorCode.INVALID_REQUEST, message)


# --------------------------------------------------------------------------------------------
# Content-type detection


def detect_content_type(declared: str | None, filename: str | None) -> ContentType:
    """Decide a document's format from its declared MIME type or, failing that, its file name.

    A specific declared type wins. Parameters such as ``; charset=utf-8`` are ignored. A missing
    or generic declared type (``application/octet-stream``) falls back to the file extension.

    Args:
        declared: The MIME type the client sent, if any.
        filename: The document's file name, if any.

    Returns:
        One of the supported content types.

    Raises:
        SwitchyardError: ``invalid_request`` (param ``content_type``) for an unsupported type.
    """
    mime = (declared or "").split(";", 1)[0].strip().lower()
    if mime in _MIME_TYPES:
        return _MIME_TYPES[mime]
    if mime in _GENERIC_MIME_TYPES:
        by_name = _type_from_filename(filename)
        if by_name is not None:
            return by_name
        what = f"file name {filename!r}" if filename else "a missing content type and file name"
    else:
        what = f"{declared!r}"
    supported = ", ".join(sorted(set(_MIME_TYPES.values())))
    raise SwitchyardError(
        ErrorCode.INVALID_REQUEST,
        f"unsupported content type: {what}; supported types are {supported}",
        param="content_type",
    )


def _type_from_filename(filename: str | None) -> ContentType | None:
    if not filename:
        return None
    # Only the last path component counts, whichever separator the client's OS uses.
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        return None
    return _EXTENSIONS.get(extension.strip().lower())


# --------------------------------------------------------------------------------------------
# Entry point


def parse(content: bytes, content_type: ContentType) -> ParsedDocument:
    """Parse a document into its title and sections.

    Args:
        content: The document's bytes.
        content_type: Its format, usually from `detect_content_type`.

    Returns:
        The parsed document, with at least one section.

    Raises:
        SwitchyardError: ``invalid_request`` for text that is not UTF-8, an encrypted or corrupt
            PDF, or a document without any text.
    """
    if content_type == "text/plain":
        document = _parse_plain(_decode(content))
    elif content_type == "text/markdown":
        document = _parse_markdown(_decode(content))
    elif content_type == "text/html":
        document = _parse_html(_decode_html(content))
    elif content_type == "application/pdf":
        document = _parse_pdf(content)
    else:  # pragma: no cover - the Literal type makes this unreachable for typed callers
        raise SwitchyardError(
            ErrorCode.INVALID_REQUEST,
            f"unsupported content type: {content_type!r}",
            param="content_type",
        )
    if not document.sections:
        raise _invalid("document has no text")
    return document


# --------------------------------------------------------------------------------------------
# Text helpers shared by the formats

_BLANK_LINES = re.compile(r"\n[ \t\f\v]*\n")


def _decode(content: bytes, encoding: str = "utf-8") -> str:
    try:
        # utf-8-sig drops a leading byte-order mark and is otherwise plain UTF-8.
        text = content.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        raise _invalid(
            f"document is not valid {encoding.upper()} text (undecodable byte at offset "
            f"{exc.start})"
        ) from None
    return _normalise_newlines(text)


def _normalise_newlines(text: str) -> str:
    # NUL cannot be stored in a PostgreSQL text column, and carries no meaning in a document.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _paragraphs(text: str) -> list[str]:
    """Split text at blank lines, trimming each line's trailing spaces and dropping empties."""
    paragraphs = []
    for block in _BLANK_LINES.split(text):
        lines = [line.rstrip() for line in block.split("\n")]
        paragraph = "\n".join(line for line in lines if line)
        if paragraph.strip():
            paragraphs.append(paragraph)
    return paragraphs


def _join_paragraphs(paragraphs: Iterable[str]) -> str:
    return "\n\n".join(p for p in paragraphs if p.strip())


class _SectionBuilder:
    """Collects paragraphs under the current heading path and closes sections as headings come."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self._headings: list[tuple[int, str]] = []
        self._paragraphs: list[str] = []

    def add_paragraph(self, paragraph: str) -> None:
        if paragraph.strip():
            self._paragraphs.append(paragraph.strip())

    def heading(self, level: int, text: str) -> None:
        """Close the current section and open one under `text` at heading level `level`."""
        self._close()
        # A heading replaces every open heading at its own level or deeper.
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        self._headings.append((level, text))

    def finish(self) -> list[Section]:
        self._close()
        return self.sections

    def _close(self) -> None:
        text = _join_paragraphs(self._paragraphs)
        self._paragraphs = []
        if text:
            path = " > ".join(title for _, title in self._headings) or None
            self.sections.append(Section(heading=path, text=text))


# --------------------------------------------------------------------------------------------
# Plain text


def _parse_plain(text: str) -> ParsedDocument:
    body = _join_paragraphs(_paragraphs(text))
    return ParsedDocument(title=None, sections=[Section(heading=None, text=body)] if body else [])


# --------------------------------------------------------------------------------------------
# Markdown (a pragmatic subset of CommonMark: enough to find structure and strip markup)

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_THEMATIC_BREAK = re.compile(r"^ {0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*\S+")
_BLOCKQUOTE = re.compile(r"^ {0,3}>[ ]?")

_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
# Links and images (one level of parentheses inside the URL, as in Wikipedia links).
_INLINE_LINK = re.compile(r"!?\[([^\]]*)\]\((?:[^()]|\([^()]*\))*\)")
_REFERENCE_LINK = re.compile(r"!?\[([^\]]*)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_STAR_EMPHASIS = re.compile(r"\*(?=\S)(.+?)(?<=\S)\*")
# Underscores inside words (snake_case) are not emphasis.
_UNDERSCORE_EMPHASIS = re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)")
_STRIKETHROUGH = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")

# Escaped punctuation and code spans are parked in private-use characters while emphasis and
# links are stripped, so `\*` and `` `a*b*` `` survive untouched.
_ESCAPE_BASE: Final = 0xE100
_SPAN_OPEN: Final = "\ue000"
_SPAN_CLOSE: Final = "\ue001"
_SPAN_PLACEHOLDER = re.compile(f"{_SPAN_OPEN}(\\d+){_SPAN_CLOSE}")
_PARKED_ESCAPE = re.compile(f"[{chr(_ESCAPE_BASE)}-{chr(_ESCAPE_BASE + 0x7F)}]")


def _strip_inline(text: str) -> str:
    """Remove inline Markdown markup, keeping the visible text (link text, code, emphasis)."""
    spans: list[str] = []

    def park_span(match: re.Match[str]) -> str:
        spans.append(match.group(2).strip() or match.group(2))
        return f"{_SPAN_OPEN}{len(spans) - 1}{_SPAN_CLOSE}"

    text = _CODE_SPAN.sub(park_span, text)
    text = _ESCAPE.sub(lambda m: chr(_ESCAPE_BASE + ord(m.group(1))), text)
    text = _INLINE_LINK.sub(r"\1", text)
    text = _REFERENCE_LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _STRONG.sub(r"\2", text)
    text = _STRIKETHROUGH.sub(r"\1", text)
    text = _STAR_EMPHASIS.sub(r"\1", text)
    text = _UNDERSCORE_EMPHASIS.sub(r"\1", text)
    text = _PARKED_ESCAPE.sub(lambda m: chr(ord(m.group(0)) - _ESCAPE_BASE), text)
    return _SPAN_PLACEHOLDER.sub(lambda m: spans[int(m.group(1))], text)


def _skip_front_matter(lines: list[str]) -> list[str]:
    # YAML front matter (Jekyll, Hugo, …) is metadata, not text.
    if lines and lines[0].strip() == "---":
        for index in range(1, len(lines)):
            if lines[index].strip() in {"---", "..."}:
                return lines[index + 1 :]
    return lines


class _MarkdownParser:
    """A line-by-line Markdown reader feeding a `_SectionBuilder`."""

    def __init__(self) -> None:
        self.builder = _SectionBuilder()
        self.title: str | None = None
        self._lines: list[str] = []  # lines of the open paragraph
        self._fence: str | None = None  # the opening fence while inside a fenced code block
        self._code: list[str] = []

    def feed(self, line: str) -> None:
        if self._fence is not None:
            self._in_code(line)
        elif match := _FENCE_OPEN.match(line):
            self._end_paragraph()
            self._fence = match.group(1)
        elif match := _ATX_HEADING.match(line):
            self._heading(len(match.group(1)), match.group(2) or "")
        elif (match := _SETEXT_UNDERLINE.match(line)) and self._lines:
            text = " ".join(part.strip() for part in self._lines)
            self._lines = []
            self._heading(1 if match.group(1).startswith("=") else 2, text)
        elif not line.strip() or _THEMATIC_BREAK.match(line):
            self._end_paragraph()
        elif not _LINK_DEFINITION.match(line):
            self._lines.append(_BLOCKQUOTE.sub("", line).rstrip())

    def finish(self) -> ParsedDocument:
        if self._fence is not None:  # an unclosed fence runs to the end of the document
            self._end_code()
        self._end_paragraph()
        return ParsedDocument(title=self.title, sections=self.builder.finish())

    def _in_code(self, line: str) -> None:
        fence = self._fence or ""
        stripped = line.strip()
        # A closing fence uses the same character, at least as many times, and nothing else.
        if stripped.startswith(fence) and stripped == fence[0] * len(stripped):
            self._end_code()
        else:
            self._code.append(line.rstrip())

    def _end_code(self) -> None:
        # Blank lines inside the block are dropped so the code stays one paragraph for chunking.
        code = "\n".join(line for line in self._code if line.strip())
        self.builder.add_paragraph(code)
        self._fence = None
        self._code = []

    def _heading(self, level: int, raw: str) -> None:
        self._end_paragraph()
        text = " ".join(_strip_inline(raw).split())
        if not text:
            return
        if level == 1 and self.title is None:
            self.title = text
        self.builder.heading(level, text)

    def _end_paragraph(self) -> None:
        if self._lines:
            self.builder.add_paragraph(_strip_inline("\n".join(self._lines)))
            self._lines = []


def _parse_markdown(text: str) -> ParsedDocument:
    parser = _MarkdownParser()
    for line in _skip_front_matter(text.split("\n")):
        parser.feed(line)
    return parser.finish()


# --------------------------------------------------------------------------------------------
# HTML

# Elements whose content is never visible text. `title` inside `head` is read separately.
# Elements with a `hidden` attribute, `aria-hidden="true"` or `role="navigation"` are skipped too.
_SKIPPED_TAGS: Final = frozenset(
    {"script", "style", "head", "nav", "noscript", "template", "svg", "iframe", "object"}
)
_HEADING_TAGS: Final = {f"h{level}": level for level in range(1, 7)}
# Elements that end the running paragraph when they open or close.
_BLOCK_TAGS: Final = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "br", "caption", "dd", "details",
        "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form",
        "header", "hgroup", "hr", "html", "legend", "li", "main", "menu", "ol", "p", "pre",
        "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
# Elements without an end tag.
_VOID_TAGS: Final = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
     "source", "track", "wbr"}
)  # fmt: skip
# Cells sit side by side in a row: separate them with a space, not a paragraph break.
_CELL_TAGS: Final = frozenset({"td", "th"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def _decode_html(content: bytes) -> str:
    """Decode HTML as UTF-8 unless a BOM-less page declares another charset in a meta tag."""
    if not content.startswith(b"\xef\xbb\xbf"):
        match = _META_CHARSET.search(content[:2048])
        if match:
            charset = match.group(1).decode("ascii").lower()
            if charset not in {"utf-8", "utf8"} and _known_codec(charset):
                return _decode(content, charset)
    return _decode(content)


def _known_codec(name: str) -> bool:
    try:
        "".encode(name)
    except LookupError:
        return False
    return True


def _hidden(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    """Whether an element and everything inside it is invisible or navigation, not content."""
    if tag in _SKIPPED_TAGS:
        return True
    values = dict(attrs)
    return (
        "hidden" in values
        or values.get("aria-hidden") == "true"
        or values.get("role") == "navigation"
    )


class _HtmlTextParser(HTMLParser):
    """Collects the visible text of an HTML page into sections, one per heading."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities arrive already decoded
        self.builder = _SectionBuilder()
        self.title: str | None = None
        self.first_h1: str | None = None
        self._skipping: list[str] = []  # a hidden element and the elements open inside it
        self._text: list[str] = []  # data of the running paragraph
        self._pre_depth = 0
        self._heading: tuple[int, list[str]] | None = None  # level and text of an open heading
        self._title_text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            # Browsers close <head> (and an unclosed <title>) at <body>.
            if self._skipping[:1] == ["head"]:
                self._skipping = []
            self._end_title()
        if tag == "title" and self.title is None and self._skipping in ([], ["head"]):
            self._title_text = []
        if self._skipping or _hidden(tag, attrs):
            if not self._skipping and (tag in _BLOCK_TAGS or tag in _HEADING_TAGS):
                self._end_paragraph()
            if tag not in _VOID_TAGS:  # void elements have no end tag to wait for
                self._skipping.append(tag)
            return
        if tag in _HEADING_TAGS:
            self._end_paragraph()
            self._heading = (_HEADING_TAGS[tag], [])
        elif tag in _BLOCK_TAGS:
            self._end_paragraph()
            if tag == "pre":
                self._pre_depth += 1
        elif tag in _CELL_TAGS:
            self._text.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._end_title()
        if self._skipping:
            if tag in self._skipping:
                # Close the element and anything left open inside it (an unclosed <p>, say).
                del self._skipping[len(self._skipping) - 1 - self._skipping[::-1].index(tag) :]
            return
        if tag in _HEADING_TAGS:
            self._end_heading()
        elif tag in _BLOCK_TAGS:
            self._end_paragraph()
            if tag == "pre":
                self._pre_depth = max(0, self._pre_depth - 1)

    def handle_data(self, data: str) -> None:
        if self._title_text is not None:
            self._title_text.append(data)
            return
        if self._skipping:
            return
        data = data.replace("\x00", "")  # reserved below as the <pre> line-break marker
        if self._heading is not None:
            self._heading[1].append(data)
        else:
            # Inside <pre> line breaks are content; mark them so whitespace collapsing keeps them.
            self._text.append(data.replace("\n", "\x00") if self._pre_depth else data)

    def finish(self) -> ParsedDocument:
        self.close()
        self._end_heading()
        self._end_paragraph()
        return ParsedDocument(title=self.title or self.first_h1, sections=self.builder.finish())

    def _end_title(self) -> None:
        if self._title_text is not None:
            self.title = " ".join("".join(self._title_text).split()) or None
            self._title_text = None

    def _end_heading(self) -> None:
        if self._heading is None:
            return
        level, parts = self._heading
        self._heading = None
        # Documentation generators (Sphinx, …) end headings with a "¶" permalink.
        text = " ".join("".join(parts).split()).removesuffix("¶").rstrip()
        if not text:
            return
        if level == 1 and self.first_h1 is None:
            self.first_h1 = text
        self.builder.heading(level, text)

    def _end_paragraph(self) -> None:
        if self._heading is not None:  # a block inside a heading (rare) stays part of it
            return
        raw = "".join(self._text)
        self._text = []
        lines = (" ".join(line.split()) for line in raw.split("\x00"))
        self.builder.add_paragraph("\n".join(line for line in lines if line))


def _parse_html(text: str) -> ParsedDocument:
    parser = _HtmlTextParser()
    parser.feed(text)
    return parser.finish()


# --------------------------------------------------------------------------------------------
# PDF


def _parse_pdf(content: bytes) -> ParsedDocument:
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted and not _open_encrypted(reader):
            raise _invalid(_ENCRYPTED_PDF)
        title = _pdf_title(reader)
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            text = _join_paragraphs(_paragraphs(_normalise_newlines(page.extract_text())))
            if text:
                sections.append(Section(heading=f"Page {number}", text=text))
    except SwitchyardError:
        raise
    except (DependencyError, FileNotDecryptedError):
        raise _invalid(_ENCRYPTED_PDF) from None
    except Exception as exc:
        # pypdf raises many kinds of error on malformed files; all of them mean a bad upload.
        raise _invalid(f"PDF could not be read (corrupt or not a PDF): {exc}") from None
    return ParsedDocument(title=title, sections=sections)


_ENCRYPTED_PDF: Final = "PDF is encrypted (password-protected); upload an unencrypted copy"


def _open_encrypted(reader: PdfReader) -> bool:
    """Open a PDF encrypted with only an owner password (an empty user password) if it is one.

    Such files open in any viewer without a prompt (the encryption merely restricts printing or
    copying), so refusing them would surprise users.
    """
    return reader.decrypt("") != PasswordType.NOT_DECRYPTED


def _pdf_title(reader: PdfReader) -> str | None:
    metadata = reader.metadata
    title = metadata.title if metadata is not None else None
    if isinstance(title, str):
        return " ".join(title.split()) or None
    return None
