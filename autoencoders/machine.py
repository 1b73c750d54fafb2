"""What the machine running this process has: its cores and its memory. Checks compare settings
with them where a value cannot work on this machine whatever else runs (more threads than cores,
an array larger than all the memory): refused up front rather than failing midway."""

from __future__ import annotations

import os


def cores() -> int:
    """The machine's cores (os.cpu_count), at least 1."""
    return os.cpu_count() or 1


def memory() -> int | None:
    """The machine's physical memory in bytes (None where the system does not say). A bound no
    run can pass: what needs more at once cannot work here, whatever else is running."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
