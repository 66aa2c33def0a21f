"""`crm-dbt`: runs the dbt installed beside this Python, bound to die with the process that started it.

dagster-dbt starts dbt as a subprocess. When that parent is killed with SIGKILL (no chance to clean up), a plain
dbt child would go on building, holding the warehouse's lock against the next run. On Linux this wrapper asks
the kernel (prctl PR_SET_PDEATHSIG) to SIGKILL it when its parent dies, then becomes dbt with execv, which keeps
that request. Elsewhere it simply becomes dbt.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where that cannot be asked."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    return True


def real_dbt() -> Path:
    return Path(sys.executable).parent / "dbt"


def main() -> None:
    die_with_parent()
    dbt = real_dbt()
    os.execv(dbt, [str(dbt), *sys.argv[1:]])


if __name__ == "__main__":
    main()
