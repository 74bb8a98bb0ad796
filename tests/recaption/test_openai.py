"""`--engine openai` against a loopback server (tests/recaption/chat_server.py) that captions with our own Captioner:
the same captions, stats and sidecars as `--engine hf`; retries on 429/5xx/dropped connections; failures counted."""

import json

from recaption.run import main


def openai_args(server, *extra):
    return ["--engine", "openai", "--openai.base_url", server.base_url, "--openai.model", server.name,
            "--openai.backoff_s", "0.01", "--openai.concurrency", "3", "--openai.window", "5", *extra]


def test_openai_equals_hf_through_retries(tmp_path, shards, lively_model, served, job):
    """Every request's first try fails (429 with Retry-After, 503, or a dropped connection); retries recover them
    all, and captions, token counts, error counts and sidecars equal the in-process engine's."""
    inp = shards.mixed_shards(tmp_path / "in", 7)
    # the server captions each request alone: hf with batch size 1 is the same computation (another batch shape
    # can flip a near-tie of the random model through fp32 rounding)
    assert main(job.args(inp, tmp_path / "hf", lively_model, "--generation.batch_size", "1")) == 0
    kinds = [(429, "0"), (503, None), "drop"]
    served.fail = lambda r: kinds[len(served.log) % 3] if r.attempt == 1 else None
    assert main(job.args(inp, tmp_path / "openai", lively_model, *openai_args(served))) == 0
    hf_files, hf_stats = job.outputs(tmp_path / "hf")
    files, stats = job.outputs(tmp_path / "openai")
    assert served.refitted == []  # the client fitted every image to the model's saved bounds, as hf does
    assert files == hf_files
    for name in hf_stats:
        assert {k: v for k, v in stats[name].items() if v != hf_stats[name][k]} == {}, hf_stats[name]
    assert json.loads(hf_files["00000.omnicap.json"])  # something was captioned
    assert hf_stats["00000.stats.json"]["tokens"]["new"] > 0
    statuses = [status for _, status in served.log]
    assert statuses.count(200) == 2 * (7 + len(shards.odd_format_images()))  # each caption answered once
    assert {429, 503, 0} <= set(statuses)
    fingerprint = json.loads((tmp_path / "openai" / "00000.stats.json").read_text())["fingerprint"]
    assert fingerprint["engine"]["name"] == "openai" and fingerprint["model"] == served.name
    assert fingerprint["engine"]["version"] == "server chat_server-test"


def test_failed_requests_are_engine_errors_and_the_shard_goes_on(tmp_path, shards, lively_model, served, job):
    from PIL import Image

    members = [(f"good{i}.jpg", shards.encode(shards.picture(i), "JPEG")) for i in range(3)]
    members.insert(1, ("black.png", shards.png_bytes(Image.new("RGB", (64, 48), "black"))))
    members.insert(2, ("white.png", shards.png_bytes(Image.new("RGB", (64, 48), "white"))))
    shards.write_tar(tmp_path / "00000.tar", members)

    def fail(request):
        colours = request.image.getextrema()
        if colours == ((0, 0),) * 3:
            return 500, None  # always: retried, then given up
        if colours == ((255, 255),) * 3:
            return 400, None  # a client error: not retried
        return None

    served.fail = fail
    out = tmp_path / "out"
    assert main(job.args(tmp_path / "00000.tar", out, lively_model, "--tasks", "[detailed]",
                         *openai_args(served, "--openai.retries", "2"))) == 0
    stats = json.loads((out / "00000.stats.json").read_text())
    assert stats["errors"]["engine_error"] == 2 and stats["captioned"] == 3
    details = {e["key"]: e["detail"] for e in stats["error_examples"]["engine_error"]}
    assert "HTTP 500" in details["black"] and "after 3 tries" in details["black"]
    assert "HTTP 400" in details["white"] and "after 1 try" in details["white"]
    assert list(json.loads((out / "00000.omnicap.json").read_text())) == ["good0", "good1", "good2"]
    assert sum(1 for _, s in served.log if s == 500) == 3 and sum(1 for _, s in served.log if s == 400) == 1


def test_api_key_wrong_model_and_unreachable_server(tmp_path, shards, lively_model, served, monkeypatch, capsys, job):
    shards.good_shard(tmp_path / "00000.tar", 1)
    monkeypatch.setenv("MY_KEY", "secret-1")
    out = tmp_path / "out"
    assert main(job.args(tmp_path / "00000.tar", out, lively_model, *openai_args(served, "--openai.api_key_env",
                                                                                  "MY_KEY"))) == 0
    assert served.authorizations and set(served.authorizations) == {"Bearer secret-1"}
    capsys.readouterr()
    wrong = ["--engine", "openai", "--openai.base_url", served.base_url, "--openai.model", "nope"]
    assert main(job.args(tmp_path / "00000.tar", tmp_path / "o2", lively_model, *wrong)) == 2
    assert "'nope' is not served" in capsys.readouterr().err
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = ["--engine", "openai", "--openai.base_url", f"http://127.0.0.1:{port}/v1", "--openai.model", "x"]
    assert main(job.args(tmp_path / "00000.tar", tmp_path / "o3", lively_model, *dead)) == 2
    assert f"127.0.0.1:{port}/v1" in capsys.readouterr().err
    assert main(job.args(tmp_path / "00000.tar", tmp_path / "o4", lively_model, "--engine", "openai")) == 2
    assert "--openai.base_url" in capsys.readouterr().err


def test_switching_engine_is_a_fingerprint_change(tmp_path, shards, lively_model, served, capsys, job):
    shards.good_shard(tmp_path / "00000.tar", 2)
    out = tmp_path / "out"
    assert main(job.args(tmp_path / "00000.tar", out, lively_model)) == 0
    capsys.readouterr()
    assert main(job.args(tmp_path / "00000.tar", out, lively_model, *openai_args(served))) == 2
    assert "engine.name: 'hf' -> 'openai'" in capsys.readouterr().err
    assert main(job.args(tmp_path / "00000.tar", out, lively_model, *openai_args(served), "--overwrite")) == 0


def test_openai_engine_fits_to_the_bounds_saved_with_the_model(lively_model):
    """transformers >= 5 saves the image processor's bounds in processor_config.json (not preprocessor_config.json):
    the client must read them there, or images below the model's min_pixels go out smaller than hf fits them."""
    from captioner.inference import Captioner
    from recaption.engines import saved_pixel_bounds

    captioner = Captioner.from_pretrained(lively_model)
    assert saved_pixel_bounds(lively_model) == (captioner.min_pixels, captioner.max_pixels)
