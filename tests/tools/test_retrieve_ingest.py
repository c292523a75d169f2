"""Reading documents for retrieval: the kind told by content, the text of real PDF, HTML and
Markdown files made here, passages that point back into it, and clear refusals."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF

from tools.retrieve import chunk as chunk_module
from tools.retrieve import extract
from tools.retrieve.chunk import chunk, passages
from tools.retrieve.extract import (
    CUT_IN_CHILD_CHARS,
    IngestError,
    Section,
    detect,
    html_text,
    sections,
)

MARKDOWN = """# Freedonia handbook

Freedonia is a small country.

## Geography

The capital of Freedonia is Fredville, on the river Marx.

### Climate

Winters are mild; summers are dry.

```python
# not a heading: inside a code block
print("hello")
```

## Economy

Freedonia exports mustard and tin.
"""

HTML = """<!DOCTYPE html>
<html><head><title>Ignored title</title><style>body { color: red }</style>
<script>var secret = "should not be indexed";</script></head>
<body>
<h1>Sylvania</h1>
<p>Sylvania is Freedonia's neighbour.</p>
<h2>Rivers</h2>
<p>The longest river of Sylvania is the <b>Trentino</b>, 412 km long.</p>
<ul><li>first tributary: Chico</li><li>second tributary: Harpo</li></ul>
<table><tr><th>year</th><th>tons</th></tr><tr><td>1933</td><td>7</td></tr></table>
<!-- a comment that should not be indexed -->
</body></html>
"""


def make_pdf(pages: list[str], *, password: str | None = None) -> bytes:
    """A real PDF with one text page per entry (fpdf2, core font)."""
    pdf = FPDF()
    if password is not None:
        pdf.set_encryption(owner_password="owner", user_password=password)
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def test_the_kind_is_told_by_the_content_not_the_name() -> None:
    pdf = make_pdf(["hello"])
    assert detect(pdf, "notes.txt", "text/plain") == "pdf"
    assert detect(HTML.encode(), "page.txt") == "html"
    assert detect(b"  <html><body><p>x</p></body></html>") == "html"
    assert detect(MARKDOWN.encode()) == "markdown"  # headings and a fence
    assert detect(b"just words", "notes.md") == "markdown"  # only the name can tell
    assert detect(b"just words", None, "text/markdown") == "markdown"
    assert detect(b"just words\nand more") == "text"
    assert detect("\ufeffwith a BOM".encode()) == "text"
    assert detect("utf-16 text".encode("utf-16")) == "text"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)),  # an image
        b"PK\x03\x04" + bytes(200),  # a zip (docx, xlsx)
        "caf\xe9 latin-1".encode("latin-1"),  # not UTF-8: refused, not guessed
        b"text with a \x00 NUL",
        b"PK\x03\x04junk",  # a tiny zip: valid UTF-8, still not text
        b"{\\rtf1\\ansi hello}",
        b"ab\x01\x02cd\x03\x04" * 100,  # binary data that happens to decode
    ],
)
def test_what_is_not_text_markdown_html_or_pdf_is_415(data: bytes) -> None:
    with pytest.raises(IngestError) as caught:
        detect(data, "file.txt")
    assert caught.value.status == 415


def test_text_with_a_stray_escape_is_still_text() -> None:
    """A terminal log keeps an ANSI colour code or two: text, not binary."""
    log = b"build ok\n" * 200 + b"\x1b[31mfailed\x1b[0m\n"
    assert detect(log) == "text"


async def test_markdown_passages_know_their_headings_and_offsets() -> None:
    found = await sections(MARKDOWN.encode(), "markdown", max_pages=10)
    passages = chunk(found, "markdown", size=120, overlap=20)
    assert len(passages) > 3
    for passage in passages:
        assert MARKDOWN[passage.start : passage.end] == passage.text
        assert passage.page is None
    capital = next(p for p in passages if "Fredville" in p.text)
    assert capital.heading == "Freedonia handbook / Geography"
    exports = next(p for p in passages if "mustard" in p.text)
    assert exports.heading == "Freedonia handbook / Economy"  # Climate (###) was closed
    code = next(p for p in passages if "print(" in p.text)
    assert "not a heading" not in (code.heading or "")


async def test_html_is_read_as_its_visible_text_with_headings() -> None:
    found = await sections(HTML.encode(), "html", max_pages=10)
    text = found[0].text
    assert "# Sylvania" in text and "## Rivers" in text
    assert "The longest river of Sylvania is the Trentino, 412 km long." in text
    assert "first tributary: Chico" in text and "1933" in text
    for hidden in ("secret", "color: red", "Ignored title", "a comment"):
        assert hidden not in text
    passages = chunk(found, "html", size=100, overlap=10)
    river = next(p for p in passages if "Trentino" in p.text)
    assert river.heading == "Sylvania / Rivers"
    assert text[river.start : river.end] == river.text


async def test_pdf_pages_are_read_with_their_numbers() -> None:
    pages = [
        "Chapter one. The treaty was signed in Fredville.",
        "Chapter two. The tin mines of Sylvania employ 3200 people.",
        "Chapter three. Mustard prices doubled in 1933.",
    ]
    found = await sections(make_pdf(pages), "pdf", max_pages=10)
    assert [section.page for section in found] == [1, 2, 3]
    passages = chunk(found, "pdf")
    mines = next(p for p in passages if "tin mines" in p.text)
    assert mines.page == 2 and "3200 people" in mines.text
    section = found[1].text
    assert section[mines.start : mines.end] == mines.text


async def test_a_broken_pdf_is_a_clear_422_from_the_child_process() -> None:
    broken = make_pdf(["some text"])[:200]  # cut short
    with pytest.raises(IngestError) as caught:
        await sections(b"%PDF-1.4\n" + broken[9:], "pdf", max_pages=10)
    assert caught.value.status == 422


async def test_an_encrypted_pdf_is_refused() -> None:
    with pytest.raises(IngestError) as caught:
        await sections(make_pdf(["secret"], password="pw"), "pdf", max_pages=10)
    assert caught.value.status == 422 and "password" in str(caught.value)


async def test_too_many_pages_is_413() -> None:
    with pytest.raises(IngestError) as caught:
        await sections(make_pdf(["a", "b", "c"]), "pdf", max_pages=2)
    assert caught.value.status == 413 and "3 pages" in str(caught.value)


async def test_text_far_larger_than_its_file_is_413_as_it_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Red-team pass Q: a 27 KB PDF whose pages shared one compressed stream answered 100 MB
    of text, all of it held by the service. The child's answer is read up to a cap (here made
    small: a real PDF whose repeated text compresses well goes past it)."""
    pdf = make_pdf(["tick tock " * 4000] * 3)
    monkeypatch.setattr(extract, "MAX_TEXT_BYTES", 50_000)
    with pytest.raises(IngestError) as caught:
        await sections(pdf, "pdf", max_pages=100)
    assert caught.value.status == 413 and "text is larger than 50000" in str(caught.value)
    monkeypatch.setattr(extract, "MAX_TEXT_BYTES", 10**7)
    assert "tick tock" in (await sections(pdf, "pdf", max_pages=100))[0].text


