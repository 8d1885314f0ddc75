"""S3 multipart upload rows: an upload and its parts (part blobs owned by the upload)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, select

from pocketstack.drivers.objects.base import BlobInfo
from pocketstack.errors import NotFound
from pocketstack.services.object_store.models import S3Upload, S3UploadPart, SwiftContainer


class UploadsMixin:
    """Mixed into ObjectStore."""

    db: Any
    driver: Any

    def create_upload(self, upload: S3Upload) -> None:
        with self.db.write() as s:
            if s.get(SwiftContainer, (upload.account, upload.container)) is None:
                raise NotFound("The specified bucket does not exist", kind="NoSuchBucket")
            s.add(upload)

    def upload(self, account: str, upload_id: str) -> S3Upload:
        with self.db.read() as s:
            row = s.get(S3Upload, upload_id)
            if row is None or row.account != account:
                raise NotFound("The specified upload does not exist.", kind="NoSuchUpload")
            s.expunge(row)
            return row

    def put_part(self, upload_id: str, number: int, blob: BlobInfo) -> None:
        garbage = None
        try:
            with self.db.write() as s:
                if s.get(S3Upload, upload_id) is None:
                    raise NotFound("The specified upload does not exist.", kind="NoSuchUpload")
                old = s.get(S3UploadPart, (upload_id, number))
                if old is not None:
                    garbage = old.file_id
                    s.delete(old)
                    s.flush()
                s.add(S3UploadPart(upload_id=upload_id, number=number, file_id=blob.file_id,
                                   size=blob.size, etag=blob.md5, timestamp=time.time()))
        except BaseException:
            self.driver.delete(blob.file_id)
            raise
        if garbage:
            self.driver.delete(garbage)

    def parts(self, upload_id: str) -> list[S3UploadPart]:
        with self.db.read() as s:
            rows = s.scalars(select(S3UploadPart).where(S3UploadPart.upload_id == upload_id)
                             .order_by(S3UploadPart.number)).all()
            for r in rows:
                s.expunge(r)
            return list(rows)

    def list_uploads(self, account: str, container: str) -> list[S3Upload]:
        with self.db.read() as s:
            rows = s.scalars(select(S3Upload).where(S3Upload.account == account,
                                                    S3Upload.container == container)
                             .order_by(S3Upload.name, S3Upload.created)).all()
            for r in rows:
                s.expunge(r)
            return list(rows)

    def finish_upload(self, upload_id: str) -> None:
        """Forget an upload and delete its part blobs (a completed upload's object owns
        its own assembled blob)."""
        with self.db.write() as s:
            files = s.scalars(select(S3UploadPart.file_id)
                              .where(S3UploadPart.upload_id == upload_id)).all()
            s.execute(delete(S3UploadPart).where(S3UploadPart.upload_id == upload_id))
            s.execute(delete(S3Upload).where(S3Upload.id == upload_id))
        for file_id in files:
            self.driver.delete(file_id)
