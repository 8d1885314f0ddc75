"""The base every Neutron resource manager shares: list/show/tags plumbing and visibility.

A manager implements ``rows`` (visible rows, optionally pre-filtered in SQL), ``render``
(rows -> bodies, batching any extra lookups) and its own create/update/delete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.network.common import bump, project_fields, select

if TYPE_CHECKING:
    from pocketstack.services.network.service import NetworkService

MAX_TAGS = 50


class Resource:
    singular = ""
    plural = ""
    model: Any = None
    keys: set[str] = set()
    not_found_kind = "NotFound"
    label = "Resource"
    # list order; the default is creation order, some tables have no created_at
    ordering: tuple[str, ...] = ("created_at", "id")

    def __init__(self, svc: "NetworkService") -> None:
        self.svc = svc
        self.db = svc.db

    # -- to implement ---------------------------------------------------------------------
    def rows(self, s: Session, ctx: RequestContext, query: Any) -> list[Any]:
        stmt = s.query(self.model)
        if not ctx.is_admin:
            stmt = stmt.filter(self.model.project_id == ctx.project_id)
        return stmt.order_by(*(getattr(self.model, c) for c in self.ordering)).all()

    def render(self, s: Session, ctx: RequestContext, rows: list[Any]) -> list[dict]:
        raise NotImplementedError

    def visible(self, s: Session, ctx: RequestContext, row: Any) -> bool:
        return ctx.is_admin or row.project_id == ctx.project_id

    special_filters: dict[str, Any] = {}

    # -- shared behaviour -----------------------------------------------------------------
    def not_found(self, id_: str) -> NotFound:
        return NotFound(f"{self.label} {id_} could not be found.", kind=self.not_found_kind)

    def load(self, s: Session, ctx: RequestContext, id_: str, *, lock: bool = False) -> Any:
        row = s.get(self.model, id_)
        if row is None or not self.visible(s, ctx, row):
            raise self.not_found(id_)
        return row

    def owned(self, s: Session, ctx: RequestContext, id_: str, action: str) -> Any:
        """Load a row the caller may change: invisible is 404, visible-but-not-owned is 403."""
        row = self.load(s, ctx, id_)
        policy.enforce(ctx, f"network:{action}", {"project_id": row.project_id})
        return row

    def list(self, ctx: RequestContext, query: Any, url: str) -> dict[str, Any]:
        policy.enforce(ctx, f"network:get_{self.singular}", ctx.as_target())
        with self.db.read() as s:
            items = self.render(s, ctx, self.rows(s, ctx, query))
        return select(items, query, known=self.keys, url=url, collection=self.plural,
                      special=self.special_filters)

    def get(self, ctx: RequestContext, id_: str, fields: list[str] | None = None) -> dict:
        policy.enforce(ctx, f"network:get_{self.singular}", ctx.as_target())
        with self.db.read() as s:
            row = self.load(s, ctx, id_)
            item = self.render(s, ctx, [row])[0]
        return project_fields(item, fields or [])

    def show_one(self, s: Session, ctx: RequestContext, row: Any) -> dict:
        return self.render(s, ctx, [row])[0]

    # -- create, for managers that build a row with create_in(s, ctx, attrs) ---------------
    # (one transaction for a whole bulk request, so a bad item leaves nothing behind)
    def create(self, ctx: RequestContext, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self.create_in(s, ctx, attrs)
            body = self.show_one(s, ctx, row)
        self.svc.changed()
        return body

    def create_bulk(self, ctx: RequestContext, items: list[dict]) -> list[dict]:
        with self.db.write() as s:
            rows = [self.create_in(s, ctx, a) for a in items]
            bodies = [self.show_one(s, ctx, r) for r in rows]
        self.svc.changed()
        return bodies

    # -- tags (api-ref "Tag extension") ---------------------------------------------------
    def _tag_row(self, s: Session, ctx: RequestContext, id_: str) -> Any:
        row = self.load(s, ctx, id_)
        if not hasattr(row, "tags"):
            raise NotFound("This resource does not support tags.")
        policy.enforce(ctx, "network:update_tags", {"project_id": row.project_id})
        return row

    def get_tags(self, ctx: RequestContext, id_: str) -> list[str]:
        with self.db.read() as s:
            return list(self.load(s, ctx, id_).tags or [])

    def has_tag(self, ctx: RequestContext, id_: str, tag: str) -> bool:
        return tag in self.get_tags(ctx, id_)

    def set_tags(self, ctx: RequestContext, id_: str, tags: Any) -> list[str]:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise BadRequest("Invalid input for tags. Reason: 'tags' must be a list of "
                             "strings.", kind="HTTPBadRequest")
        for t in tags:
            _check_tag(t)
        if len(set(tags)) > MAX_TAGS:
            raise BadRequest(f"Too many tags; the limit is {MAX_TAGS}.",
                             kind="HTTPBadRequest")
        with self.db.write() as s:
            row = self._tag_row(s, ctx, id_)
            row.tags = sorted(set(tags))
            bump(row)
            return list(row.tags)

    def add_tag(self, ctx: RequestContext, id_: str, tag: str) -> None:
        _check_tag(tag)
        with self.db.write() as s:
            row = self._tag_row(s, ctx, id_)
            if tag not in (row.tags or []):
                if len(row.tags or []) >= MAX_TAGS:
                    raise BadRequest(f"Too many tags; the limit is {MAX_TAGS}.",
                                     kind="HTTPBadRequest")
                row.tags = sorted({*(row.tags or []), tag})
                bump(row)

    def remove_tag(self, ctx: RequestContext, id_: str, tag: str | None) -> None:
        with self.db.write() as s:
            row = self._tag_row(s, ctx, id_)
            if tag is None:
                row.tags = []
            else:
                if tag not in (row.tags or []):
                    raise NotFound(f"Tag {tag} could not be found for {self.singular} {id_}.",
                                   kind="TagNotFound")
                row.tags = [t for t in row.tags if t != tag]
            bump(row)


def _check_tag(tag: str) -> None:
    if not tag or len(tag) > 255 or "," in tag or "/" in tag:
        raise BadRequest(f"Invalid input for tags. Reason: '{tag}' is not a valid tag "
                         "(1 to 255 characters, no ',' or '/').", kind="HTTPBadRequest")


def admin_only(ctx: RequestContext, attrs: dict[str, Any], names: tuple[str, ...],
               action: str) -> None:
    for name in names:
        if name in attrs:
            policy.enforce(ctx, f"network:{action}:{name}", ctx.as_target())


def owner_for(ctx: RequestContext, attrs: dict[str, Any]) -> str:
    """The project a new resource belongs to: the caller's, or (admin only) another one."""
    project = attrs.pop("tenant_id", None)
    if project and project != ctx.project_id:
        policy.enforce(ctx, "network:create_for_other_project", {"project_id": project})
        return project
    return ctx.project_id or ""
