"""From an uploaded file to text: what kind of document it is (told by its content, not its
name), and its text, page by page for a PDF.

Plain text and Markdown are decoded here. HTML and PDF are parsed by third-party code
(BeautifulSoup, pypdf) that has had denial-of-service bugs on crafted files (pypdf's endless
loops and decompression bombs), so they are parsed in a child process
(``python -m tools.retrieve.extract KIND MAX_PAGES [cut]``, the file on stdin, JSON on stdout)
under a memory and CPU limit and a wall-clock timeout: a hostile file costs that process, never
the service. With ``cut`` (``chunk.passages``) the child also cuts a long text into passages,
of any kind: LangChain's splitter is pure Python, and 10 MB of text without a blank in it kept
the service's interpreter busy for 14 s on a thread (every other request 5-8x slower meanwhile,
red-team pass FB).

    ValueError
    └── IngestError          the file cannot be ingested; ``status`` is the HTTP answer
                             (413 too large, 415 not a supported kind, 422 no usable text)
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import re
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

Kind = Literal["text", "markdown", "html", "pdf"]
KINDS: tuple[Kind, ...] = ("text", "markdown", "html", "pdf")
MEDIA_TYPES: dict[Kind, str] = {
    "text": "text/plain",
    "markdown": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
}
_MARKDOWN_NAMES = (".md", ".markdown", ".mdown", ".mkd")
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|title|h[1-6]|p|div|table)\b",
    re.IGNORECASE | re.DOTALL,
)
_MARKDOWN_SIGNS = re.compile(r"^(?:#{1,6} \S|```|\s{0,3}[-*+] \S|\s{0,3}\d+\. \S|>\s)", re.M)
# C0 controls but tab, line feed, form feed and carriage return: a few in a text file (an ANSI
# escape) are tolerated, more mean binary data that happens to decode.
_CONTROLS = re.compile(r"[\x01-\x08\x0b\x0e-\x1f\x7f]")
# Formats people upload by mistake, named in the 415 (told by their first bytes).
_BINARY = (
    (b"PK\x03\x04", "a ZIP archive (or an office document: .docx, .xlsx, .odt, .epub)"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document"),
    (b"{\\rtf", "an RTF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip file"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x7fELF", "a program"),
)
# The most text the parsing child may answer: this many bytes of its JSON for each byte of the
# file (text compresses ~4x in a PDF, HTML only shrinks), and never more than MAX_TEXT_BYTES.
TEXT_PER_BYTE = 16
MAX_TEXT_BYTES = 64 * 1024 * 1024
_CHILD_MEMORY_BYTES = 1024 * 1024 * 1024
_CHILD_CPU_S = 60
_EXIT_GRACE_S = 2.0  # for the child to exit once it has answered, before it is killed


class IngestError(ValueError):
    """A document that cannot be ingested; ``status``: 413, 415 or 422."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Section:
    """A stretch of a document's text: a PDF page (``page`` counts from 1), or the whole text
    of another kind (``page`` None)."""

    text: str
    page: int | None = None


# Where a passage lies: the index of its section, its start and end offsets in that section's
# text, and the headings it sits under.
Cut = tuple[int, int, int, str | None]
# Text longer than this is cut into passages in the parsing child rather than on a thread of
# the service (~0.1 s of the splitter's worst case; the child's start costs ~0.4 s).
CUT_IN_CHILD_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class Parsed:
    """A document's sections and, when the child cut them, where its passages lie."""

    sections: list[Section]
    cuts: list[Cut] | None = None


def detect(data: bytes, filename: str | None = None, declared: str | None = None) -> Kind:
    """The document's kind, from its bytes. The name and the declared media type only choose
    between kinds the content cannot tell apart (Markdown or plain text). Raises
    ``IngestError(415)`` for anything else (images, archives, office files, other binary)."""
    head = data[:1024]
    if head.lstrip(b"\x00\t\n\r\x0c ").startswith(b"%PDF-"):
        return "pdf"
    for magic, what in _BINARY:
        if data.startswith(magic):
            raise IngestError(
                415, f"unsupported file: {what}; supported: plain text, Markdown, HTML and PDF"
            )
    text = decode(data)
    if _HTML_START.match(head.decode("utf-8", "replace").encode()) or (
        (declared or "").split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml")
        and "<" in text[:4096]
    ):
        return "html"
    hint = (declared or "").split(";")[0].strip().lower()
    named = (filename or "").lower().endswith(_MARKDOWN_NAMES)
    if named or hint == "text/markdown" or len(_MARKDOWN_SIGNS.findall(text[:20_000])) >= 2:
        return "markdown"
    return "text"


