"""A small, real HTTP server that speaks (a deterministic subset of) the OpenAI API.

Standard library only. Used by the tests and benchmarks; also runnable as a script::

    python tests/openai_server.py --port 8000 --token-delay 0.01

In tests::

    from tests.openai_server import FakeOpenAI

    with FakeOpenAI(token_delay=0.0) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        ...
        server.requests  # [{"path", "method", "headers", "body"}, ...]

Reply rules (chat and legacy completions):

* the reply is ``"Echo: " + <last user message>`` (chat) or ``"Echo: " + <text of the
  last prompt line starting with "Q: ">`` (completions; the whole prompt when there is
  no such line);
* ``[tokens=N]`` in that text makes the reply ``"w1 w2 ... wN"``;
* the reply is streamed one word per chunk, the space travelling in front of the word
  (``"Echo:"``, ``" hi"``) so the chunks join back to the exact reply;
* ``stop`` (string or list) cuts the text before the first stop sequence; ``max_tokens``
  (or ``max_completion_tokens``) cuts to that many chunks, finish_reason ``"length"``;
* prompt_tokens = words in every message + 3 per message (chat) or words in the prompt
  (completions); completion_tokens = number of chunks sent.

Fault models (accepted on both endpoints, not listed by /v1/models): see ``FAULT_MODELS``.

Judge models (accepted, not listed), for LLM-as-a-judge tests; they read the answers between the
``<answer_a>``/``</answer_a>`` and ``<answer_b>``/``</answer_b>`` tags of the last user message:

* ``judge-always-a`` always prefers the first answer: ``"... [[A]]"``;
* ``judge-pick-MARKER`` picks the answer containing MARKER (``[[A]]`` or ``[[B]]``), ``[[C]]`` when both or neither do;
* ``judge-silent`` gives reasons but never a verdict.

``terse`` (accepted, not listed) always answers ``"OK."``: a second model that answers differently from the echo.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAI", "DEFAULT_MODELS", "FAULT_MODELS", "JUDGE_MODELS", "JUDGE_PICK", "main"]

DEFAULT_MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "davinci-002",
    "ft:gpt-4o-mini-2024-07-18:acme::abc123",
    "echo",
]

FAULT_MODELS = (
    "fault-401",  # 401 invalid_api_key
    "fault-429",  # 429 rate_limit_exceeded, Retry-After: 7
    "fault-500",  # 500 server_error
    "fault-slow",  # waits `slow_delay` (5 s) or until close() before sending anything
    "fault-break",  # streams "Partial one two" then drops the connection mid-body
    "fault-malformed",  # streams one good chunk, then `data: {not json`
    "fault-notext",  # normal reply but never a usage chunk / usage field
    "fault-echo-auth",  # 400 whose message quotes the request's Authorization header and the bare key
    "fault-echo-auth-stream",  # streams "Partial", then an error event quoting the Authorization header
)

JUDGE_MODELS = ("judge-always-a", "judge-silent")
JUDGE_PICK = "judge-pick-"
TERSE = "terse"
_ANSWER_RE = {slot: re.compile(rf"<answer_{slot}>(.*?)</answer_{slot}>", re.DOTALL) for slot in "ab"}

_TOKENS_RE = re.compile(r"\[tokens=(\d+)\]")
_CHUNK_RE = re.compile(r"\s*\S+")
_BREAK_PIECES = ["Partial", " one", " two"]


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _text_of(content: Any) -> str:
    """Text of a chat message ``content`` (a string or a list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return " ".join(parts)
    return str(content)


def _words(text: str) -> int:
    return len(text.split())


def _split_chunks(text: str) -> list[str]:
    """One word per chunk, leading whitespace attached; ``"".join(chunks) == text``."""
    chunks = _CHUNK_RE.findall(text)
    rest = text[sum(len(c) for c in chunks):]
    if rest:  # trailing whitespace (or a whitespace-only text)
        if chunks:
            chunks[-1] += rest
        else:
            chunks = [rest]
    return chunks


def _reply_for(user_text: str) -> str:
    m = _TOKENS_RE.search(user_text)
    if m:
        return " ".join(f"w{i}" for i in range(1, int(m.group(1)) + 1))
    return "Echo: " + user_text


def _is_judge(model: str) -> bool:
    return model in JUDGE_MODELS or model == TERSE or (model.startswith(JUDGE_PICK) and len(model) > len(JUDGE_PICK))


def _judgement(model: str, user_text: str) -> str:
    if model == TERSE:
        return "OK."
    if model == "judge-always-a":
        return "The first answer reads better. [[A]]"
    if model == "judge-silent":
        return "Both answers have their merits, and it is hard to say more."
    marker = model[len(JUDGE_PICK):]
    found = [m.group(1) if (m := _ANSWER_RE[slot].search(user_text)) else "" for slot in "ab"]
    has = [marker in answer for answer in found]
    verdict = "A" if has == [True, False] else "B" if has == [False, True] else "C"
    return f"Looking for {marker}. [[{verdict}]]"


def _plan(text: str, body: dict) -> tuple[list[str], str]:
    """Apply ``stop`` then ``max_tokens``; return (chunks, finish_reason)."""
    finish = "stop"
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list):
        cut = len(text)
        for seq in stop:
            if isinstance(seq, str) and seq:
                i = text.find(seq)
                if i != -1:
                    cut = min(cut, i)
        text = text[:cut]
    chunks = _split_chunks(text)
    limits = [
        body.get(k)
        for k in ("max_tokens", "max_completion_tokens")
        if isinstance(body.get(k), int) and not isinstance(body.get(k), bool)
    ]
    if limits and len(chunks) > min(limits):
        chunks = chunks[: max(min(limits), 0)]
        finish = "length"
    return chunks, finish


