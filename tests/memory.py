"""Peak-memory measurement in a fresh process.

The peak is the kernel's high-water mark of resident memory (VmHWM), reset just before the call through
``/proc/self/clear_refs`` so that the setup's own peak does not hide the call's; where that reset is not
allowed, ``ru_maxrss`` (a lifetime peak) is used instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_PRELUDE = """
import json, resource, torch

def _status(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024
    return None

def _reset_peak():
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False

def _peak():
    hwm = _status('VmHWM')
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""


def peak_growth_mib(setup: str, call: str) -> float:
    """Run ``setup``, then ``call``; return how far the process's resident memory peaked above its level
    just before ``call`` (MiB)."""
    code = (_PRELUDE + textwrap.dedent(setup)
            + "\n_reset = _reset_peak()\n_before = _status('VmRSS') if _reset else _peak()\n"
            + textwrap.dedent(call) + "\nprint(json.dumps(_peak() - _before))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise AssertionError(f"the measurement process failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])