def decode(data: bytes) -> str:
    """Text from bytes: UTF-8 (with or without a BOM), or UTF-16/32 with a BOM. Anything else
    (binary, or a legacy code page) is refused with 415 rather than guessed."""
    for bom, codec in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise IngestError(415, f"the file is not valid {codec} text: {exc.reason}") from exc
            break
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IngestError(
                415,
                "unsupported file: not a PDF, and not UTF-8 text (binary or another encoding); "
                "supported: plain text, Markdown, HTML and PDF",
            ) from exc
    controls = len(_CONTROLS.findall(text, 0, 65_536))
    if "\x00" in text or controls > max(2, len(text[:65_536]) // 200):
        raise IngestError(415, "unsupported file: it holds control characters (binary data)")
    return text


async def sections(
    data: bytes, kind: Kind, *, max_pages: int, timeout_s: float = 60.0
) -> list[Section]:
    """The document's text: one section per PDF page, else one. HTML and PDF are parsed in a
    confined child process (see the module docstring). Raises ``IngestError``."""
    if kind in ("text", "markdown"):
        found = [Section(decode(data))]
    else:
        found = (
            await parse_in_child(data, kind, max_pages=max_pages, timeout_s=timeout_s)
        ).sections
    return has_text(found, kind)


def has_text(found: list[Section], kind: Kind) -> list[Section]:
    """``found``, unless none of it is text: then ``IngestError(422)``."""
    if not any(section.text.strip() for section in found):
        why = " (a scanned PDF needs OCR first)" if kind == "pdf" else ""
        raise IngestError(422, f"the {kind} document holds no text{why}")
    return found


async def parse_in_child(
    data: bytes, kind: Kind, *, max_pages: int, timeout_s: float, cut: bool = False
) -> Parsed:
    """The file read in the confined child; with ``cut``, a text longer than
    ``CUT_IN_CHILD_CHARS`` is also cut into passages there. Raises ``IngestError``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.retrieve.extract",
        kind,
        str(max_pages),
        *(["cut"] if cut else []),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    cap = min(MAX_TEXT_BYTES, TEXT_PER_BYTE * len(data) + (1 << 20))
    answered = False
    reading = asyncio.ensure_future(_read_at_most(process.stdout, cap, kind))
    errors = asyncio.ensure_future(_read_at_most(process.stderr, 1 << 16, kind, keep_going=True))
    exchange = [reading, errors, asyncio.ensure_future(_feed(process.stdin, data))]
    try:
        await asyncio.wait_for(asyncio.gather(*exchange), timeout_s)
        out, err = reading.result(), errors.result()
        answered = True
    except TimeoutError as exc:
        raise IngestError(422, f"parsing the {kind} file took longer than {timeout_s:g} s") from exc
    finally:
        for task in exchange:  # one failed (the cap): the others stop reading too
            task.cancel()
        await asyncio.gather(*exchange, return_exceptions=True)
        await _ended(process, grace_s=_EXIT_GRACE_S if answered else 0.0)
    try:
        reply = json.loads(out)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no reply"]
        raise IngestError(422, f"the {kind} file could not be parsed ({tail[0][:200]})")
    if "error" in reply:
        raise IngestError(int(reply.get("status", 422)), str(reply["error"]))
    found = [Section(str(item["text"]), item.get("page")) for item in reply["sections"]]
    if reply.get("cuts") is None:
        return Parsed(found)
    headings: list[str] = reply["headings"]
    return Parsed(
        found,
        [
            (index, start, end, headings[heading] if heading >= 0 else None)
            for index, start, end, heading in reply["cuts"]
        ],
    )


async def _ended(process: asyncio.subprocess.Process, *, grace_s: float) -> None:
    """``process`` ended: given ``grace_s`` to exit by itself (it has answered), else
    killed, and what is left in its pipes read and dropped. Killing one that had already
    exited reaped it behind asyncio's back (``Popen`` polls before it signals: "Unknown child
    process pid" in the log each time); and asyncio's ``wait()`` returns only once the pipes
    are closed, which a pipe left full, its reading stopped at the cap, never is (pass FF: an
    upload whose text passed the cap waited forever, holding its ingestion place)."""
    if process.returncode is None and grace_s > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(process.wait()), grace_s)
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await asyncio.gather(_drop(process.stdout), _drop(process.stderr))
    await process.wait()


async def _drop(stream: asyncio.StreamReader | None) -> None:
    """Read ``stream`` to its end (the process is gone: its end comes), keeping nothing."""
    if stream is not None:
        while await stream.read(1 << 16):
            pass


async def _read_at_most(
    stream: asyncio.StreamReader | None, cap: int, kind: str, *, keep_going: bool = False
) -> bytes:
    """What ``stream`` gives until it ends; past ``cap`` bytes a 413 (the child's text: a
    27 KB PDF whose pages share one compressed stream wrote 100 MB), or, ``keep_going``, the
    rest read and dropped."""
    assert stream is not None
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(1 << 16):
        size += len(chunk)
        if size <= cap:
            chunks.append(chunk)
        elif not keep_going:
            raise IngestError(413, f"the {kind} file's text is larger than {cap} bytes")
    return b"".join(chunks)


async def _feed(stream: asyncio.StreamWriter | None, data: bytes) -> None:
    assert stream is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it ended before reading
        stream.write(data)
        await stream.drain()
    stream.close()


def _confine_child() -> None:  # pragma: no cover - runs in the child, before it reads
    resource.setrlimit(resource.RLIMIT_AS, (_CHILD_MEMORY_BYTES, _CHILD_MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (_CHILD_CPU_S, _CHILD_CPU_S))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def pdf_pages(data: bytes, max_pages: int) -> list[Section]:
    """Each page's text, through pypdf. Raises ``IngestError`` for an encrypted, broken or
    too long PDF."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(422, "the PDF is encrypted with a password")
        count = len(reader.pages)
        if count > max_pages:
            raise IngestError(413, f"the PDF has {count} pages; the limit is {max_pages}")
        return [
            Section(_whole_characters(page.extract_text() or ""), number)
            for number, page in enumerate(reader.pages, start=1)
        ]
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, IngestError):
            raise
        raise IngestError(422, f"the PDF cannot be read: {str(exc)[:200]}") from exc


