"""`captioner caption` reports progress after every batch (done/total, rate, ETA), not only at the end."""

from PIL import Image

from captioner.caption import main


def test_caption_prints_progress_per_batch(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for i in range(3):
        Image.new("RGB", (32, 32), (40 * i, 80, 120)).save(tmp_path / f"{i}.png")
    out = tmp_path / "c.jsonl"
    assert main([str(tmp_path), "--out", str(out), "--batch_size", "2", "--max_new_tokens", "2", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "captioned 2/3: " in err and "captioned 3/3: " in err and "caption/s, ETA " in err
    assert len(out.read_text().splitlines()) == 3
