"""Pages of a full refresh fetched but not yet loaded (``runs/staged_load.py``).

* :class:`StagedPage` -- one vendor page of one stream run: its place in the stream
  (``sequence``, from 1), its key (the page outcome's), its records as JSON bytes, the
  vendor ids of those records (so a loader can tell whether an earlier page holds one of
  its records) and the cursor after it.  Written by the page task in the transaction that
  moves the stream's cursor; a load task claims it, writes its records and outcome and
  deletes it in one transaction, so a page is loaded exactly once.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAt, Json, OrgScoped, json_column


class StagedPage(OrgScoped, CreatedAt, Base):
    """A fetched page waiting for a load task."""

    __tablename__ = "sync_staged_pages"
    __referenced__ = False
    __org_refs__ = {"stream_run_id": "sync_stream_runs"}
    __org_cascade__ = frozenset({"stream_run_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("stream_run_id", "sequence"),)

    stream_run_id: Mapped[uuid.UUID]
    #: The page's place in its stream: 1 for the first page fetched.
    sequence: Mapped[int]
    page_key: Mapped[str] = mapped_column(String(255))
    #: The page's records, JSON-encoded (read back only by the loader).
    records: Mapped[bytes] = mapped_column(LargeBinary)
    #: The vendor ids of the records, in order (JSON list of text).
    record_keys: Mapped[list[Any]] = json_column(array=True)
    next_cursor: Mapped[Json | None]


__all__ = ["StagedPage"]
