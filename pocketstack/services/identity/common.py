"""Helpers every Keystone resource module shares: body checks, links, lookups, query flags.

Keystone validates request bodies with JSON schema; ``require_*`` below give the same
answers (400 with the field named) without a schema per tiny resource.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.orm import Session

from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.identity.models import Group, Project, Role, User

T = TypeVar("T")

NAME_MAX = {"project": 64, "domain": 64, "group": 64, "user": 255, "role": 255}


def body_object(body: Any, key: str) -> dict[str, Any]:
    """``body[key]`` as a dict, or a 400 naming what is missing."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    value = body.get(key)
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid input for field '{key}': is a required property and must "
                         "be an object.")
    return value


def opt_str(data: dict[str, Any], field: str, *, prefix: str, max_len: int | None = None,
            nullable: bool = True) -> str | None:
    value = data.get(field)
    if value is None:
        if field in data and not nullable:
            raise BadRequest(f"Invalid input for field '{prefix}.{field}': None is not of "
                             "type 'string'")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Invalid input for field '{prefix}.{field}': "
                         f"{value!r} is not of type 'string'")
    if max_len is not None and len(value) > max_len:
        raise BadRequest(f"Invalid input for field '{prefix}.{field}': is longer than "
                         f"{max_len} characters")
    return value


def req_name(data: dict[str, Any], kind: str) -> str:
    name = data.get("name")
    if not isinstance(name, str):
        raise BadRequest(f"Invalid input for field '{kind}.name': is a required property "
                         "and must be a string")
    limit = NAME_MAX.get(kind, 255)
    if not name.strip():
        raise BadRequest(f"Invalid input for field '{kind}.name': must not be empty")
    if len(name) > limit:
        raise BadRequest(f"Invalid input for field '{kind}.name': is longer than {limit} "
                         "characters")
    return name


def opt_bool(data: dict[str, Any], field: str, *, prefix: str, default: bool | None = None
             ) -> bool | None:
    if field not in data:
        return default
    value = data[field]
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid input for field '{prefix}.{field}': "
                         f"{value!r} is not of type 'boolean'")
    return value


def query_bool(value: str | None) -> bool | None:
    """Keystone's query booleans: 0/false/no/off are false, anything else given is true."""
    if value is None:
        return None
    return value.strip().lower() not in ("0", "false", "no", "off", "f", "n")


def flag(query: Any, name: str) -> bool:
    """A flag present without a value (``?parents_as_list``) counts as true."""
    if name not in query:
        return False
    value = query.get(name)
    return True if value in ("", None) else bool(query_bool(value))


def links(base: str, path: str) -> dict[str, Any]:
    return {"self": f"{base}/v3/{path}"}


def collection(base: str, path: str, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: items, "links": {"self": f"{base}/v3/{path}", "previous": None, "next": None}}


def split_extra(data: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """Attributes Keystone keeps in ``extra`` (anything not a column), minus links/id."""
    return {k: v for k, v in data.items() if k not in known and k not in ("links", "id")}


def merge_extra(row: Any, data: dict[str, Any], known: set[str]) -> None:
    """On update, add the body's non-column attributes to the row's ``extra``."""
    extra = split_extra(data, known)
    if extra:
        row.extra = {**(row.extra or {}), **extra}


def get_row(s: Session, model: type[T], row_id: Any, noun: str) -> T:
    """The ``model`` row with this id, or Keystone's 404 "Could not find <noun>: <id>."."""
    row = s.get(model, row_id) if isinstance(row_id, str) else None
    if row is None:
        raise NotFound(f"Could not find {noun}: {row_id}.")
    return row


def get_domain(s: Session, domain_id: str) -> Project:
    dom = s.get(Project, domain_id) if isinstance(domain_id, str) else None
    if dom is None or not dom.is_domain:
        raise NotFound(f"Could not find domain: {domain_id}.")
    return dom


def get_project(s: Session, project_id: str) -> Project:
    proj = s.get(Project, project_id) if isinstance(project_id, str) else None
    if proj is None or proj.is_domain:
        raise NotFound(f"Could not find project: {project_id}.")
    return proj


def get_project_or_domain(s: Session, project_id: str) -> Project:
    return get_row(s, Project, project_id, "project")


def get_user(s: Session, user_id: str) -> User:
    return get_row(s, User, user_id, "user")


def get_group(s: Session, group_id: str) -> Group:
    return get_row(s, Group, group_id, "group")


def get_role(s: Session, role_id: str) -> Role:
    return get_row(s, Role, role_id, "role")


def reject_nul(value: Any, where: str = "request") -> None:
    """PostgreSQL cannot store or compare strings holding NUL; answer 400 before the DB."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest(f"Invalid input in the {where}: NUL characters are not allowed.")
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key, where)
            reject_nul(item, where)
    elif isinstance(value, list):
        for item in value:
            reject_nul(item, where)
