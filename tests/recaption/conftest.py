"""Builders for small test shards (good images in every odd format, and every class of bad input), and the `job`
helpers shared by the job tests (test_openai, test_vllm): a small fast job's argv and its comparable outputs."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import tarfile
import threading
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def picture(seed: int, size=(64, 48), mode="RGB") -> Image.Image:
    """A small image with structure (blocks of colour), different per seed."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    array = np.kron(blocks, np.ones((size[1] // 4 + 1, size[0] // 4 + 1, 1), dtype=np.uint8))[: size[1], : size[0]]
    return Image.fromarray(array, "RGB").convert(mode)


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def pixel_bomb_png(width=100_000, height=100_000) -> bytes:
    """A valid tiny PNG whose header claims width x height pixels (CRC fixed so only the size is wrong)."""
    data = bytearray(png_bytes(picture(0, (16, 16))))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def exif_rotated_jpeg() -> bytes:
    """A 64x32 JPEG stored sideways with EXIF orientation 6 (display = rotate 90° clockwise → 32x64)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(picture(7, (64, 32)), "JPEG", exif=exif.tobytes())


def odd_format_images() -> dict[str, tuple[str, bytes]]:
    """{description: (extension, bytes)} for every odd but valid format the job must caption."""
    rgba = picture(3).convert("RGBA")
    rgba.putalpha(128)
    gif_frames = [picture(10 + i).convert("P") for i in range(3)]
    gif = io.BytesIO()
    gif_frames[0].save(gif, format="GIF", save_all=True, append_images=gif_frames[1:], duration=50, loop=0)
    deep = Image.fromarray((np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20).astype(np.uint16))
    return {
        "jpeg": ("jpeg", encode(picture(1), "JPEG")),
        "webp": ("webp", encode(picture(2), "WEBP")),
        "png_alpha": ("png", png_bytes(rgba)),
        "gif_animated": ("gif", gif.getvalue()),
        "cmyk_jpeg": ("jpg", encode(picture(4).convert("CMYK"), "JPEG")),
        "png_16bit": ("png", png_bytes(deep)),
        "exif_rotated": ("jpg", exif_rotated_jpeg()),
        "upper_case_ext": ("JPG", encode(picture(5), "JPEG")),
    }


def bad_samples() -> dict[str, list[tuple[str, bytes]]]:
    """{error class: [(extension, bytes), ...] members of one sample that must fail with that class}."""
    return {
        "decode_error": [("jpg", b"this is not an image" * 10)],
        "empty": [("png", b"")],
        "too_small": [("png", png_bytes(Image.new("RGB", (1, 1), "red")))],
        "too_large": [("png", pixel_bomb_png())],
        "missing_image": [("txt", b"a caption without its image"), ("json", b"{}")],
    }


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


def good_shard(path: Path, n: int, start: int = 0, size=(64, 48)) -> Path:
    """img2dataset layout: KEY.jpg, KEY.txt, KEY.json with 9-digit keys."""
    members = []
    for i in range(start, start + n):
        key = f"{i:09d}"
        members += [(f"{key}.jpg", encode(picture(i, size), "JPEG")), (f"{key}.txt", f"alt text {i}".encode()),
                    (f"{key}.json", b'{"key": "%s"}' % key.encode())]
    return write_tar(path, members)



def mixed_shards(folder: Path, good: int) -> Path:
    """folder/00000.tar with `good` good samples, folder/00001.tar with every odd image format and every bad sample;
    the brace pattern of both."""
    good_shard(folder / "00000.tar", good)
    members = []
    for i, (name, (ext, data)) in enumerate(odd_format_images().items()):
        members += [(f"odd{i}_{name}.{ext}", data)]
    for cls, sample in bad_samples().items():
        members += [(f"bad_{cls}.{ext}", data) for ext, data in sample]
    write_tar(folder / "00001.tar", members)
    return folder / "{00000..00001}.tar"


def job_args(inp, out, model, *extra) -> list[str]:
    """argv of a small fast job: two tasks, 6 new tokens, batches of 4, no decode workers, no progress line."""
    return ["--input", str(inp), "--output", str(out), "--model.path", model, "--tasks", "[detailed,short]",
            "--model.max_pixels", "12544", "--generation.max_new_tokens", "6", "--generation.batch_size", "4",
            "--decode.workers", "0", "--progress", "false", "--lease.poll_s", "0.1", *extra]


RUN_SPECIFIC = ("fingerprint", "timings", "images_per_s", "new_tokens_per_s", "worker", "finished_at")


def comparable_outputs(out: Path):
    """{file name: content} of the sidecars, and the stats without the fields that differ between runs/engines."""
    files = {p.name: p.read_text() for p in sorted(out.glob("*.omnicap.json"))}
    stats = {p.name: {k: v for k, v in json.loads(p.read_text()).items() if k not in RUN_SPECIFIC}
             for p in sorted(out.glob("*.stats.json"))}
    for s in stats.values():  # details may hold object addresses (`<_io.BytesIO object at 0x...>`)
        s["error_examples"] = {k: [e["key"] for e in v] for k, v in s["error_examples"].items()}
    return files, stats


SLOW_CAT = """#!/bin/sh
# slowcat.sh BYTES STOPFILE FILE: the first BYTES of FILE, then nothing until STOPFILE exists, then the rest
head -c "$1" "$3"
while [ ! -e "$2" ]; do sleep 0.05; done
tail -c +"$(($1 + 1))" "$3"
"""


def stalling_input(folder: Path, sizes: list[int], stall_before: int) -> tuple[str, Path]:
    """Shards folder/in/0000S.tar of `sizes[S]` good samples (keys from 100*S); shard 00001 is read through a
    `pipe:` url that stalls before its sample `stall_before` until the returned stop file exists. Returns the
    input pattern and the stop file."""
    for s, n in enumerate(sizes):
        good_shard(folder / "in" / f"{s:05d}.tar", n, start=100 * s)
    with tarfile.open(folder / "in" / "00001.tar") as tf:
        stall_at = tf.getmember(f"{100 + stall_before:09d}.jpg").offset
    script, stop = folder / "slowcat.sh", folder / "stop"
    script.write_text(SLOW_CAT)
    shard = f"pipe:sh {script} {stall_at} {stop} {folder}/in/00001.tar"
    return f"{folder}/in/00000.tar::{shard}::{folder}/in/00002.tar", stop


def watch_stderr(proc, pattern: str) -> tuple[threading.Event, list[str]]:
    """Reads `proc.stderr` on a thread: the event is set once a line holds `pattern`; the list gathers the lines."""
    seen, lines = threading.Event(), []

    def read():
        for line in proc.stderr:
            lines.append(line)
            if pattern in line:
                seen.set()

    threading.Thread(target=read, daemon=True).start()
    return seen, lines


def descendants(pid: int) -> list[str]:
    """The pids of all processes below `pid` (children, theirs, ...)."""
    out, todo = [], [str(pid)]
    while todo:
        found = subprocess.run(["pgrep", "-P", todo.pop()], capture_output=True, text=True).stdout.split()
        out += found
        todo += found
    return out


def alive(pids: list[str], wait_s: float) -> list[str]:
    """The pids still running (zombies count as exited) once all have exited or `wait_s` has passed."""
    deadline = time.monotonic() + wait_s
    while True:
        running = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                continue
            if state != "Z":
                running.append(pid)
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)


@pytest.fixture(scope="session")
def job():
    """`job.args(inp, out, model, *extra)`: a small fast job's argv; `job.outputs(out)`: its comparable outputs; the
    kill -9 tests' helpers `slow_cat` (SLOW_CAT), `stalling_input`, `watch_stderr`, `descendants`, `alive`."""
    return SimpleNamespace(args=job_args, outputs=comparable_outputs, slow_cat=SLOW_CAT, stalling_input=stalling_input,
                           watch_stderr=watch_stderr, descendants=descendants, alive=alive)