async def test_a_pdf_without_text_is_422() -> None:
    pdf = FPDF()
    pdf.add_page()  # a blank page: what a scan without OCR gives
    with pytest.raises(IngestError) as caught:
        await sections(bytes(pdf.output()), "pdf", max_pages=10)
    assert caught.value.status == 422 and "OCR" in str(caught.value)


def test_the_parsing_child_runs_under_memory_and_cpu_limits() -> None:
    """What confines the child that parses HTML and PDF (a hostile file's endless loop or
    bomb costs that process): its address space and CPU time are capped before it reads the
    file. Read from /proc while the real child waits for its input."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tools.retrieve.extract", "pdf", "10"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        limits: dict[str, str] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = Path(f"/proc/{child.pid}/limits").read_text().splitlines()
            limits = {line[:26].strip(): line[26:].split()[0] for line in lines[1:]}
            if limits.get("Max address space") != "unlimited":
                break
            time.sleep(0.05)
        assert int(limits["Max address space"]) <= 2 * 1024**3
        assert int(limits["Max cpu time"]) <= 120
    finally:
        child.kill()
        child.communicate()


async def test_a_parse_that_takes_too_long_is_stopped() -> None:
    with pytest.raises(IngestError) as caught:
        await sections(make_pdf(["x"] * 30), "pdf", max_pages=100, timeout_s=0.01)
    assert caught.value.status == 422 and "longer than" in str(caught.value)


async def test_deeply_nested_html_is_refused_cleanly() -> None:
    nested = ("<div>" * 50_000 + "deep" + "</div>" * 50_000).encode()
    try:
        found = await sections(nested, "html", max_pages=10)
    except IngestError as exc:
        assert exc.status == 422
    else:
        assert "deep" in found[0].text


async def test_an_empty_document_is_422() -> None:
    with pytest.raises(IngestError) as caught:
        await sections(b"  \n\n ", "text", max_pages=10)
    assert caught.value.status == 422
    with pytest.raises(IngestError):
        await sections(b"<html><body><script>x()</script></body></html>", "html", max_pages=10)


def test_html_text_keeps_paragraphs_apart() -> None:
    text = html_text("<p>one</p><p>two<br>three</p><h3>Four</h3>five")
    assert text == "one\n\ntwo\nthree\n\n### Four\n\nfive"


def test_too_many_passages_is_413() -> None:
    from tools.retrieve.extract import Section

    with pytest.raises(IngestError) as caught:
        chunk([Section("word " * 10_000)], "text", size=100, overlap=0, max_chunks=50)
    assert caught.value.status == 413


def _cut_here(*args: object, **kwargs: object) -> list[object]:
    raise AssertionError("a long text was cut in the service's process")


@pytest.mark.parametrize("kind", ["text", "markdown", "html", "pdf"])
async def test_a_long_text_is_cut_in_the_child_as_it_would_be_here(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pass FB: LangChain's splitter is pure Python; cutting 10 MB without a blank on a thread
    of the service took 14 s, every other request 5-8x slower meanwhile. A text past
    ``CUT_IN_CHILD_CHARS`` is cut in the parsing child, into the same passages, headings and
    pages included (here the service's own splitter refuses to run)."""
    body = "\n\n".join(
        f"## Part {n}\n\nThe tin mines of part {n} employ {n} people. " * 3 for n in range(400)
    )
    paragraphs = "</p><p>".join(body.split("\n\n"))
    data = {
        "text": ("abcdefghij" * (CUT_IN_CHILD_CHARS // 5)).encode(),  # no blank to cut at
        "markdown": f"# Handbook\n\n{body}".encode(),
        "html": f"<h1>Handbook</h1><p>{paragraphs}</p>".encode(),
        "pdf": make_pdf([body[:1_500]] * 60),
    }[kind]
    found = await sections(data, kind, max_pages=500)  # type: ignore[arg-type]
    expected = chunk(found, kind)  # type: ignore[arg-type]
    assert sum(len(section.text) for section in found) > CUT_IN_CHILD_CHARS
    monkeypatch.setattr(chunk_module, "chunk", _cut_here)
    text, pieces = await passages(data, kind, max_pages=500, timeout_s=60)  # type: ignore[arg-type]
    assert text == found and pieces == expected and len(pieces) > 20
    if kind in ("markdown", "html"):
        assert len({p.heading for p in pieces}) > 50  # "Handbook / Part 117", ...
    if kind == "pdf":
        assert [piece.page for piece in pieces][:: len(pieces) - 1] == [1, len(found)]


async def test_a_short_text_is_cut_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``CUT_IN_CHILD_CHARS`` a child's start (~0.4 s) would cost more than cutting."""
    found, pieces = await passages(MARKDOWN.encode(), "markdown", max_pages=10, timeout_s=60)
    assert found == [Section(MARKDOWN)] and pieces == chunk(found, "markdown")
    small_html = await passages(HTML.encode(), "html", max_pages=10, timeout_s=60)
    monkeypatch.setattr(chunk_module, "chunk", _cut_here)
    with pytest.raises(AssertionError):
        await passages(MARKDOWN.encode(), "markdown", max_pages=10, timeout_s=60)
    with pytest.raises(AssertionError):  # the child read it and left the cutting to us
        await passages(HTML.encode(), "html", max_pages=10, timeout_s=60)
    assert small_html[1]


def test_the_child_s_too_many_passages_is_a_413() -> None:
    """The splitter's ``IngestError`` raised in the child is the one it catches (the child runs
    as ``__main__``, a module of its own, while the splitter raises the importable one's)."""
    lines = ("x" * 70 + "\n") * 210_000  # ~21,000 passages of 800 characters
    reply = subprocess.run(
        [sys.executable, "-m", "tools.retrieve.extract", "text", "10", "cut"],
        input=lines.encode(),
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert json.loads(reply.stdout) == {
        "error": "the document makes more than 20000 passages; split it",
        "status": 413,
    }


async def test_the_child_is_reaped_by_asyncio_alone(caplog: pytest.LogCaptureFixture) -> None:
    """The child, killed after it had answered and exited, was reaped by ``Popen``'s poll
    before the signal, behind asyncio's back: "Unknown child process pid ..., will report
    returncode 255" in the service's log for about every other document. It is now given a
    moment to exit first."""
    caplog.set_level(logging.WARNING, logger="asyncio")
    for n in range(8):
        await sections(f"<h1>Page {n}</h1><p>text</p>".encode(), "html", max_pages=10)
    assert not [r for r in caplog.records if "Unknown child process" in r.getMessage()]


async def test_a_child_that_answered_is_let_exit_and_one_that_hangs_is_killed() -> None:
    """The same, without luck: a child that exits a moment after its answer ends by itself
    (exit status 0, so it was not signalled), and one that never exits is killed once its
    grace has passed."""
    code = "import sys, time; print('done', flush=True); time.sleep(float(sys.argv[1]))"
    exits = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "0.3", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    await extract._ended(exits, grace_s=5.0)
    assert exits.returncode == 0
    hangs = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "60", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    began = time.monotonic()
    await extract._ended(hangs, grace_s=0.5)
    assert hangs.returncode == -9
    assert time.monotonic() - began < 30


def _pdf_with_split_characters(pages: int) -> bytes:
    """A PDF whose font's ToUnicode map sends two codes to the two UTF-16 halves of U+1F600,
    so that pypdf reads each as a lone surrogate (written by hand: fpdf2 cannot make one).
    From red-team pass FF's ``mkpdf.py``."""
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        b"/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
        b"1 begincodespacerange <00> <FF> endcodespacerange\n"
        b"2 beginbfchar <01> <D83D> <02> <DE00> endbfchar\n"
        b"1 beginbfrange <20> <7E> <0020> endbfrange\n"
        b"endcmap CMapName currentdict /CMap defineresource pop end end\n"
    )
    kids = " ".join(f"{5 + 2 * i} 0 R" for i in range(pages)).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"\nendstream",
    ]
    line = b"Word \x01\x02 alpha beta gamma delta \x01\x02 epsilon zeta eta theta iota"
    for page in range(pages):
        lines = b"".join(b"(" + line + b" p%d l%d) Tj T*\n" % (page, n) for n in range(80))
        body = b"BT /F1 8 Tf 10 830 Td 9 TL\n" + lines + b"ET"
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (6 + 2 * page)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(body) + body + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    table = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        table,
    )
    return bytes(out)