class _Closed(Exception):
    """The server is shutting down: drop the connection without a reply."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"
    disable_nagle_algorithm = True  # small SSE writes must not wait for delayed ACKs
    server: _Server

    # -- plumbing --------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.fake._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.fake.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        fake = self.server.fake
        try:
            raw = b""
            length = int(self.headers.get("Content-Length") or 0)
            if length > 0:
                raw = self.rfile.read(length)
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
            fake._record(
                {
                    "path": self.path,
                    "method": self.command,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )
            self._route(body, bool(raw))
        except _Closed:
            self.close_connection = True
        except OSError:  # client went away (BrokenPipe, ConnectionReset, ...)
            self.close_connection = True

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", self.server.fake._next_id("req_"))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", self.server.fake._next_id("req_"))
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _sse(self, obj: Any) -> None:
        self._write_chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def _end_stream(self) -> None:
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self.server.fake._stopped.wait(seconds):
            raise _Closed

    def _drop(self) -> None:
        """Close the connection abruptly (no terminating chunk)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- routing ---------------------------------------------------------------

    def _route(self, body: Any, had_body: bool) -> None:
        fake = self.server.fake
        path = self.path.split("?", 1)[0].rstrip("/")

        if fake.api_key is not None:
            auth = self.headers.get("Authorization", "")
            if auth != f"Bearer {fake.api_key}":
                given = auth[7:] if auth.startswith("Bearer ") else ""
                msg = (
                    f"Incorrect API key provided: {given}."
                    if given
                    else "You didn't provide an API key."
                )
                return self._send_json(401, _error_body(msg, "invalid_request_error", "invalid_api_key"))

        if self.command == "GET" and path == "/v1/models":
            return self._send_json(
                200, {"object": "list", "data": [self._model_obj(m) for m in fake.models]}
            )
        if self.command == "GET" and path.startswith("/v1/models/"):
            model = path[len("/v1/models/"):]
            if model in fake.models:
                return self._send_json(200, self._model_obj(model))
            return self._model_not_found(model)
        if path in fake.missing_paths:
            return self._send_json(
                404,
                _error_body(f"Invalid URL ({self.command} {self.path})", "invalid_request_error", None),
            )
        if self.command == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            if not isinstance(body, dict):
                msg = (
                    "We could not parse the JSON body of your request."
                    if had_body
                    else "You must provide a JSON body."
                )
                return self._send_json(400, _error_body(msg, "invalid_request_error", None))
            model = body.get("model")
            if not isinstance(model, str) or not model:
                return self._send_json(
                    400,
                    _error_body("you must provide a model parameter", "invalid_request_error", None),
                )
            if model not in fake.models and model not in FAULT_MODELS and not _is_judge(model):
                return self._model_not_found(model)
            return self._completion(body, model, chat=path == "/v1/chat/completions")
        return self._send_json(
            404,
            _error_body(f"Invalid URL ({self.command} {self.path})", "invalid_request_error", None),
        )

    def _echoed_auth(self) -> str:
        """What a careless proxy says: the header as received, and the key again on its own."""
        auth = self.headers.get("Authorization", "")
        return f"Request rejected. Authorization: {auth} (key {auth.removeprefix('Bearer ')!r} is not allowed here)"

    @staticmethod
    def _model_obj(model: str) -> dict:
        return {"id": model, "object": "model", "created": 0, "owned_by": "test"}

    def _model_not_found(self, model: str) -> None:
        self._send_json(
            404,
            _error_body(
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            ),
        )

    # -- completions -----------------------------------------------------------

    def _completion(self, body: dict, model: str, chat: bool) -> None:
        fake = self.server.fake
        if model == "fault-401":
            return self._send_json(
                401, _error_body("Incorrect API key provided", "invalid_request_error", "invalid_api_key")
            )
        if model == "fault-429":
            return self._send_json(
                429,
                _error_body(
                    "Rate limit reached for requests. Please try again in 7s.",
                    "requests",
                    "rate_limit_exceeded",
                ),
                headers={"Retry-After": "7"},
            )
        if model == "fault-500":
            return self._send_json(
                500,
                _error_body(
                    "The server had an error while processing your request.", "server_error", None
                ),
            )
        if model == "fault-slow":
            self._sleep(fake.slow_delay)
        if model == "fault-echo-auth":
            return self._send_json(400, _error_body(self._echoed_auth(), "invalid_request_error", None))

        if chat:
            messages = body.get("messages") if isinstance(body.get("messages"), list) else []
            user_text = ""
            prompt_tokens = 0
            for msg in messages:
                if not isinstance(msg, dict):
                    continue
                text = _text_of(msg.get("content"))
                prompt_tokens += _words(text) + 3
                if msg.get("role") == "user":
                    user_text = text
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, list):
                prompt = " ".join(p for p in prompt if isinstance(p, str))
            prompt = prompt if isinstance(prompt, str) else ""
            prompt_tokens = _words(prompt)
            user_text = prompt
            for line in prompt.splitlines():
                if line.startswith("Q: "):
                    user_text = line[3:]

        reply = _judgement(model, user_text) if _is_judge(model) else _reply_for(user_text)
        chunks, finish = _plan(reply, body)
        stream = bool(body.get("stream"))
        so = body.get("stream_options")
        include_usage = isinstance(so, dict) and bool(so.get("include_usage"))
        if model == "fault-notext":
            include_usage = False
        ident = fake._next_id("chatcmpl-" if chat else "cmpl-")
        created = int(time.time())

        def usage(n: int) -> dict:
            return {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}

        if model == "fault-break":
            if not stream:  # nothing at all: the connection just dies
                return self._drop()
            self._start_stream()
            self._sleep(fake.first_token_delay)
            for i, piece in enumerate(_BREAK_PIECES):
                if i:
                    self._sleep(fake.token_delay)
                self._sse(self._chunk(chat, ident, created, model, piece, None))
            self.wfile.flush()
            return self._drop()

        if model == "fault-echo-auth-stream" and stream:
            self._start_stream()
            self._sse(self._chunk(chat, ident, created, model, "Partial", None))
            self._sse(_error_body(self._echoed_auth(), "server_error", None))
            self._end_stream()
            return

        if model == "fault-malformed":
            if not stream:
                data = b"{not json"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self._start_stream()
            self._sleep(fake.first_token_delay)
            self._sse(self._chunk(chat, ident, created, model, "Partial", None))
            self._write_chunk(b"data: {not json\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True
            return

        if not stream:
            self._sleep(fake.first_token_delay + fake.token_delay * max(len(chunks) - 1, 0))
            text = "".join(chunks)
            if chat:
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            else:
                choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
            obj = {
                "id": ident,
                "object": "chat.completion" if chat else "text_completion",
                "created": created,
                "model": model,
                "choices": [choice],
            }
            if model != "fault-notext":
                obj["usage"] = usage(len(chunks))
            return self._send_json(200, obj)

        self._start_stream()
        self._sleep(fake.first_token_delay)
        for i, piece in enumerate(chunks):
            if i:
                self._sleep(fake.token_delay)
            self._sse(self._chunk(chat, ident, created, model, piece, None))
        self._sse(self._chunk(chat, ident, created, model, None, finish))
        if include_usage:
            self._sse(
                {
                    "id": ident,
                    "object": "chat.completion.chunk" if chat else "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage(len(chunks)),
                }
            )
        self._end_stream()

    @staticmethod
    def _chunk(chat: bool, ident: str, created: int, model: str, piece: str | None, finish: str | None) -> dict:
        if chat:
            delta = {} if piece is None else {"role": "assistant", "content": piece}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            obj = "chat.completion.chunk"
        else:
            choice = {"text": piece or "", "index": 0, "logprobs": None, "finish_reason": finish}
            obj = "text_completion"
        return {"id": ident, "object": obj, "created": created, "model": model, "choices": [choice]}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.fake._stopped.is_set():
            return
        super().handle_error(request, client_address)


class FakeOpenAI:
    """Deterministic OpenAI-compatible HTTP server on a background daemon thread.

    Attributes: ``base_url`` (``http://HOST:PORT/v1``), ``url`` (without ``/v1``),
    ``host``, ``port``, ``requests`` (every request received: dicts with ``path``,
    ``method``, ``headers`` (lower-case keys) and ``body`` (parsed JSON or None)),
    ``models``, ``api_key``, ``token_delay``, ``first_token_delay``, ``slow_delay``.
    The delays and ``api_key`` may be changed while the server runs; paths added to
    ``missing_paths`` (e.g. ``"/v1/completions"``, as on a chat-only server) answer 404.
    """

    def __init__(
        self,
        token_delay: float = 0.0,
        models: list[str] | None = None,
        api_key: str | None = "sk-test",
        first_token_delay: float = 0.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        slow_delay: float = 5.0,
        verbose: bool = False,
    ) -> None:
        self.token_delay = float(token_delay)
        self.first_token_delay = float(first_token_delay)
        self.models = list(DEFAULT_MODELS if models is None else models)
        self.api_key = api_key
        self.slow_delay = float(slow_delay)
        self.verbose = verbose
        self.host = host
        self.port = port
        self.requests: list[dict] = []
        self.missing_paths: set[str] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._conns: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        if self._httpd is not None:
            return self
        self._stopped.clear()
        httpd = _Server((self.host, self.port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="FakeOpenAI", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; wakes sleeping requests (fault-slow, delays) and drops open connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopped.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAI is not running; call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- internals used by the handler ---------------------------------------

    def _record(self, entry: dict) -> None:
        with self._lock:
            self.requests.append(entry)

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids)}"

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Deterministic fake OpenAI API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed chunks")
    parser.add_argument("--first-token-delay", type=float, default=0.0, help="seconds before the first chunk")
    parser.add_argument("--api-key", default="sk-test", help='required bearer key; "" disables auth')
    parser.add_argument("--models", default=None, help="comma-separated model ids")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server = FakeOpenAI(
        token_delay=args.token_delay,
        first_token_delay=args.first_token_delay,
        api_key=args.api_key or None,
        models=[m.strip() for m in args.models.split(",") if m.strip()] if args.models else None,
        host=args.host,
        port=args.port,
        verbose=args.verbose,
    )
    with server:
        print(server.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
