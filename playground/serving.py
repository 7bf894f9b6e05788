"""Starting the web app: who may log in, the public share link, demo mode, and what to tell the host.

A share link puts the app on a public gradio.live address for up to a week, and whoever opens it spends the
host's API keys; so sharing needs a login. Without internet the link fails in seconds, with a plain message,
and the local address keeps working.
"""

import argparse
import os
import socket
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .errors import PlaygroundError

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


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--share", action="store_true",
                        help="Also serve on a temporary public Gradio link (up to a week). Needs a login: --auth, "
                             f"--auth-file or ${AUTH_ENV}.")
    parser.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD",
                        help=f"Require this login (repeatable). ${AUTH_ENV}=\"u:p,u2:p2\" or --auth-file keep "
                             "passwords out of the shell history.")
    parser.add_argument("--auth-file", type=Path, default=None, metavar="FILE",
                        help="Logins, one user:password per line (# starts a comment).")
    parser.add_argument("--demo", default=None, metavar="PERSONA[,PERSONA...]",
                        help="Demo mode: only a chat with these personas; no settings, keys, datasets, logs or "
                             "other tabs. Exchanges are still logged here.")
    parser.add_argument("--demo-models", default=None, metavar="MODEL[,MODEL...]",
                        help="Models a demo guest may pick (default: the demo personas' own models).")
    parser.add_argument("--demo-max-tokens", type=int, default=None, metavar="N",
                        help="Cap on a demo reply's length in tokens (default 256).")
    parser.add_argument("--demo-rate", type=int, default=None, metavar="N",
                        help="Messages one demo visitor may send a minute (default 10).")
    parser.add_argument("--demo-total-rate", type=int, default=None, metavar="N",
                        help="Messages all demo visitors together may send a minute (default 60).")
    parser.add_argument("--demo-max-chars", type=int, default=None, metavar="N",
                        help="Longest message a demo guest may send, in characters (default 4000).")
    parser.add_argument("--demo-max-prompt-tokens", type=int, default=None, metavar="N",
                        help="Largest prompt a demo sends to the model, in tokens: system prompt, examples, the chat "
                             "so far and the new message (default 4096).")
    parser.add_argument("--max-upload-mb", type=int, default=None, metavar="N",
                        help="Largest file the app takes, in megabytes (default 100; demo mode takes no files).")
    parser.add_argument("--allow-remote-media", action="store_true",
                        help="Let replies show pictures, audio, video and frames from other sites. Off by default: "
                             "a reply with ![x](https://site/?q=...) would make each reader's browser call that "
                             "site.")
    parser.add_argument("--trusted-proxy", nargs="?", const=LOOPBACK_PROXIES, default=None, metavar="ADDRESS[,...]",
                        help="The app is behind a reverse proxy at these addresses (default 127.0.0.1,::1): take a "
                             "visitor's address from its X-Forwarded-For. Without it the header is ignored.")


# --- logins --------------------------------------------------------------------------------------------


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


# --- serving -------------------------------------------------------------------------------------------


def serve_app(args, make_services) -> int:
    """Check the login and share options, build the app (or the demo), launch it and report its addresses."""
    environ = dict(os.environ)
    try:
        found = logins(args.auth, args.auth_file, environ)
        check_share(args.share, found)
    except LaunchRefused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from .demo import demo_settings
    from .ui.app import build_app, launch, launch_options

    services = make_services(args)
    for problem in services.problems:
        print(f"warning: {problem}", file=sys.stderr)
    try:
        demo = demo_settings(services.personas, args.demo, args.demo_models, max_tokens=args.demo_max_tokens,
                             per_session_per_minute=args.demo_rate, total_per_minute=args.demo_total_rate,
                             max_chars=args.demo_max_chars, max_prompt_tokens=args.demo_max_prompt_tokens) \
            if args.demo else None
        upload_mb = upload_limit(args.max_upload_mb)
    except (PlaygroundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    unreachable = share_unreachable(environ) if args.share else None
    # Read by uvicorn when Gradio starts it; this process is the server, so its environment is the place.
    os.environ[PROXY_ENV] = args.trusted_proxy or ""
    app = build_app(services, demo=demo)
    _, local_url, share_url = launch(
        app, server_name=args.host, server_port=args.port, share=args.share and not unreachable,
        auth=found or None, auth_message="Playground: log in with the user and password the host gave you.",
        prevent_thread_lock=True, quiet=True,
        **launch_options(services, demo=demo is not None, remote_media=args.allow_remote_media,
                         max_upload_mb=upload_mb))
    _report(local_url, share_url, args.share, unreachable, bool(found), demo)
    app.block_thread()
    return 0


def _report(local_url: str, share_url: str | None, share: bool, unreachable: str | None, login: bool, demo) -> None:
    mode = f"demo of {', '.join(demo.personas)}" if demo else "Playground"
    print(f"{mode} running at {local_url}" + (" (login required)" if login else ""), flush=True)
    if not share:
        return
    if share_url:
        expires = share_expiry(datetime.now(timezone.utc))
        print(f"Public share link: {share_url}\n  expires by {expires:%Y-%m-%d %H:%M} UTC (share links last up to a "
              "week); visitors must log in.", flush=True)
        return
    reason = unreachable or "Gradio could not open the tunnel (see its message above)"
    print(f"No share link: {reason}. Is this machine online? The app still works locally at {local_url}.",
          file=sys.stderr, flush=True)
