"""Image members: sharing an image with other projects (glance/api/v2/image_members.py).

The owner adds and removes members; a member project accepts or rejects (and may change
its mind); only ``shared`` images have members. A member sees its own membership only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import BadRequest, Conflict, Forbidden, NotFound
from pocketstack.services.image import access, views
from pocketstack.services.image.images import over_limit
from pocketstack.services.image.models import Image, ImageMember

if TYPE_CHECKING:
    from pocketstack.services.image.service import ImageService

MEMBER_QUOTA = 128  # glance image_member_quota
STATUSES = ("pending", "accepted", "rejected")


def _shared(image: Image) -> None:
    if image.visibility != "shared":
        raise Forbidden(f"Only shared images have members.")


def _is_owner(ctx: RequestContext, image: Image) -> bool:
    return ctx.is_admin or (ctx.project_id is not None and ctx.project_id == image.owner)


def add(svc: "ImageService", ctx: RequestContext, image_id: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("member"), str) \
            or not body["member"]:
        raise BadRequest("Member to be added not specified")
    if set(body) - {"member"}:
        raise BadRequest("Additional properties are not allowed in a member.")
    member = body["member"]
    if len(member) > 255:
        raise BadRequest("Member id is longer than 255 characters.")
    with svc.db.write() as s:
        image = access.load(s, ctx, image_id)
        access.enforce(ctx, "add_member", image)
        _shared(image)
        existing = s.scalars(select(ImageMember).where(ImageMember.image_id == image.id,
                                                       ImageMember.member == member)).first()
        if existing is not None:
            raise Conflict(f"Member {member} already associated with image {image_id}.")
        count = s.scalar(select(func.count()).select_from(ImageMember)
                         .where(ImageMember.image_id == image.id)) or 0
        if count + 1 > MEMBER_QUOTA:
            raise over_limit(f"Maximum number of image members exceeded ({MEMBER_QUOTA}).")
        row = ImageMember(image_id=image.id, member=member, status="pending")
        s.add(row)
        s.flush()
        return views.member(row)


def list_members(svc: "ImageService", ctx: RequestContext, image_id: str) -> dict[str, Any]:
    with svc.db.read() as s:
        image = access.load(s, ctx, image_id)
        policy.enforce(ctx, "image:get_members", {"project_id": ctx.project_id})
        _shared(image)
        query = select(ImageMember).where(ImageMember.image_id == image.id)
        if not _is_owner(ctx, image):
            query = query.where(ImageMember.member == ctx.project_id)
        rows = s.scalars(query.order_by(ImageMember.created_at, ImageMember.id)).all()
        return {"members": [views.member(r) for r in rows], "schema": "/v2/schemas/members"}


def _load_member(s: Any, ctx: RequestContext, image: Image, member_id: str) -> ImageMember:
    row = s.scalars(select(ImageMember).where(ImageMember.image_id == image.id,
                                              ImageMember.member == member_id)).first()
    # A member may only see its own membership; anything else looks like "not there".
    if row is None or (not _is_owner(ctx, image) and member_id != ctx.project_id):
        raise NotFound(f"{member_id} is not a member of image {image.id}")
    return row


def show(svc: "ImageService", ctx: RequestContext, image_id: str, member_id: str
         ) -> dict[str, Any]:
    with svc.db.read() as s:
        image = access.load(s, ctx, image_id)
        policy.enforce(ctx, "image:get_member", {"project_id": ctx.project_id})
        _shared(image)
        return views.member(_load_member(s, ctx, image, member_id))


def update(svc: "ImageService", ctx: RequestContext, image_id: str, member_id: str,
           body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or "status" not in body:
        raise BadRequest("Status not specified")
    status = body["status"]
    if status not in STATUSES:
        raise BadRequest(f"Invalid status: {status}")
    with svc.db.write() as s:
        image = access.load(s, ctx, image_id)
        _shared(image)
        row = _load_member(s, ctx, image, member_id)
        # Only the member project itself decides (glance: even the owner may not).
        if ctx.project_id != member_id:
            raise Forbidden("You are not permitted to modify 'status' on this image member.")
        policy.enforce(ctx, "image:modify_member", {"project_id": member_id})
        row.status = status
        row.updated_at = utcnow()
        s.flush()
        return views.member(row)


def remove(svc: "ImageService", ctx: RequestContext, image_id: str, member_id: str) -> None:
    with svc.db.write() as s:
        image = access.load(s, ctx, image_id)
        _shared(image)
        row = _load_member(s, ctx, image, member_id)
        if not _is_owner(ctx, image):
            raise Forbidden("You are not permitted to remove members of this image.")
        access.enforce(ctx, "delete_member", image)
        s.delete(row)
