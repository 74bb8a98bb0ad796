import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from captioner.datagen import DatagenConfig, StepConfig, needed, parse_tags, run
from captioner.tasks import get_task
from omnicap.config import load


class ChatServer(BaseHTTPRequestHandler):
    """A loopback server speaking the OpenAI chat-completions protocol. Its answers are rule-based stand-ins for a
    VLM/LLM so that the test can check what the pipeline sends and how it routes each answer."""

    requests: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        content = body["messages"][-1]["content"]
        text = content if isinstance(content, str) else content[-1]["text"]
        if "boom" in text:  # a failing backend
            self.send_response(500)
            self.end_headers()
            return
        if isinstance(content, list):  # step 1: an image + the seed question
            assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")
            answer = "A red square on a white background, above a small blue circle."
        elif "JSON array" in content:
            answer = '```json\n["red square", "blue circle", "white background"]\n```'
        elif "Simplified Chinese" in content:
            answer = "中文：" + content.rsplit("\n\n", 1)[-1][:12]
        elif "one sentence" in content:
            answer = "A red square and a blue circle."
        else:
            answer = "A red square above a blue circle on white."
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    ChatServer.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ChatServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (64, 64), "red").save(folder / "a.png")
    Image.new("RGB", (48, 80), "blue").save(folder / "b.jpg")
    (folder / "broken.png").write_bytes(b"nope")
    return folder


def test_endpoint_pipeline(server, images, tmp_path, monkeypatch, processor):
    monkeypatch.setenv("TEST_KEY", "sk-test")
    endpoint = {"url": server, "model": "vlm-x", "api_key_env": "TEST_KEY", "retries": 1}
    cfg = load(
        DatagenConfig,
        [],
        {
            "inputs": [str(images)],
            "out": str(tmp_path / "out" / "train.jsonl"),
            "seed.backend": "endpoint",
            "seed.endpoint": endpoint,
            "extend.backend": "endpoint",
            "extend.endpoint": endpoint | {"model": "llm-y"},
        },
    )
    counts = run(cfg)
    assert counts["seeded"] == 2 and counts["seed_failed"] == 1  # broken.png: reported, skipped
    rows = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    by_task = {(r["id"].split("/")[0], r["task_type"]): r for r in rows}
    assert {t for _, t in by_task} == set(cfg.styles) and len(rows) == 2 * len(cfg.styles)
    a = by_task[("a", "tags")]
    assert a["conversations"][1]["value"] == "red square, blue circle, white background"
    assert a["conversations"][0] == {"from": "human", "value": "<image>\n" + get_task("tags").question}
    assert by_task[("a", "short")]["conversations"][1]["value"] == "A red square and a blue circle."
    assert by_task[("a", "medium_zh")]["conversations"][1]["value"].startswith("中文：")
    assert (tmp_path / "out" / a["image"]).is_file() or a["image"].endswith("a.png")
    models = {r["body"]["model"] for r in ChatServer.requests}
    assert models == {"vlm-x", "llm-y"} and all(r["auth"] == "Bearer sk-test" for r in ChatServer.requests)
    assert all(r["path"] == "/v1/chat/completions" for r in ChatServer.requests)
    n = len(ChatServer.requests)
    assert run(cfg) == {"seed_failed": 1} and len(ChatServer.requests) == n  # a rerun retries only the failure

    # the output trains: it is valid captioner data
    from captioner.data import DataConfig, Encoder, Source, build_corpus
    from captioner.tasks import TASKS

    corpus = build_corpus(
        DataConfig(sources=[Source(path=str(tmp_path / "out" / "train.jsonl"))]),
        Encoder(processor, TASKS, DataConfig()),
    )
    assert len(corpus.records) == len(rows) and not corpus.skipped


def test_endpoint_errors_are_counted(server, images, tmp_path):
    endpoint = {"url": server, "retries": 2}
    cfg = load(
        DatagenConfig,
        [],
        {
            "inputs": [str(images / "a.png")],
            "out": str(tmp_path / "o.jsonl"),
            "seed.backend": "endpoint",
            "seed.endpoint": endpoint,
            "seed_prompt": "boom",
            "styles": ["detailed"],
        },
    )
    counts = run(cfg)
    assert counts["seed_failed"] == 1 and not (tmp_path / "o.jsonl").read_text()
    assert len(ChatServer.requests) == 2  # retried once on HTTP 500


def test_local_pipeline_with_tiny_models(tmp_path):
    from toyworld.make import main as make

    make(["--out", str(tmp_path / "toy"), "--n", "6", "--seed", "3", "--kinds", "scene,chart", "--shard_size", "6"])
    cfg = load(
        DatagenConfig,
        [],
        {
            "inputs": [str(tmp_path / "toy")],
            "out": str(tmp_path / "gen" / "train.jsonl"),
            "seed.max_new_tokens": 8,
            "extend.max_new_tokens": 8,
            "styles": ["detailed", "short", "tags", "short_zh"],
        },
    )
    counts = run(cfg)
    kinds = [json.loads(line) for line in (tmp_path / "gen" / "train.jsonl").read_text().splitlines()]
    summary = json.loads((tmp_path / "toy" / "_summary.json").read_text())
    assert counts["from_source"] + counts["seeded"] + counts.get("seed_empty", 0) == 6
    assert counts["from_source"] == summary["kinds"].get("chart", 0)  # charts: their source table is the seed
    charts = [r for r in kinds if r["task_type"] == "chart"]
    assert len(charts) == counts["from_source"] and all("|" in r["conversations"][1]["value"] for r in charts)
    assert counts.get("extend_tags_failed", 0) + sum(r["task_type"] == "tags" for r in kinds) == counts["seeded"]
    assert all((tmp_path / "gen" / r["image"]).is_file() for r in kinds)


def test_helpers():
    assert parse_tags('["a", "b c"]') == "a, b c"
    with pytest.raises(ValueError):
        parse_tags("a, b")
    assert needed(["short_zh"]) == {"short", "medium", "detailed"} and needed(["tags"]) == {"tags", "detailed"}
    assert StepConfig().backend == "local"


def test_cli_datagen(server, images, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "cli" / "train.jsonl"
    endpoint = f"{{url: '{server}', model: m, retries: 1}}"
    cmd = [
        sys.executable,
        "-m",
        "captioner",
        "datagen",
        str(images / "a.png"),
        "--out",
        str(out),
        "--seed.backend",
        "endpoint",
        "--seed.endpoint",
        endpoint,
        "--extend.backend",
        "endpoint",
        "--extend.endpoint",
        endpoint,
        "--styles",
        "[detailed, short]",
    ]
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        cmd, cwd=repo, env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task_type"] for r in rows] == ["detailed", "short"]
