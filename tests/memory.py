"""Peak-memory measurement in a fresh process (ru_maxrss is a lifetime peak, so it needs its own process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_PRELUDE = """
import json, resource, torch
def _peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""


def peak_growth_mib(setup: str, call: str) -> float:
    """Run ``setup``, then ``call``; return how much the process's peak RSS grew during ``call`` (MiB)."""
    code = _PRELUDE + textwrap.dedent(setup) + "\n_before = _peak()\n" + textwrap.dedent(call) + \
        "\nprint(json.dumps(_peak() - _before))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return float(out.stdout.strip().splitlines()[-1])
