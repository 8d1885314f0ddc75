"""Render domain errors as each OpenStack project's fault body.

One function per style; the service spec names its style. Status codes and the Nova fault
keys come from ``pocketstack.errors``.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

import orjson
from starlette.responses import Response

from pocketstack.errors import PocketError, fault_name, http_title

Renderer = Callable[[PocketError], Response]


def _json(body: object, err: PocketError) -> Response:
    return Response(orjson.dumps(body), status_code=err.status,
                    media_type="application/json", headers=err.headers)


def keystone(err: PocketError) -> Response:
    # {"error": {"code": 404, "message": "...", "title": "Not Found"}}
    return _json({"error": {"code": err.status, "message": err.message,
                            "title": http_title(err.status)}}, err)


def nova(err: PocketError) -> Response:
    # {"itemNotFound": {"code": 404, "message": "..."}}  (Cinder uses the same shape)
    return _json({fault_name(err.status): {"code": err.status, "message": err.message}}, err)


def neutron(err: PocketError) -> Response:
    # {"NeutronError": {"type": "NetworkNotFound", "message": "...", "detail": ""}}
    return _json({"NeutronError": {"type": err.kind, "message": err.message, "detail": ""}}, err)


def heat(err: PocketError) -> Response:
    return _json({"code": err.status, "title": http_title(err.status),
                  "explanation": err.message,
                  "error": {"type": err.kind, "message": err.message, "traceback": None}}, err)


def plain(err: PocketError) -> Response:
    # Glance and Swift answer with a short text body (webob style).
    title = http_title(err.status)
    body = f"{err.status} {title}\n\n{err.message}\n\n"
    return Response(body, status_code=err.status, media_type="text/plain; charset=UTF-8",
                    headers=err.headers)


def swift(err: PocketError) -> Response:
    title = http_title(err.status)
    body = f"<html><h1>{escape(title)}</h1><p>{escape(err.message)}</p></html>"
    return Response(body, status_code=err.status, media_type="text/html; charset=UTF-8",
                    headers=err.headers)


def s3(err: PocketError) -> Response:
    code = err.kind if err.kind and err.kind[0].isupper() else http_title(err.status).replace(" ", "")
    rid = err.headers.get("x-amz-request-id")  # set by the S3 app (services/s3/routes.py)
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(err.message)}</Message>"
            + (f"<RequestId>{escape(rid)}</RequestId>" if rid else "") + "</Error>")
    return Response(body, status_code=err.status, media_type="application/xml",
                    headers=err.headers)


STYLES: dict[str, Renderer] = {
    "keystone": keystone,
    "nova": nova,
    "cinder": nova,
    "neutron": neutron,
    "heat": heat,
    "glance": plain,
    "plain": plain,
    "swift": swift,
    "s3": s3,
}


def render(err: PocketError, style: str) -> Response:
    return STYLES.get(style, keystone)(err)
