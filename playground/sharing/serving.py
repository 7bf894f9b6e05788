"""Starting the web app: who may log in, the public share link, demo mode, and what to tell the host.

A share link puts the app on a public gradio.live address for up to a week, and whoever opens it spends the
host's API keys; so sharing needs a login. Without internet the link fails in seconds, with a plain message,
and the local address keeps working.
"""

import socket
from datetime import datetime, timedelta
from pathlib import Path

from ..core.errors import PlaygroundError

AUTH_ENV = "PLAYGROUND_AUTH"
# Uvicorn takes the client's address from X-Forwarded-For when the connection comes from one of these; by default
# 127.0.0.1, so any local client could name its own address and dodge a per-visitor limit.
PROXY_ENV = "FORWARDED_ALLOW_IPS"
LOOPBACK_PROXIES = "127.0.0.1,::1"
MAX_UPLOAD_MB = 100  # a dataset file for fine-tuning is rarely bigger
SHARE_LIFETIME = timedelta(weeks=1)  # Gradio's share links last up to a week (best effort)
GRADIO_SHARE_API = ("api.gradio.app", 443)
PROBE_TIMEOUT_S = 3.0


class LaunchRefused(PlaygroundError):
    pass


def parse_login(text: str, source: str) -> tuple[str, str]:
    user, sep, password = text.strip().partition(":")
    if not sep or not user.strip() or not password:
        raise LaunchRefused(f"{source}: a login is user:password, with both parts non-empty (got "
                            f"'{user.strip() or '?'}{sep}{'***' if password else ''}').")
    return user.strip(), password


def logins(auth: list[str], auth_file: Path | None, environ: dict) -> list[tuple[str, str]]:
    """Every login from --auth, --auth-file and $PLAYGROUND_AUTH, in that order."""
    found = [parse_login(a, "--auth") for a in auth]
    if auth_file is not None:
        try:
            lines = Path(auth_file).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise LaunchRefused(f"--auth-file {auth_file}: cannot read it ({e.strerror}).") from None
        found += [parse_login(line, f"{auth_file}, line {n}") for n, line in enumerate(lines, start=1)
                  if line.strip() and not line.lstrip().startswith("#")]
    found += [parse_login(item, f"${AUTH_ENV}") for item in environ.get(AUTH_ENV, "").split(",") if item.strip()]
    return found


def check_share(share: bool, found: list[tuple[str, str]]) -> None:
    if share and not found:
        raise LaunchRefused(
            "--share needs a login: a share link is a public address, and whoever opens it would chat on your "
            f"API keys and read your logs. Add --auth user:password, set {AUTH_ENV}=\"user:password\", or give "
            "--auth-file FILE; then send the login to the people you share with.")


# --- the share link ------------------------------------------------------------------------------------


def share_unreachable(environ: dict, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why a share link cannot be made now, or None when the share server answers.

    Gradio would wait up to 30 s on a network that drops packets; a quick connect tells at once.
    """
    custom = environ.get("GRADIO_SHARE_SERVER_ADDRESS")
    host, port = GRADIO_SHARE_API
    if custom:
        host, _, port_text = custom.rpartition(":")
        port = int(port_text) if port_text.isdigit() else 7000
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"the share server {host}:{port} cannot be reached ({e.strerror or type(e).__name__})"
    return None


def share_expiry(started: datetime) -> datetime:
    return started + SHARE_LIFETIME


def upload_limit(megabytes: int | None) -> int:
    if megabytes is None:
        return MAX_UPLOAD_MB
    if megabytes < 1:
        raise LaunchRefused(f"--max-upload-mb {megabytes}: give a size of at least 1 (megabytes).")
    return megabytes
