"""Swift's bulk middleware (bulk delete, extract archive) and FormPost uploads."""

from __future__ import annotations

import io
import tarfile
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson
from starlette.responses import Response

from pocketstack.api.http import run
from pocketstack.errors import BadRequest, NotFound, PocketError
from pocketstack.services.object_store import auth
from pocketstack.services.object_store.names import check_container, check_object
from pocketstack.services.object_store.views import reply

if TYPE_CHECKING:
    from pocketstack.services.object_store.routes import SwiftRequest

MAX_DELETES = 10000
MAX_ARCHIVE = 1 << 30


def _result(req: "SwiftRequest", data: dict[str, Any]) -> Response:
    accept = req.headers.get("accept", "")
    if "json" in accept:
        return reply(200, body=orjson.dumps(data), content_type="application/json")
    if "xml" in accept:
        inner = "".join(f"<{k.lower().replace(' ', '_')}>{v}</{k.lower().replace(' ', '_')}>"
                        for k, v in data.items() if k != "Errors")
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<delete>{inner}</delete>'
        return reply(200, body=body.encode(), content_type="application/xml")
    lines = [f"{k}: {v if k != 'Errors' else ''}" for k, v in data.items()]
    for name, status in data.get("Errors", []):
        lines.append(f"{name}, {status}")
    return reply(200, body=("\n".join(lines) + "\n").encode(), content_type="text/plain")


async def bulk_delete(req: "SwiftRequest") -> Response:
    """POST ?bulk-delete: newline-separated, URL-encoded /container[/object] paths."""
    if not req.owner:
        raise auth.deny(req.ctx)
    body = b""
    async for chunk in req.request.stream():
        body += chunk
        if len(body) > MAX_DELETES * 1100:
            raise PocketError("Too many deletes requested", status=413)
    paths = [unquote(line.strip()) for line in body.decode("utf-8", "replace").splitlines()
             if line.strip()]
    if len(paths) > MAX_DELETES:
        raise PocketError("Too many deletes requested", status=413)
    deleted = missing = 0
    errors: list[list[str]] = []
    containers: list[tuple[str, str]] = []
    store = req.store
    for path in paths:
        container, _, name = path.lstrip("/").partition("/")
        try:
            check_container(container)
            if name:
                check_object(name)
                await run(store.delete, req.account, container, name)
                deleted += 1
            else:
                containers.append((path, container))
        except NotFound:
            missing += 1
        except PocketError as exc:
            errors.append([path, f"{exc.status} {exc.message}"])
    for path, container in containers:  # after their objects, as swift orders it
        try:
            await run(store.delete_container, req.account, container)
            deleted += 1
        except NotFound:
            missing += 1
        except PocketError as exc:
            errors.append([path, f"{exc.status} Conflict" if exc.status == 409 else
                           f"{exc.status} {exc.message}"])
    status = "400 Bad Request" if errors else "200 OK"
    return _result(req, {"Number Deleted": deleted, "Number Not Found": missing,
                         "Response Status": status, "Response Body": "", "Errors": errors})


async def extract_archive(req: "SwiftRequest") -> Response:
    """PUT ?extract-archive=tar|tar.gz|tar.bz2: each file becomes an object."""
    if not req.owner:
        raise auth.deny(req.ctx)
    fmt = req.query.get("extract-archive", "")
    modes = {"tar": "r:", "tar.gz": "r:gz", "tar.bz2": "r:bz2"}
    if fmt not in modes:
        raise BadRequest("Unsupported archive format")
    data = bytearray()
    async for chunk in req.request.stream():
        data += chunk
        if len(data) > MAX_ARCHIVE:
            raise PocketError("Archive too large", status=413)
    created, errors = await run(_extract, req, bytes(data), modes[fmt])
    status = "400 Bad Request" if errors else "201 Created"
    return _result(req, {"Number Files Created": created, "Response Status": status,
                         "Response Body": "", "Errors": errors})


