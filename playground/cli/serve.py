"""`serve` and `python app.py`: the launch flags, then build the app (or the demo), launch it and report."""

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from ..core.errors import PlaygroundError
from ..sharing.demo import demo_settings
from ..sharing.serving import (
    AUTH_ENV,
    LOOPBACK_PROXIES,
    PROXY_ENV,
    LaunchRefused,
    check_share,
    logins,
    share_expiry,
    share_unreachable,
    upload_limit,
)


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


def serve_app(args, make_services) -> int:
    """Check the login and share options, build the app (or the demo), launch it and report its addresses."""
    environ = dict(os.environ)
    try:
        found = logins(args.auth, args.auth_file, environ)
        check_share(args.share, found)
    except LaunchRefused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # Lazy: gradio takes seconds to import, and only serving needs it (`models`, `logs`, `dataset` must start fast).
    from ..ui.app import build_app, launch, launch_options

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
        expires = share_expiry(datetime.now(UTC))
        print(f"Public share link: {share_url}\n  expires by {expires:%Y-%m-%d %H:%M} UTC (share links last up to a "
              "week); visitors must log in.", flush=True)
        return
    reason = unreachable or "Gradio could not open the tunnel (see its message above)"
    print(f"No share link: {reason}. Is this machine online? The app still works locally at {local_url}.",
          file=sys.stderr, flush=True)