def _whole_characters(text: str) -> str:
    """``text`` with each UTF-16 surrogate pair joined into its character, a lone half and a
    NUL replaced (U+FFFD). pypdf answers halves when a font maps codes to them: passages cut
    on such text, then sent as JSON (which joins pairs), pointed past their text (pass FF);
    and no database stores a lone half or a NUL."""
    if text.isascii() and "\x00" not in text:
        return text
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return joined.replace("\x00", "\ufffd")


_BLOCKS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "form",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
    ]
)
_DROPPED = frozenset(
    ["script", "style", "noscript", "template", "head", "svg", "canvas", "iframe", "object"]
)


def html_text(html: str) -> str:
    """The visible text of an HTML page as Markdown-like text: headings as ``#`` lines (so the
    Markdown splitter keeps sections together), one block per paragraph, table cells apart;
    scripts, styles and the head dropped."""
    from bs4 import BeautifulSoup
    from bs4.element import Comment, Doctype, NavigableString, Tag

    soup = BeautifulSoup(html, "html.parser")
    out: list[str] = []

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, (Comment, Doctype)):
                continue
            if isinstance(child, NavigableString):
                out.append(str(child))
                continue
            if not isinstance(child, Tag) or child.name in _DROPPED:
                continue
            name = child.name
            if len(name) == 2 and name[0] == "h" and name[1] in "123456":
                title = " ".join(child.get_text(" ").split())
                if title:
                    out.append(f"\n\n{'#' * int(name[1])} {title}\n\n")
                continue
            if name == "br":
                out.append("\n")
            elif name in ("td", "th"):
                out.append(" | ")
            block = name in _BLOCKS
            if block:
                out.append("\n\n" if name != "li" else "\n- ")
            walk(child)
            if block:
                out.append("\n\n" if name != "li" else "\n")

    walk(soup)
    lines = (" ".join(line.split()) for line in "".join(out).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _child_main(argv: Sequence[str]) -> int:  # pragma: no cover - run as a subprocess
    _confine_child()
    sys.setrecursionlimit(4_000)  # deeper nesting: a clean 422, not a crash
    kind, max_pages, cut = argv[0], int(argv[1]), argv[2:] == ["cut"]
    data = sys.stdin.buffer.read()
    try:
        if kind == "pdf":
            found = pdf_pages(data, max_pages)
        elif kind == "html":
            found = [Section(html_text(decode(data)))]
        elif kind in ("text", "markdown"):
            found = [Section(decode(data))]
        else:
            raise IngestError(415, f"no parser for {kind!r}")
        reply: dict[str, object] = {
            "sections": [{"text": section.text, "page": section.page} for section in found]
        }
        if cut and sum(len(section.text) for section in found) > CUT_IN_CHILD_CHARS:
            reply.update(_cuts(found, kind))
    except IngestError as exc:
        reply = {"error": str(exc), "status": exc.status}
    except RecursionError:
        reply = {"error": f"the {kind} file is nested too deeply to read", "status": 422}
    except MemoryError:
        reply = {"error": f"the {kind} file needs too much memory to read", "status": 422}
    # UTF-8, not ASCII escapes: a character past the BMP took 12 bytes (pass FF: heading
    # trails of emoji put a 4 MB file's answer past the cap); no text here holds a lone
    # surrogate (decoded strictly, or ``_whole_characters``)
    sys.stdout.buffer.write(json.dumps(reply, ensure_ascii=False).encode())
    return 0


def _cuts(found: list[Section], kind: str) -> dict[str, object]:  # pragma: no cover - child
    """Where the passages of ``found`` lie, each heading trail sent once (a trail is shared
    by every passage under it)."""
    from tools.retrieve.chunk import cut

    headings: dict[str, int] = {}
    cuts = [
        [
            index,
            piece.start,
            piece.end,
            -1 if piece.heading is None else headings.setdefault(piece.heading, len(headings)),
        ]
        for index, piece in cut(found, cast(Kind, kind))
    ]
    return {"cuts": cuts, "headings": list(headings)}


if __name__ == "__main__":  # pragma: no cover
    # The importable module's own function, so that the IngestError the splitter raises
    # (``tools.retrieve.chunk`` imports that module, not ``__main__``) is the one caught.
    from tools.retrieve.extract import _child_main as main

    sys.exit(main(sys.argv[1:]))
