"""Test support: a loopback OpenAI-compatible chat-completions server that captions with the project's own Captioner.

    server = ChatServer(Captioner.from_pretrained(folder, max_pixels=12544), name="lively")
    server.base_url            # http://127.0.0.1:PORT/v1 (the OS picks the port)
    server.fail = lambda request: (503, "0") if request.attempt == 1 else None   # inject failures
    server.close()

Endpoints: GET /v1/models, GET /version, POST /v1/chat/completions (one image + the task's system prompt and
question, as the job sends them; the task type is found from those texts in the registry). Each request is captioned
alone (`Captioner.caption([image], task)`), one at a time; token counts come back in `usage` exactly as the
Captioner counts them. Nothing is faked: every caption is the model's output. `server.refitted` lists the sizes of
the images the Captioner had to resize (a client that fits images to the model's bounds sends none).
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

from captioner.media import is_fitted
from captioner.tasks import TASKS


@dataclass
class Request:
    task: str
    image: Image.Image
    body: dict
    authorization: str | None
    attempt: int
    """1 for the first time this (image, task) pair arrives, 2 for its first retry, ..."""


Failure = Callable[[Request], "tuple[int, str | None] | str | None"]
"""returns None (answer normally), (HTTP status, Retry-After or None), or "drop" (close the connection unanswered)"""


class ChatServer:
    def __init__(self, captioner, name: str = "lively"):
        self.captioner, self.name = captioner, name
        self.fail: Failure | None = None
        self.log: list[tuple[str, int]] = []
        """(task, status) per request answered"""
        self.authorizations: list[str | None] = []
        self.attempts: Counter = Counter()
        self.refitted: list[tuple[int, int]] = []
        """(width, height) of each image received that the Captioner had to fit again"""
        self._lock = threading.Lock()
        self._by_prompt = {(t.system, t.question): name for name, t in TASKS.items()}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        self.fail = None
        self.log.clear()
        self.authorizations.clear()
        self.attempts.clear()
        self.refitted.clear()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def complete(self, request: Request) -> dict:
        body = request.body
        sampling = body.get("temperature", 1.0) > 0
        kwargs = dict(max_new_tokens=int(body.get("max_tokens", 16)), do_sample=sampling,
                      repetition_penalty=float(body.get("repetition_penalty", 1.0)))
        if sampling:
            kwargs.update(temperature=body["temperature"], top_p=body.get("top_p", 1.0), top_k=body.get("top_k", 0))
        with self._lock:
            if not is_fitted(request.image, self.captioner.min_pixels, self.captioner.max_pixels):
                self.refitted.append(request.image.size)
            result = self.captioner.caption([request.image], request.task, **kwargs)[0]
        return {
            "id": f"chatcmpl-{len(self.log)}", "object": "chat.completion", "model": self.name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                         "finish_reason": result.finish_reason}],
            "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.new_tokens,
                      "total_tokens": result.prompt_tokens + result.new_tokens},
        }

    def parse(self, body: dict, authorization: str | None) -> Request:
        system, user = body["messages"]
        image = question = None
        for part in user["content"]:
            if part["type"] == "image_url":
                data = part["image_url"]["url"].split(",", 1)[1]
                image = Image.open(io.BytesIO(base64.b64decode(data)))
                image.load()
            elif part["type"] == "text":
                question = part["text"]
        task = self._by_prompt[(system["content"], question)]
        key = (task, image.tobytes())
        with self._lock:
            self.attempts[key] += 1
            attempt = self.attempts[key]
        return Request(task, image, body, authorization, attempt)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload: dict, retry_after: str | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.name, "object": "model"}]})
                elif self.path == "/version":
                    self._send(200, {"version": "chat_server-test"})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if self.path != "/v1/chat/completions" or body.get("model") != server.name:
                    self._send(404, {"error": {"message": f"no model {body.get('model')!r} at {self.path}"}})
                    return
                request = server.parse(body, self.headers.get("Authorization"))
                server.authorizations.append(request.authorization)
                failure = server.fail(request) if server.fail else None
                if failure == "drop":
                    self.close_connection = True
                    self.connection.close()
                    server.log.append((request.task, 0))
                    return
                if failure is not None:
                    status, retry_after = failure
                    server.log.append((request.task, status))
                    self._send(status, {"error": {"message": f"injected HTTP {status}"}}, retry_after)
                    return
                reply = server.complete(request)
                server.log.append((request.task, 200))
                self._send(200, reply)

        return Handler
