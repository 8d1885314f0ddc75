"""Metadata definitions (glance metadefs): namespaces and their objects, properties, tags
and resource-type associations (glance/api/v2/metadef_*.py).

Public namespaces are visible to everyone, private ones to their owner; only admins change
them (glance's default policy). A protected namespace cannot be deleted.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import isotime, utcnow
from pocketstack.errors import BadRequest, Conflict, Forbidden, NotFound
from pocketstack.services.image.models import MetadefNamespace, MetadefResourceType

if TYPE_CHECKING:
    from pocketstack.services.image.service import ImageService

# The resource types glance ships definitions for (etc/metadefs).
RESOURCE_TYPES = ("OS::Glance::Image", "OS::Cinder::Volume", "OS::Nova::Flavor",
                  "OS::Nova::Aggregate", "OS::Nova::Server", "OS::Trove::Instance",
                  "OS::Cinder::Volumesnapshot", "OS::Glance::Snapshot")
NS_FIELDS = ("display_name", "description", "visibility", "protected")
RESERVED_FIELDS = ("created_at", "updated_at", "schema", "self")


def _now() -> str:
    return isotime(utcnow()) or ""


def _view(row: MetadefNamespace, *, full: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "namespace": row.namespace, "visibility": row.visibility,
        "protected": row.protected, "owner": row.owner,
        "created_at": isotime(row.created_at),
        "updated_at": isotime(row.updated_at or row.created_at),
        "self": f"/v2/metadefs/namespaces/{row.namespace}",
        "schema": "/v2/schemas/metadefs/namespace",
    }
    if row.display_name is not None:
        body["display_name"] = row.display_name
    if row.description is not None:
        body["description"] = row.description
    if row.resource_types:
        body["resource_type_associations"] = copy.deepcopy(row.resource_types)
    if full:
        if row.properties:
            body["properties"] = copy.deepcopy(row.properties)
        if row.objects:
            body["objects"] = [copy.deepcopy(o) for o in row.objects.values()]
        if row.tags:
            body["tags"] = [{"name": t["name"]} for t in row.tags.values()]
    return body


def _visible(ctx: RequestContext):  # noqa: ANN202
    if ctx.is_admin:
        return None
    return or_(MetadefNamespace.visibility == "public",
               MetadefNamespace.owner == ctx.project_id)


def _load(s: Any, ctx: RequestContext, namespace: str) -> MetadefNamespace:
    query = select(MetadefNamespace).where(MetadefNamespace.namespace == namespace)
    cond = _visible(ctx)
    if cond is not None:
        query = query.where(cond)
    row = s.scalars(query).first()
    if row is None:
        raise NotFound(f"Metadata definition namespace={namespace} was not found.")
    return row


def _modify(ctx: RequestContext) -> None:
    policy.enforce(ctx, "image:modify_metadef", {"project_id": ctx.project_id})


def _read(ctx: RequestContext) -> None:
    policy.enforce(ctx, "image:get_metadef", {"project_id": ctx.project_id})


def _check_ns_body(body: Any, *, create: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("Body expected in request.")
    name = body.get("namespace")
    if create or "namespace" in body:
        if not isinstance(name, str) or not name or len(name) > 80:
            raise BadRequest("Invalid input for field 'namespace': a string of 1 to 80 "
                             "characters is required")
    if "visibility" in body and body["visibility"] not in ("public", "private"):
        raise BadRequest(f"Invalid visibility: {body['visibility']}")
    if "protected" in body and not isinstance(body["protected"], bool):
        raise BadRequest("Invalid input for field 'protected': a boolean is required")
    for key in ("display_name", "description"):
        if key in body and body[key] is not None and not isinstance(body[key], str):
            raise BadRequest(f"Invalid input for field '{key}': a string is required")
    return body


def _property_doc(name: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("Body expected in request.")
    if not isinstance(body.get("title"), str) or not isinstance(body.get("type"), str):
        raise BadRequest("A property needs a 'title' and a 'type'.")
    if body["type"] not in ("array", "boolean", "integer", "number", "object", "string"):
        raise BadRequest(f"Invalid property type {body['type']!r}.")
    doc = {k: v for k, v in body.items() if k not in RESERVED_FIELDS}
    doc["name"] = name
    return doc


# -- resource types ---------------------------------------------------------------------------

def list_resource_types(svc: "ImageService", ctx: RequestContext) -> dict[str, Any]:
    _read(ctx)
    stamp = "2014-08-28T17:13:06Z"
    out = [{"name": n, "created_at": stamp, "updated_at": stamp} for n in RESOURCE_TYPES]
    with svc.db.read() as s:
        for row in s.scalars(select(MetadefResourceType).order_by(
                MetadefResourceType.created_at, MetadefResourceType.name)):
            when = isotime(row.created_at)
            out.append({"name": row.name, "created_at": when, "updated_at": when})
    return {"resource_types": out}


def _association(s: Any, assoc: Any) -> dict[str, Any]:
    """A resource-type association; a type glance does not know yet is created, as glance
    does (metadef_resource_types.create adds the type before associating it)."""
    if not isinstance(assoc, dict) or not isinstance(assoc.get("name"), str) or \
            not 0 < len(assoc["name"]) <= 80:
        raise BadRequest("Invalid input for field 'name': a resource type name of 1 to 80 "
                         "characters is required")
    for key in ("prefix", "properties_target"):
        if assoc.get(key) is not None and (not isinstance(assoc[key], str) or
                                           len(assoc[key]) > 80):
            raise BadRequest(f"Invalid input for field '{key}': a string of at most 80 "
                             "characters")
    name = assoc["name"]
    if name not in RESOURCE_TYPES and s.get(MetadefResourceType, name) is None:
        s.add(MetadefResourceType(name=name))
    return {"name": name, "prefix": assoc.get("prefix"),
            "properties_target": assoc.get("properties_target"),
            "created_at": _now(), "updated_at": _now()}


# -- namespaces -----------------------------------------------------------------------------

def list_namespaces(svc: "ImageService", ctx: RequestContext, query: Any) -> dict[str, Any]:
    _read(ctx)
    with svc.db.read() as s:
        stmt = select(MetadefNamespace).order_by(MetadefNamespace.namespace)
        cond = _visible(ctx)
        if cond is not None:
            stmt = stmt.where(cond)
        if query.get("visibility"):
            stmt = stmt.where(MetadefNamespace.visibility == query["visibility"])
        rows = list(s.scalars(stmt))
        rt = query.get("resource_types")
        if rt:
            wanted = set(rt.split(","))
            rows = [r for r in rows if wanted & {a["name"] for a in r.resource_types or []}]
        return {"namespaces": [_view(r, full=False) for r in rows],
                "first": "/v2/metadefs/namespaces", "schema": "/v2/schemas/metadefs/namespaces"}


def create_namespace(svc: "ImageService", ctx: RequestContext, body: Any) -> dict[str, Any]:
    _modify(ctx)
    body = _check_ns_body(body, create=True)
    with svc.db.write() as s:
        if s.get(MetadefNamespace, body["namespace"]) is not None:
            raise Conflict(f"Metadata definition namespace={body['namespace']} already exists.")
        row = MetadefNamespace(namespace=body["namespace"], display_name=body.get("display_name"),
                               description=body.get("description"),
                               visibility=body.get("visibility") or "private",
                               protected=bool(body.get("protected", False)),
                               owner=body.get("owner") or ctx.project_id,
                               resource_types=[], properties={}, objects={}, tags={})
        for assoc in body.get("resource_type_associations") or []:
            row.resource_types = [*row.resource_types, _association(s, assoc)]
        for name, prop in (body.get("properties") or {}).items():
            row.properties = {**row.properties, name: _property_doc(name, prop)}
        for obj in body.get("objects") or []:
            if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
                raise BadRequest("Invalid metadef object.")
            row.objects = {**row.objects, obj["name"]: _object_doc(obj)}
        for tag in body.get("tags") or []:
            if not isinstance(tag, dict) or not isinstance(tag.get("name"), str):
                raise BadRequest("Invalid metadef tag.")
            row.tags = {**row.tags, tag["name"]: _tag_doc(tag["name"])}
        s.add(row)
        s.flush()
        return _view(row)


def show_namespace(svc: "ImageService", ctx: RequestContext, namespace: str) -> dict[str, Any]:
    _read(ctx)
    with svc.db.read() as s:
        return _view(_load(s, ctx, namespace))


def update_namespace(svc: "ImageService", ctx: RequestContext, namespace: str,
                     body: Any) -> dict[str, Any]:
    _modify(ctx)
    body = _check_ns_body(body, create=False)
    with svc.db.write() as s:
        row = _load(s, ctx, namespace)
        new_name = body.get("namespace", namespace)
        if new_name != namespace:
            if s.get(MetadefNamespace, new_name) is not None:
                raise Conflict(f"Metadata definition namespace={new_name} already exists.")
            clone = MetadefNamespace(namespace=new_name, owner=row.owner,
                                     display_name=row.display_name,
                                     description=row.description, visibility=row.visibility,
                                     protected=row.protected, resource_types=row.resource_types,
                                     properties=row.properties, objects=row.objects,
                                     tags=row.tags, created_at=row.created_at)
            s.delete(row)
            s.flush()
            s.add(clone)
            row = clone
        for key in NS_FIELDS:
            if key in body:
                setattr(row, key, body[key])
        row.updated_at = utcnow()
        s.flush()
        return _view(row)


def delete_namespace(svc: "ImageService", ctx: RequestContext, namespace: str) -> None:
    _modify(ctx)
    with svc.db.write() as s:
        row = _load(s, ctx, namespace)
        if row.protected:
            raise Forbidden(f"Namespace {namespace} is protected and cannot be deleted.")
        s.delete(row)


# -- contents: objects, properties, tags, resource types ---------------------------------

def _object_doc(body: dict[str, Any], created: str | None = None) -> dict[str, Any]:
    doc = {k: v for k, v in body.items() if k not in RESERVED_FIELDS}
    if "required" in doc and not isinstance(doc["required"], list):
        raise BadRequest("'required' must be a list of property names.")
    props = doc.get("properties") or {}
    if not isinstance(props, dict):
        raise BadRequest("'properties' must be an object.")
    doc["properties"] = {n: _property_doc(n, p) for n, p in props.items()}
    doc.setdefault("required", [])
    doc["created_at"] = created or _now()
    doc["updated_at"] = _now()
    return doc


def _tag_doc(name: str, created: str | None = None) -> dict[str, Any]:
    if not name or len(name) > 255:
        raise BadRequest("A tag name must be 1 to 255 characters.")
    return {"name": name, "created_at": created or _now(), "updated_at": _now()}


def _item(doc: dict[str, Any], namespace: str, kind: str, name: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    if kind == "objects":
        out["self"] = f"/v2/metadefs/namespaces/{namespace}/objects/{name}"
        out["schema"] = "v2/schemas/metadefs/object"
    return out


def list_items(svc: "ImageService", ctx: RequestContext, namespace: str, kind: str
               ) -> dict[str, Any]:
    _read(ctx)
    with svc.db.read() as s:
        row = _load(s, ctx, namespace)
        if kind == "properties":
            return {"properties": copy.deepcopy(row.properties)}
        if kind == "resource_types":
            return {"resource_type_associations": copy.deepcopy(row.resource_types)}
        docs = getattr(row, kind)
        return {kind: [_item(d, namespace, kind, n) for n, d in docs.items()],
                "schema": f"v2/schemas/metadefs/{kind}"}


def show_item(svc: "ImageService", ctx: RequestContext, namespace: str, kind: str,
              name: str) -> dict[str, Any]:
    _read(ctx)
    with svc.db.read() as s:
        row = _load(s, ctx, namespace)
        doc = getattr(row, kind).get(name)
        if doc is None:
            raise NotFound(f"Metadata definition {kind[:-1]} {name} was not found in "
                           f"namespace={namespace}.")
        return _item(doc, namespace, kind, name)


def create_item(svc: "ImageService", ctx: RequestContext, namespace: str, kind: str,
                body: Any, name: str | None = None) -> dict[str, Any]:
    _modify(ctx)
    if kind != "tags" or name is None:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) \
                or not body["name"]:
            raise BadRequest("Invalid input for field 'name': is a required property")
        name = body["name"]
    with svc.db.write() as s:
        row = _load(s, ctx, namespace)
        docs = dict(getattr(row, kind))
        if name in docs:
            raise Conflict(f"A metadata definition {kind[:-1]} with name={name} already "
                           f"exists in namespace={namespace}.")
        if kind == "objects":
            doc = _object_doc(body)
        elif kind == "properties":
            doc = _property_doc(name, body)
        else:
            doc = _tag_doc(name)
        docs[name] = doc
        setattr(row, kind, docs)
        row.updated_at = utcnow()
        return _item(doc, namespace, kind, name)


def update_item(svc: "ImageService", ctx: RequestContext, namespace: str, kind: str,
                name: str, body: Any) -> dict[str, Any]:
    _modify(ctx)
    if not isinstance(body, dict):
        raise BadRequest("Body expected in request.")
    new_name = body.get("name", name)
    if not isinstance(new_name, str) or not new_name:
        raise BadRequest("Invalid input for field 'name'")
    with svc.db.write() as s:
        row = _load(s, ctx, namespace)
        docs = dict(getattr(row, kind))
        old = docs.get(name)
        if old is None:
            raise NotFound(f"Metadata definition {kind[:-1]} {name} was not found in "
                           f"namespace={namespace}.")
        if new_name != name and new_name in docs:
            raise Conflict(f"A metadata definition {kind[:-1]} with name={new_name} already "
                           f"exists in namespace={namespace}.")
        if kind == "objects":
            doc = _object_doc({**body, "name": new_name}, old.get("created_at"))
        elif kind == "properties":
            doc = _property_doc(new_name, body)
        else:
            doc = _tag_doc(new_name, old.get("created_at"))
        del docs[name]
        docs[new_name] = doc
        setattr(row, kind, docs)
        row.updated_at = utcnow()
        return _item(doc, namespace, kind, new_name)


def delete_item(svc: "ImageService", ctx: RequestContext, namespace: str, kind: str,
                name: str) -> None:
    _modify(ctx)
    with svc.db.write() as s:
        row = _load(s, ctx, namespace)
        if kind == "resource_types":
            remaining = [a for a in row.resource_types if a["name"] != name]
            if len(remaining) == len(row.resource_types):
                raise NotFound(f"Resource type {name} is not associated with "
                               f"namespace={namespace}.")
            row.resource_types = remaining
        else:
            docs = dict(getattr(row, kind))
            if name not in docs:
                raise NotFound(f"Metadata definition {kind[:-1]} {name} was not found in "
                               f"namespace={namespace}.")
            del docs[name]
            setattr(row, kind, docs)
        row.updated_at = utcnow()


def replace_tags(svc: "ImageService", ctx: RequestContext, namespace: str, body: Any,
                 append: bool = False) -> dict[str, Any]:
    """POST .../tags with {"tags": [...]}: the namespace's tags become exactly these, or,
    with ``X-Openstack-Append: true``, these are added to those it has (a name it has
    already is a 409, as glance's duplicate entry)."""
    _modify(ctx)
    if not isinstance(body, dict) or not isinstance(body.get("tags"), list):
        raise BadRequest("Invalid input for field 'tags': a list is required")
    names = []
    for tag in body["tags"]:
        if not isinstance(tag, dict) or not isinstance(tag.get("name"), str):
            raise BadRequest("Each tag needs a 'name'.")
        names.append(tag["name"])
    if len(set(names)) != len(names):
        raise Conflict("Duplicate tag names in the request.")
    with svc.db.write() as s:
        row = _load(s, ctx, namespace)
        current = dict(row.tags) if append else {}
        for n in names:
            if n in current:
                raise Conflict(f"A metadata tag with name={n} already exists in "
                               f"namespace={namespace}.")
            current[n] = _tag_doc(n)
        row.tags = current
        row.updated_at = utcnow()
        return {"tags": [{"name": n} for n in names]}


def clear_tags(svc: "ImageService", ctx: RequestContext, namespace: str) -> None:
    _modify(ctx)
    with svc.db.write() as s:
        row = _load(s, ctx, namespace)
        row.tags = {}
        row.updated_at = utcnow()


def associate(svc: "ImageService", ctx: RequestContext, namespace: str, body: Any
              ) -> dict[str, Any]:
    _modify(ctx)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise BadRequest("Invalid input for field 'name': is a required property")
    with svc.db.write() as s:
        row = _load(s, ctx, namespace)
        if any(a["name"] == body["name"] for a in row.resource_types):
            raise Conflict(f"Resource type {body['name']} is already associated with "
                           f"namespace={namespace}.")
        assoc = _association(s, body)
        row.resource_types = [*row.resource_types, assoc]
        row.updated_at = utcnow()
        return assoc