def _extract(req: "SwiftRequest", data: bytes, mode: str) -> tuple[int, list[list[str]]]:
    store, driver = req.store, req.service.driver
    created, errors = 0, []
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode=mode)  # noqa: SIM115
    except (tarfile.TarError, EOFError, OSError):
        raise BadRequest("Invalid Tar File") from None
    with archive:
        for member in archive:
            if not member.isfile():
                continue
            path = member.name.lstrip("./")
            if req.container:
                container, name = req.container, path
                if req.obj:
                    name = req.obj.rstrip("/") + "/" + path
            else:
                container, _, name = path.partition("/")
            try:
                check_container(container)
                check_object(name)
                if store.find_container(req.account, container) is None:
                    store.put_container(req.account, container, {})
                fh = archive.extractfile(member)
                writer = driver.writer()
                try:
                    while fh is not None and (chunk := fh.read(1 << 20)):
                        writer.write(chunk)
                    blob = writer.commit()
                except BaseException:
                    writer.abort()
                    raise
                import mimetypes

                store.commit(req.account, container, name, blob,
                             content_type=mimetypes.guess_type(name)[0] or
                             "application/octet-stream", meta={})
                created += 1
            except PocketError as exc:
                errors.append([path, f"{exc.status} {exc.message}"])
    return created, errors


MAX_FORM = 256 * 1024 * 1024


def _parse_form(ctype: str, body: bytes) -> tuple[dict[str, str], list[tuple[str, str, bytes]]]:
    """multipart/form-data -> (fields, [(filename, content type, data)]) with the stdlib
    MIME parser (FormPost bodies are bounded by MAX_FORM)."""
    import email.parser
    import email.policy

    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise BadRequest("FormPost: invalid multipart/form-data body")
    fields: dict[str, str] = {}
    files: list[tuple[str, str, bytes]] = []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        data = part.get_payload(decode=True) or b""
        if filename is not None:
            files.append((filename, part.get_content_type(), data))
        elif name:
            fields[str(name)] = data.decode("utf-8", "replace")
    return fields, files


async def formpost(req: "SwiftRequest") -> Response:
    """POST multipart/form-data to /v1/AUTH_a/container[/prefix] signed with a TempURL key."""
    body = bytearray()
    async for chunk in req.request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise PocketError("FormPost: body too large", status=413)
    fields, files = await run(_parse_form, req.headers.get("content-type", ""), bytes(body))
    redirect = fields.get("redirect", "")
    max_size, max_count = fields.get("max_file_size", ""), fields.get("max_file_count", "")
    expires, signature = fields.get("expires", ""), fields.get("signature", "")
    if not expires.isdigit() or int(expires) < time.time():
        raise PocketError("FormPost: Form Expired", status=401, kind="Unauthorized")
    store = req.store
    acc = await run(store.account, req.account)
    crec = await run(store.find_container, req.account, req.container)
    if crec is None:
        raise NotFound("The resource could not be found.")
    keys = [acc.meta.get("X-Account-Meta-Temp-Url-Key"),
            acc.meta.get("X-Account-Meta-Temp-Url-Key-2"),
            crec.meta.get("X-Container-Meta-Temp-Url-Key"),
            crec.meta.get("X-Container-Meta-Temp-Url-Key-2")]
    paths = (req.full_path, req.v1_path())
    if not any(auth.formpost_signature_ok(k, p, redirect, max_size, max_count, expires,
                                          signature) for k in keys if k for p in paths):
        raise PocketError("FormPost: Invalid Signature", status=401, kind="Unauthorized")
    if not max_size.isdigit() or not max_count.isdigit():
        raise BadRequest("FormPost: invalid max_file_size or max_file_count")
    if len(files) > int(max_count):
        raise BadRequest("FormPost: max_file_count exceeded")
    prefix = req.obj or ""
    for filename, ctype, data in files:
        if not filename:
            continue
        if len(data) > int(max_size):
            raise BadRequest("FormPost: max_file_size exceeded")
        name = check_object(prefix + filename)
        blob = await req.service.blob_from_iter(iter([data]))
        await run(lambda b=blob, n=name, c=ctype: store.commit(
            req.account, req.container, n, b, content_type=c or "application/octet-stream",
            meta={}))
    if redirect:
        sep = "&" if "?" in redirect else "?"
        return reply(303, {"Location": f"{redirect}{sep}status=201&message="})
    return reply(201, body=b"<html><h1>Created</h1></html>")
