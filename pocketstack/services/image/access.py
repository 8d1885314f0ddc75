"""Who sees which image: glance's visibility and membership rules as SQL.

- public and community images are visible to everyone (community ones are only *listed*
  to others when asked for with ``visibility=community``);
- private images to their owner;
- shared images to their owner and to every project that is a member (any status);
- a cloud admin sees everything.
"""

from __future__ import annotations

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import NotFound
from pocketstack.services.image.models import Image, ImageMember


def _member_of(project_id: str | None, statuses: tuple[str, ...] | None = None
               ) -> ColumnElement[bool]:
    cond = and_(ImageMember.image_id == Image.id, ImageMember.member == project_id)
    if statuses:
        cond = and_(cond, ImageMember.status.in_(statuses))
    return exists(select(ImageMember.id).where(cond))


def visible(ctx: RequestContext) -> ColumnElement[bool] | None:
    """The condition for images ``ctx`` may GET; None means all."""
    if ctx.is_admin:
        return None
    project = ctx.project_id
    return or_(Image.visibility.in_(("public", "community")),
               Image.owner == project,
               and_(Image.visibility == "shared", _member_of(project)))


def listed(ctx: RequestContext, visibility: str | None, member_status: str
           ) -> ColumnElement[bool] | None:
    """The condition for GET /v2/images given its visibility and member_status filters."""
    project = ctx.project_id
    statuses = None if member_status == "all" else (member_status,)
    shared_to_me = and_(Image.visibility == "shared", _member_of(project, statuses))
    if visibility is None or visibility == "all":
        if ctx.is_admin:
            return None
        base = or_(Image.visibility == "public", Image.owner == project, shared_to_me)
        if visibility == "all":
            base = or_(base, Image.visibility == "community")
        return base
    cond: ColumnElement[bool] = Image.visibility == visibility
    if ctx.is_admin:
        if visibility == "shared" and member_status != "all" and project:
            # An admin asking for shared images with a member_status means "shared with me".
            return and_(cond, or_(Image.owner == project, _member_of(project, statuses)))
        return cond
    if visibility == "private":
        return and_(cond, Image.owner == project)
    if visibility == "shared":
        return and_(cond, or_(Image.owner == project, _member_of(project, statuses)))
    return cond  # public, community


def load(s: Session, ctx: RequestContext, image_id: str, *, for_update: bool = False) -> Image:
    """The image if ``ctx`` may see it, else NotFound (never reveal that it exists)."""
    query = select(Image).where(Image.id == image_id)
    cond = visible(ctx)
    if cond is not None:
        query = query.where(cond)
    if for_update:
        query = query.with_for_update()
    image = s.scalars(query).first()
    if image is None:
        raise NotFound(f"No image found with ID {image_id}")
    return image


def enforce(ctx: RequestContext, action: str, image: Image) -> None:
    policy.enforce(ctx, f"image:{action}", {"project_id": image.owner})