@pytest.fixture
def shards():
    """The builders above, as one fixture object."""

    class Builders:
        pass

    b = Builders()
    for fn in (png_bytes, picture, encode, pixel_bomb_png, exif_rotated_jpeg, odd_format_images, bad_samples,
               write_tar, good_shard, mixed_shards):
        setattr(b, fn.__name__, staticmethod(fn))
    return b


@pytest.fixture(scope="session")
def lively_model(tmp_path_factory) -> str:
    """A tiny random Qwen2-VL folder whose captions differ from image to image.

    The factory's tiny model ties input and output embeddings, so greedy decoding repeats the prompt's last token
    ("\\n") whatever the image: every caption comes out empty. Untying the output layer and amplifying the vision
    merger's output makes captions depend on the image, which the equality tests need.
    """
    return build_lively_model(tmp_path_factory.mktemp("lively-captioner"))


def build_lively_model(folder, heads: int = 4, kv_heads: int = 2) -> str:
    """Saves the lively tiny Qwen2-VL (see `lively_model`) to `folder`; heads=2 gives head_dim 32 (vLLM's CPU
    attention refuses the factory's 16)."""
    import torch
    from transformers import Qwen2VLForConditionalGeneration

    from captioner.models import TinySize, load_processor, tiny_qwen2vl_config

    config = tiny_qwen2vl_config(TinySize(heads=heads, kv_heads=kv_heads))
    config.tie_word_embeddings = config.text_config.tie_word_embeddings = False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2VLForConditionalGeneration(config).float()
    with torch.no_grad():
        model.model.visual.merger.mlp[-1].weight.mul_(30)
    model.save_pretrained(folder)
    load_processor("qwen2_vl").save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def lively_model_hd32(tmp_path_factory) -> str:
    """The lively model with head_dim 32, which every engine (hf, vllm, openai) can run."""
    return build_lively_model(tmp_path_factory.mktemp("lively-captioner-hd32"), heads=2, kv_heads=1)


def _load_chat_server():
    import importlib.util

    spec = importlib.util.spec_from_file_location("recaption_chat_server", Path(__file__).with_name("chat_server.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def start_chat_server(model_folder: str, max_pixels: int = 12544, name: str = "lively"):
    """A loopback OpenAI-compatible server (tests/recaption/chat_server.py) captioning with our Captioner."""
    from captioner.inference import Captioner

    return _load_chat_server().ChatServer(Captioner.from_pretrained(model_folder, max_pixels=max_pixels), name)


@pytest.fixture(scope="session")
def chat_server(lively_model):
    """The server for `lively_model` (the one the hf tests use), shared by a session; reset before each use."""
    server = start_chat_server(lively_model)
    yield server
    server.close()


@pytest.fixture
def served(chat_server):
    chat_server.reset()
    yield chat_server
    chat_server.reset()


@pytest.fixture
def chat_server_for():
    """start(model folder) -> a loopback server for that model, closed after the test."""
    servers = []

    def start(folder: str, max_pixels: int = 12544):
        servers.append(start_chat_server(folder, max_pixels))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
