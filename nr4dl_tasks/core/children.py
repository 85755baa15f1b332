"""Child processes die with their parent.

ffmpeg and the Spleeter worker run as child processes. Killed (SIGKILL from an
out-of-memory killer, a scheduler, a user), `nr4dl` cannot clean up, and its
ffmpeg went on decoding alone, writing a temporary file nobody would rename.
`die_with_parent`, passed as `preexec_fn`, asks the Linux kernel to send the
child SIGKILL as soon as its parent dies, however it dies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> None:
    """In the child, before it runs its program: be killed when the parent dies (a no-op off Linux)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)
