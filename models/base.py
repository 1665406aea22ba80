"""One declarative ``Base`` with a naming convention, shared column types and small mixins.

Mixins:

* :class:`OrgScoped` -- ``organization_id`` (not null, indexed) and a ``UNIQUE (organization_id, id)``
  so that other tables reference this one through composite foreign keys that include the
  organization: a row can never point at another organization's row.
* :class:`Timestamps` -- ``created_at`` and an automatically maintained ``updated_at``.
* :class:`SoftDelete` -- ``is_deleted`` and ``deleted_at``, set together by :meth:`soft_delete`
  and cleared together by :meth:`restore`.  Soft-deleted rows are hidden from ORM queries
  unless the statement asks with ``execution_options(include_deleted=True)``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every database.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored in UTC
    and come back aware.  Naive datetimes are refused: they are always a bug.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must carry a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


JSONType = JSON().with_variant(JSONB(), "postgresql")
InetType = String(45).with_variant(INET(), "postgresql")

# Annotated column types shared by every model.
Str50 = Annotated[str, 50]
Str255 = Annotated[str, 255]
Str500 = Annotated[str, 500]
Json = Annotated[dict[str, Any], "json"]


class Base(DeclarativeBase):
    """The one declarative base of every table."""

    if TYPE_CHECKING:  # every model here is mapped to a Table, not to any FromClause
        __table__: ClassVar[Table]

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        uuid.UUID: Uuid(),
        datetime: UTCDateTime(),
        date: Date(),
        Decimal: Numeric(14, 2),
        int: Integer(),
        bool: Boolean(),
        str: Text(),
        Str50: String(50),
        Str255: String(255),
        Str500: String(500),
        Json: JSONType,
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
    }

    #: Whether inserts, updates, soft deletes and restores write an ``audit_logs`` row.
    __audited__: ClassVar[bool] = False

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4, sort_order=-100)

    def __repr__(self) -> str:
        # Reads only the identity, so it works on expired or detached objects too.
        identity = self.__dict__.get("id")
        return f"<{type(self).__name__} id={identity}>"


def json_column(name: str | None = None, *, array: bool = False) -> Any:
    """A JSON (JSONB on PostgreSQL) column defaulting to ``{}`` (``[]`` with ``array``).

    ``name`` gives the column a name other than the attribute's (``metadata`` is reserved
    by declarative, so models map it as ``metadata_``).
    """
    args = (name, JSONType) if name else (JSONType,)
    return mapped_column(
        *args,
        default=list if array else dict,
        server_default=text("'[]'" if array else "'{}'"),
    )


def enum_column(name: str, *values: str, nullable: bool = True, default: str | None = None) -> Any:
    """A VARCHAR restricted to ``values`` by a CHECK constraint (both databases).

    A bad value is refused by SQLAlchemy before it reaches the database, with a message that
    lists the allowed values; raw SQL is refused by the CHECK constraint ``ck_<table>_<name>``.
    """
    return mapped_column(
        Enum(
            *values,
            name=name,
            native_enum=False,
            create_constraint=True,
            validate_strings=True,
            length=max(len(v) for v in values),
        ),
        nullable=nullable,
        default=default,
        server_default=default,
    )


class Timestamps:
    """``created_at`` set on insert and ``updated_at`` maintained on every update."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class CreatedAt:
    """``created_at`` only, for append-only tables."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())


class IsDeleted:
    """The soft-delete flag alone (the ERD gives ``notifications`` no ``deleted_at``)."""

    is_deleted: Mapped[bool] = mapped_column(default=False, server_default=false())

    def soft_delete(self) -> None:
        """Hide the row from normal queries; it stays in the table and can be restored."""
        self.is_deleted = True

    def restore(self) -> None:
        """Make a soft-deleted row visible again."""
        self.is_deleted = False


class SoftDelete(IsDeleted):
    """``is_deleted`` and ``deleted_at``, always set and cleared together."""

    deleted_at: Mapped[datetime | None] = mapped_column(default=None)

    def soft_delete(self) -> None:
        super().soft_delete()
        self.deleted_at = utcnow()

    def restore(self) -> None:
        super().restore()
        self.deleted_at = None


class OrgScoped:
    """Every tenant row carries its organization; see the module docstring.

    ``__org_refs__`` maps each column that points at another tenant table to that table;
    each becomes a composite foreign key ``(organization_id, column)``.  Columns listed in
    ``__org_cascade__`` are deleted with their parent.
    """

    __org_refs__: ClassVar[dict[str, str]] = {}
    __org_cascade__: ClassVar[frozenset[str]] = frozenset()
    #: False for tables no other table points at (append-only logs, bookkeeping): they do
    #: without the ``UNIQUE (organization_id, id)`` composite foreign keys would need.
    __referenced__: ClassVar[bool] = True

    @declared_attr
    def organization_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(
            ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, sort_order=-90
        )

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        refs = [
            same_org_fk(column, target, cascade=column in cls.__org_cascade__)
            for column, target in cls.__org_refs__.items()
        ]
        own = (UniqueConstraint("organization_id", "id"),) if cls.__referenced__ else ()
        return (*own, *refs, *cls.__table_extras__())

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        """Further constraints and indexes of the table (override)."""
        return ()


def same_org_fk(column: str, target: str, *, cascade: bool = False) -> ForeignKeyConstraint:
    """A composite foreign key ``(organization_id, column) -> target(organization_id, id)``.

    The referenced row must belong to the same organization, on every database, whatever
    the query that writes it.  Rows are soft-deleted, so a hard delete of a referenced row
    is refused unless ``cascade`` (children that live and die with their parent).
    """
    return ForeignKeyConstraint(
        ["organization_id", column],
        [f"{target}.organization_id", f"{target}.id"],
        ondelete="CASCADE" if cascade else None,
    )


__all__ = [
    "Base",
    "BigInteger",
    "CreatedAt",
    "IsDeleted",
    "InetType",
    "Json",
    "OrgScoped",
    "SoftDelete",
    "Str50",
    "Str255",
    "Str500",
    "Timestamps",
    "enum_column",
    "same_org_fk",
    "utcnow",
]
