"""Media files and the collections that organise them."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, CheckConstraint, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import (
    Base,
    CreatedAt,
    Json,
    OrgScoped,
    SoftDelete,
    Str255,
    Str500,
    Timestamps,
    enum_column,
    json_column,
)

if TYPE_CHECKING:
    from models.contacts import Contact
    from models.events import Event
    from models.organizations import User

MEDIA_TYPES = ("image", "video", "document", "audio")
MEDIA_STATUSES = ("processing", "ready", "failed")
ACCESS_LEVELS = ("public", "private", "organization")
COLLECTION_TYPES = ("event_photos", "contact_media", "general")


class Media(OrgScoped, Timestamps, SoftDelete, Base):
    """A stored file, related to an event or a contact."""

    __tablename__ = "media"
    __audited__ = True
    __org_refs__ = {
        "uploaded_by": "users",
        "related_event": "events",
        "related_contact": "contacts",
    }

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            CheckConstraint("file_size IS NULL OR file_size >= 0", name="file_size"),
            Index(None, "organization_id", "related_event"),
            Index(None, "organization_id", "related_contact"),
        )

    uploaded_by: Mapped[uuid.UUID | None] = mapped_column()
    title: Mapped[Str255 | None]
    description: Mapped[str | None]
    file_name: Mapped[Str255]
    file_path: Mapped[Str500 | None]
    file_url: Mapped[Str500 | None]
    media_type: Mapped[str] = enum_column("media_type", *MEDIA_TYPES, nullable=False)
    mime_type: Mapped[Str255 | None]
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    metadata_: Mapped[Json] = json_column("metadata")
    status: Mapped[str] = enum_column(
        "status", *MEDIA_STATUSES, nullable=False, default="processing"
    )
    related_event: Mapped[uuid.UUID | None] = mapped_column()
    related_contact: Mapped[uuid.UUID | None] = mapped_column()
    access_level: Mapped[str] = enum_column(
        "access_level", *ACCESS_LEVELS, nullable=False, default="organization"
    )
    tags: Mapped[list[Any]] = json_column(array=True)

    uploader: Mapped[User | None] = relationship(foreign_keys=[uploaded_by])
    event: Mapped[Event | None] = relationship(foreign_keys=[related_event], viewonly=True)
    contact: Mapped[Contact | None] = relationship(foreign_keys=[related_contact], viewonly=True)
    collection_items: Mapped[list[MediaCollectionItem]] = relationship(
        back_populates="media", foreign_keys="MediaCollectionItem.media_id", viewonly=True
    )


class MediaCollection(OrgScoped, Timestamps, SoftDelete, Base):
    """An ordered set of media: an event's photos, a contact's files, ..."""

    __tablename__ = "media_collections"
    __audited__ = True
    __org_refs__ = {"created_by": "users"}

    created_by: Mapped[uuid.UUID | None] = mapped_column()
    name: Mapped[Str255]
    description: Mapped[str | None]
    collection_type: Mapped[str] = enum_column(
        "collection_type", *COLLECTION_TYPES, nullable=False, default="general"
    )
    settings: Mapped[Json] = json_column()

    creator: Mapped[User | None] = relationship(foreign_keys=[created_by])
    items: Mapped[list[MediaCollectionItem]] = relationship(
        back_populates="collection",
        foreign_keys="MediaCollectionItem.collection_id",
        order_by="MediaCollectionItem.sort_order",
        viewonly=True,
    )


class MediaCollectionItem(OrgScoped, CreatedAt, Base):
    """A media file's place in a collection.

    The ERD gives this table no ``organization_id``; it has one here so that a collection of
    one organization can never hold another organization's media (composite foreign keys) and
    so that row-level security covers it like every other tenant table.
    """

    __tablename__ = "media_collection_items"
    __audited__ = True
    __org_refs__ = {"collection_id": "media_collections", "media_id": "media"}
    __org_cascade__ = frozenset({"collection_id", "media_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("organization_id", "collection_id", "media_id"),)

    collection_id: Mapped[uuid.UUID] = mapped_column()
    media_id: Mapped[uuid.UUID] = mapped_column()
    sort_order: Mapped[int] = mapped_column(default=0, server_default="0")

    collection: Mapped[MediaCollection] = relationship(
        back_populates="items", foreign_keys=[collection_id]
    )
    media: Mapped[Media] = relationship(back_populates="collection_items", foreign_keys=[media_id])


__all__ = [
    "ACCESS_LEVELS",
    "COLLECTION_TYPES",
    "MEDIA_STATUSES",
    "MEDIA_TYPES",
    "Media",
    "MediaCollection",
    "MediaCollectionItem",
]
