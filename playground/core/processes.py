"""Which process wrote a row, and whether it still runs: how a crash is told from a writer that is busy.

A process is named `host:pid:start`, where start is its start time in clock ticks since boot (Linux's
/proc/PID/stat), so a pid the system has since given to another program does not pass for the writer.
Where /proc is missing, start is empty and only the pid is checked.
"""

import os
import socket
from pathlib import Path


def _start_ticks(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) is in parentheses and may hold spaces; starttime is field 22.
    return stat.rpartition(")")[2].split()[19]


def process_key(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    return True


def is_gone(key: str) -> bool:
    """True only when the process is known to have ended; a process on another host is never assumed gone."""
    parts = key.rsplit(":", 2)
    host, pid_text, start = parts if len(parts) == 3 else ("", "", "")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if not _pid_exists(pid):
        return True
    return bool(start) and _start_ticks(pid) not in ("", start)
