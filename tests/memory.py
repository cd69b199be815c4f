"""Peak-memory measurement in a fresh process, for the tests: :func:`attnviz.measure.child_peak_growth_mib`.

The peak is the kernel's high-water mark of resident memory (VmHWM), reset just before the call through
``/proc/self/clear_refs`` so that the setup's own peak does not hide the call's (see attnviz.measure).
"""

from __future__ import annotations

from attnviz.measure import child_peak_growth_mib


def peak_growth_mib(setup: str, call: str) -> float:
    """Run ``setup``, then ``call`` in a fresh process (``torch`` imported); return how far its resident
    memory peaked above its level just before ``call`` (MiB)."""
    return child_peak_growth_mib(setup, call)