async def test_a_pdf_s_split_characters_come_whole() -> None:
    """Pass FF: pypdf answered the halves of a character; passages cut on that text in the
    child pointed past their text once the JSON reply joined the halves (136 passages became
    156, 12 ending past their page). Halves are joined (a lone one replaced) as read."""
    data = _pdf_with_split_characters(16)
    found, pieces = await passages(data, "pdf", max_pages=100, timeout_s=60)
    assert "\U0001f600" in found[0].text and "\ud83d" not in found[0].text
    assert len("".join(section.text for section in found)) > CUT_IN_CHILD_CHARS  # the child cut
    assert pieces == chunk(found, "pdf")
    for piece in pieces:
        assert found[piece.page - 1].text[piece.start : piece.end] == piece.text  # type: ignore[operator]
    assert extract._whole_characters("a\ud83d\ude00b\ud83dc\x00") == "a\U0001f600b\ufffdc\ufffd"


async def test_an_answer_far_past_the_cap_is_a_413_not_a_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pass FF: past the cap the service stopped reading the child, killed it, and waited:
    asyncio's ``wait()`` returns once the pipes are closed, and a pipe whose reading was
    paused (its buffer full) never is: the upload waited forever, holding an ingestion place.
    What is left is now read and dropped. (The reader here stops as the buffer has filled.)"""
    read = extract._read_at_most

    async def stops_late(stream: Any, cap: int, kind: str, *, keep_going: bool = False) -> bytes:
        if keep_going:
            return await read(stream, cap, kind, keep_going=True)
        await asyncio.sleep(5)  # the child has cut and writes: asyncio pauses the pipe
        raise IngestError(413, "too large")

    monkeypatch.setattr(extract, "_read_at_most", stops_late)
    with pytest.raises(IngestError) as caught:
        await asyncio.wait_for(
            passages(("word " * 2_000_000).encode(), "text", max_pages=1, timeout_s=60), 30
        )
    assert caught.value.status == 413
