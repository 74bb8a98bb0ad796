"""A test stand-in for an LLM: an OpenAI-compatible chat server on loopback whose answers come from a deterministic
reader of the caption in the prompt (toy-world vocabulary only). It measures what a caption states, not what an LLM
can reason; it is never reported as an LLM result.

    python tests/eval/caption_reader.py      # serves on 127.0.0.1, a port chosen by the OS; prints the URL

Each answer is wrapped like a reasoning model's: a <think> block holding a wrong "Answer: 99" (so a harness that does
not strip it is caught), then "Answer: X". Questions it cannot read from the caption get "Answer: unknown".
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from captioner.toy_accuracy import parse_objects
from eval.reason import ANSWER_LINE
from toyworld.vocab import COLORS, SHAPES

HEADER = "Here is a detailed description of an image.\n\n"
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
SHAPE = "|".join(SHAPES)
COLOR = "|".join(COLORS)


def split_prompt(prompt: str) -> tuple[str, str]:
    """(caption, question) of a prompt built with eval.reason's default templates (a question holds no blank line)."""
    body = prompt.removesuffix(ANSWER_LINE).rstrip()
    if not body.startswith(HEADER):
        return "", body  # the question-only baseline
    caption, _, question = body[len(HEADER) :].rpartition("\n\n")
    return caption, question


def table(caption: str) -> list[list[str]]:
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in caption.splitlines()
            if line.strip().startswith("|") and not set(line.strip()) <= set("|-")]  # fmt: skip
    return rows


def read(caption: str, question: str) -> str:
    q = question.split("\n")[0]
    objects = parse_objects(caption)
    if q.startswith("How many shapes"):
        return str(sum(objects.values())) if objects else "unknown"
    m = re.match(rf"How many ({COLOR}) ({SHAPE})s are in the image", q)
    if m:
        return str(objects.get((m[1], m[2]), 0)) if objects else "unknown"
    m = re.match(rf"Is there an? ({COLOR}) ({SHAPE})", q)
    if m:
        return ("yes" if objects.get((m[1], m[2])) else "no") if objects else "unknown"
    m = re.match(rf"What colou?r is the ({SHAPE})\?", q)
    if m:
        found = [c for (c, s) in objects if s == m[1]]
        return found[0] if len(found) == 1 else "unknown"
    m = re.match(r"Is the (.+?) (left of|right of|above|below) the (.+?)\?", q)
    if m:
        a, rel, b = m[1], m[2], m[3]
        for x, y, want in ((a, b, rel), (b, a, OPPOSITE[rel])):
            s = re.search(rf"The {re.escape(x)} is ((?:left of|right of|above|below)(?: and (?:left of|right of|above|below))?) the {re.escape(y)}\.", caption)  # noqa: E501
            if s:
                return "yes" if want in s[1].split(" and ") else "no"
        return "unknown"
    rows = table(caption)
    m = re.match(r"In the bar chart of .+?, what is the value of (.+)\?", q)
    if m and rows:
        return next((r[1] for r in rows[1:] if r[0] == m[1]), "unknown")
    m = re.match(r"Which label has the (largest|smallest) value", q)
    if m and len(rows) > 1:
        pairs = [(int(r[1]), r[0]) for r in rows[1:] if r[1].isdigit()]
        return (max(pairs) if m[1] == "largest" else min(pairs))[1] if pairs else "unknown"
    m = re.match(r"In the table, what is the (\w+) of the \w+ (\w+)\?", q)
    if m and rows:
        header = rows[0]
        row = next((r for r in rows[1:] if r[0] == m[2]), None)
        return row[header.index(m[1])] if row and m[1] in header else "unknown"
    if q.startswith("What does the text"):
        s = re.search(r'reads "([^"]+)"', caption)
        return s[1] if s else "unknown"
    m = re.match(r"What colou?r is the (poster|sign)\?", q)
    if m:
        s = re.search(rf"\bA ({COLOR}) {m[1]}\b", caption)
        return s[1] if s else "unknown"
    return "unknown"


def answer(prompt: str) -> str:
    caption, question = split_prompt(prompt)
    text = read(caption, question)
    options = re.findall(r"^([A-Z])\. (.+)$", question, re.MULTILINE)
    for letter, option in options:
        if option.strip().lower() == text.lower():
            text = f"({letter})"
    return f"<think>Reading the description. Answer: 99 would be a guess.</think>\nAnswer: {text}"


class ReaderServer(BaseHTTPRequestHandler):
    requests: list = []
    fail: set = set()
    """questions (substrings) answered with HTTP 500, to test error handling"""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        type(self).requests.append({"auth": self.headers.get("Authorization"), "body": body})
        if any(f in prompt for f in type(self).fail):
            self.send_response(500)
            self.end_headers()
            return
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer(prompt)}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def start() -> tuple[ThreadingHTTPServer, str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ReaderServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/v1"


if __name__ == "__main__":
    server, url = start()
    print(url, flush=True)
    threading.Event().wait()
