"""Random ids in bulk: a scheduler tick gives thousands of rows their ids at once.

:func:`uuid4s` makes version-4 UUIDs, as :func:`uuid.uuid4` does, from one read of the
system's random source instead of one read (one system call) per id.
"""

from __future__ import annotations

import os
import uuid


def uuid4s(count: int) -> list[uuid.UUID]:
    """``count`` new random (version 4) UUIDs."""
    data = os.urandom(16 * count)
    return [uuid.UUID(bytes=data[i : i + 16], version=4) for i in range(0, 16 * count, 16)]
