"""Per-process memory as the kernel accounts it: USS, the pages only that process holds,
which is what recycling a worker gives back (shared libraries and page cache are not)."""

from __future__ import annotations


def uss_bytes(pid: int) -> int | None:
    """Private_Clean + Private_Dirty from /proc/<pid>/smaps_rollup; None if unreadable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            lines = handle.readlines()
    except OSError:
        return None
    total_kb = 0
    for line in lines:
        if line.startswith(("Private_Clean:", "Private_Dirty:", "Private_Hugetlb:")):
            total_kb += int(line.split()[1])
    return total_kb * 1024
