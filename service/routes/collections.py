"""Document collections: what the ``retrieve`` action reads (``collections`` on ``/ask``).

A document arrives as a file (``multipart/form-data``, field ``file``, and optionally
``source``) or as JSON text (``DocumentText``). Its kind is told by its content
(``tools.retrieve.extract``); it is parsed (HTML and PDF in a confined child process), cut into
passages (``tools.retrieve.chunk``, on a thread: a 10 MB text takes a while) and stored
(``Collections.add_document``: seen whole or not at all). What cannot be ingested is a 413
(too large), 415 (not text, Markdown, HTML or PDF) or 422 (no text, unreadable), and leaves
nothing behind.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from service.auth import client_address
from service.collections import (
    CollectionExists,
    DuplicateDocument,
    TooMany,
    parse_budget_s,
    prepare_document,
)
from service.deps import Client, Owner, State, Writes
from service.errors import ProblemError, problem_responses
from service.schemas import (
    COLLECTION_NAME_PATTERN,
    SOURCE_CHARS,
    Collection,
    CollectionList,
    CollectionRequest,
    Document,
    DocumentList,
    DocumentText,
    storable_text,
)
from service.state import AppState
from service.strict_json import StrictJSONRoute, loads
from tools.retrieve.extract import IngestError
from tools.search.base import clean_line

router = APIRouter(tags=["collections"], route_class=StrictJSONRoute)
Name = Annotated[str, Path(pattern=COLLECTION_NAME_PATTERN)]
DocumentId = Annotated[str, Path(max_length=40, pattern=r"^[0-9a-f]+$")]
DOCUMENTS_PATH = "/collections/{name}/documents"
_MULTIPART_OVERHEAD = 64 * 1024  # the form's boundaries and headers around the file
_PARSED_AT_ONCE = 64 * 1024  # a JSON body past it is parsed on a thread
_MAX_BRACKETS = 100_000  # in a JSON document body, inside its text too (~0.05 s to parse)


def document_body_limit(max_document_bytes: int) -> int:
    """The request-body cap on document uploads (``service.limits.BodySizeLimit``)."""
    return max_document_bytes + _MULTIPART_OVERHEAD


@router.post(
    "/collections",
    status_code=201,
    response_model=Collection,
    summary="Create a document collection",
    responses=problem_responses(400, 401, 409, 413, 422, 429, 503),
    dependencies=[Writes],
)
async def create_collection(state: State, owner: Owner, body: CollectionRequest) -> Response:
    try:
        created = await state.collections.create(owner, body.name, body.description)
    except CollectionExists as exc:
        raise ProblemError(409, f"you already have a collection named {body.name!r}") from exc
    except TooMany as exc:
        raise ProblemError(409, str(exc)) from exc
    return JSONResponse(
        Collection.model_validate(created).model_dump(),
        status_code=201,
        headers={"Location": f"/collections/{body.name}"},
    )


@router.get(
    "/collections",
    response_model=CollectionList,
    summary="Your collections, by name",
    responses=problem_responses(401, 503),
)
async def list_collections(state: State, owner: Owner) -> CollectionList:
    found = await state.collections.find(owner)
    return CollectionList(collections=[Collection.model_validate(item) for item in found])


@router.get(
    "/collections/{name}",
    response_model=Collection,
    summary="A collection",
    responses=problem_responses(401, 404, 422, 503),
)
async def get_collection(state: State, owner: Owner, name: Name) -> Collection:
    return Collection.model_validate(await _collection(state, owner, name))


@router.delete(
    "/collections/{name}",
    status_code=204,
    summary="Delete a collection with its documents",
    responses=problem_responses(401, 404, 422, 429, 503),
    dependencies=[Writes],
)
async def delete_collection(state: State, owner: Owner, name: Name) -> Response:
    if not await state.collections.delete(owner, name):
        raise ProblemError(404, f"no collection named {name!r}")
    return Response(status_code=204)


@router.post(
    DOCUMENTS_PATH,
    status_code=201,
    response_model=Document,
    summary="Add a document (text, Markdown, HTML or PDF)",
    responses=problem_responses(400, 401, 404, 408, 409, 413, 415, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "source": {"type": "string", "maxLength": SOURCE_CHARS},
                        },
                    }
                },
                "application/json": {"schema": DocumentText.model_json_schema()},
            },
        }
    },
)
async def add_document(
    state: State, client: Client, owner: Owner, name: Name, request: Request
) -> Response:
    # as every request that starts work: by key, else by address (not by owner, which is
    # one and the same for every client of a server without keys: one anonymous client's
    # slow PDF had every other one's upload refused, pass EF)
    await state.admission.check_rate(client or client_address(request))
    holder = owner or client_address(request)
    collection = await _collection(state, owner, name)
    with state.uploads.holding(holder):  # bodies held whole while they arrive: a few at once
        data, source, declared = await _arrived(state, request)
    async with state.ingests.slot(holder):  # parsing, chunking and storing: a few at a time
        stored = await _ingest(state, collection, name, data, source, declared)
    return JSONResponse(
        Document.model_validate(stored).model_dump(),
        status_code=201,
        headers={"Location": f"/collections/{name}/documents/{stored['document_id']}"},
    )


async def _arrived(state: AppState, request: Request) -> tuple[bytes, str, str | None]:
    """The document, once its body has arrived whole (``BODY_TIMEOUT_S``, a 408, is the
    body-size middleware's: ``service.limits.BodySizeLimit``)."""
    try:
        return await _read_document(request, state.settings.retrieve_max_document_bytes)
    except ClientDisconnect:  # a 75-line traceback in the log, each time (pass EF)
        raise ProblemError(400, "the client went away before its document arrived") from None


async def _ingest(
    state: AppState,
    collection: dict[str, Any],
    name: str,
    data: bytes,
    source: str,
    declared: str | None,
) -> dict[str, Any]:
    try:
        await state.collections.check_room(collection, hashlib.sha256(data).hexdigest())
        new = await prepare_document(
            data,
            source,
            declared,
            max_pages=state.settings.retrieve_max_pages,
            timeout_s=parse_budget_s(len(data), state.settings.retrieve_parse_timeout_s),
        )
        return await state.collections.add_document(collection, new)
    except IngestError as exc:
        raise ProblemError(exc.status, str(exc)) from exc
    except LookupError as exc:
        raise ProblemError(404, f"collection {name!r} was deleted meanwhile") from exc
    except TooMany as exc:
        raise ProblemError(409, str(exc)) from exc
    except DuplicateDocument as exc:
        same = exc.document
        raise ProblemError(
            409,
            f"the collection already holds this content, as document {same['document_id']} "
            f"({same['source']!r}); delete that one first to add it again",
            document_id=same["document_id"],
            headers={"Location": f"/collections/{name}/documents/{same['document_id']}"},
        ) from exc


@router.get(
    DOCUMENTS_PATH,
    response_model=DocumentList,
    summary="The documents of a collection, oldest first",
    responses=problem_responses(401, 404, 422, 503),
)
async def list_documents(state: State, owner: Owner, name: Name) -> DocumentList:
    collection = await _collection(state, owner, name)
    found = await state.collections.documents(collection)
    return DocumentList(documents=[Document.model_validate(item) for item in found])


@router.get(
    DOCUMENTS_PATH + "/{document_id}",
    response_model=Document,
    summary="A document",
    responses=problem_responses(401, 404, 422, 503),
)
async def get_document(state: State, owner: Owner, name: Name, document_id: DocumentId) -> Document:
    collection = await _collection(state, owner, name)
    found = await state.collections.document(collection, document_id)
    if found is None:
        raise ProblemError(404, f"no document {document_id} in collection {name!r}")
    return Document.model_validate(found)


@router.delete(
    DOCUMENTS_PATH + "/{document_id}",
    status_code=204,
    summary="Delete a document and its passages",
    responses=problem_responses(401, 404, 422, 429, 503),
    dependencies=[Writes],
)
async def delete_document(
    state: State, owner: Owner, name: Name, document_id: DocumentId
) -> Response:
    collection = await _collection(state, owner, name)
    if not await state.collections.delete_document(collection, document_id):
        raise ProblemError(404, f"no document {document_id} in collection {name!r}")
    return Response(status_code=204)


async def _collection(state: AppState, owner: str, name: str) -> dict[str, Any]:
    found = await state.collections.get(owner, name)
    if found is None:
        raise ProblemError(404, f"no collection named {name!r}")
    return found


async def _read_document(request: Request, limit: int) -> tuple[bytes, str, str | None]:
    """The document's bytes, its source name and its declared media type, from a multipart
    upload or a JSON body. Raises ``ProblemError`` (413/415/422)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _read_upload(request, limit)
    if content_type != "application/json":
        raise ProblemError(
            415, "send the document as multipart/form-data (field 'file') or as JSON text"
        )
    raw = await request.body()
    if raw.count(b"[") + raw.count(b"{") > _MAX_BRACKETS:
        # Python's parser holds the interpreter while it makes containers, on a thread too:
        # a 10 MB body of empty lists stalled every other client for 2.3 s (passes EF, EJ);
        # a document is one object of strings, and a text full of brackets goes as a file
        raise ProblemError(
            422,
            f"the JSON body has more than {_MAX_BRACKETS} brackets: send a document like this "
            "as a file (multipart/form-data, field 'file')",
        )
    try:
        # a big body on a thread: parsing 10 MB of text still takes a while (pass EF)
        parsed = loads(raw) if len(raw) < _PARSED_AT_ONCE else await asyncio.to_thread(loads, raw)
        body = DocumentText.model_validate(parsed)
    except RecursionError as exc:
        raise ProblemError(422, "invalid document body: nested too deeply") from exc
    except (ValueError, ValidationError) as exc:
        raise ProblemError(422, f"invalid document body: {_first_error(exc)}") from exc
    data = body.text.encode("utf-8", "surrogatepass")
    if len(data) > limit:
        raise ProblemError(413, f"the document is larger than {limit} bytes")
    return data, _source(body.source), body.media_type


async def _read_upload(request: Request, limit: int) -> tuple[bytes, str, str | None]:
    try:
        form = await request.form(max_files=1, max_fields=4)
    except MultiPartException as exc:
        raise ProblemError(422, f"invalid multipart body: {exc.message}") from exc
    except HTTPException as exc:  # Starlette's own answer to a MultiPartException: a 400
        raise ProblemError(422, f"invalid multipart body: {exc.detail}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ProblemError(  # a part cut off (no closing boundary) is no field at all
                422,
                "the multipart body has no complete file field named 'file' "
                "(a part without its closing boundary is not read)",
            )
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise ProblemError(413, f"the document is larger than {limit} bytes")
        named = form.get("source")
        if isinstance(named, str):
            # As the JSON body's source is refused (pass EY: cut to 300 and stored; pass FA:
            # a NUL stored as a space); a file's own name is a name the client did not
            # choose to send, and is shortened.
            if len(named) > SOURCE_CHARS:
                raise ProblemError(422, f"source: at most {SOURCE_CHARS} characters")
            try:
                storable_text(named)
            except ValueError as exc:
                raise ProblemError(422, f"source: {exc}") from exc
        source = named if isinstance(named, str) and named.strip() else upload.filename or ""
        return data, _source(source or "upload"), upload.content_type
    finally:
        await form.close()


def _source(name: str) -> str:
    """A source name as passages show it: one clean line, at most 300 characters."""
    cleaned = clean_line(name, SOURCE_CHARS)[:SOURCE_CHARS]
    if not cleaned:
        raise ProblemError(422, "the document's source name is empty")
    return cleaned


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        return f"{where}: {error['msg']}"
    return str(exc)
