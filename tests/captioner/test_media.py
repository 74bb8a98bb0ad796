import io

import numpy as np
import pytest
from PIL import Image

from captioner.media import MediaError, fit_image, is_fitted, load_image, load_video, smart_resize


def test_smart_resize_grid_and_bounds():
    assert smart_resize(64, 64) == (56, 56)
    h, w = smart_resize(4000, 3000, max_pixels=1000 * 784)
    assert h % 28 == 0 and w % 28 == 0 and h * w <= 1000 * 784
    h, w = smart_resize(10, 10, min_pixels=4 * 784)
    assert h * w >= 4 * 784
    with pytest.raises(MediaError, match="aspect ratio"):
        smart_resize(10, 2100)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "L", "1", "I;16", "I", "F"])
def test_fit_image_converts_every_mode(mode):
    image = Image.new("RGB", (40, 30), (200, 30, 30)).convert(mode)
    fitted = fit_image(image)
    assert fitted.mode == "RGB" and fitted.size == (56, 56) and is_fitted(fitted)


def test_alpha_on_white_and_16bit_scaled():
    clear = Image.new("RGBA", (28, 56), (0, 0, 0, 0))
    assert fit_image(clear).getpixel((5, 5)) == (255, 255, 255)
    deep = Image.fromarray(np.full((56, 28), 65535, dtype=np.uint16))
    assert fit_image(deep).getpixel((0, 0)) == (255, 255, 255)


def test_exif_transpose_and_idempotence():
    image = Image.new("RGB", (84, 56), "blue")
    exif = image.getexif()
    exif[0x0112] = 6  # rotated 90°: displayed as 56 wide, 84 high
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif.tobytes())
    fitted = fit_image(Image.open(io.BytesIO(buf.getvalue())))
    assert fitted.size == (56, 84)
    assert fit_image(fitted) is fitted  # an already-fitted image is returned untouched


def test_bad_files_name_the_culprit(tmp_path):
    with pytest.raises(MediaError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(MediaError, match="junk.png"):
        load_image(tmp_path / "junk.png")
    with pytest.raises(MediaError, match="junk.mp4"):
        (tmp_path / "junk.mp4").write_bytes(b"nope")
        load_video(tmp_path / "junk.mp4")


def test_video_frames(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):  # 2 s at 10 fps
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 10, dtype=np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    frames = load_video(path, fps=2.0, max_frames=32)
    assert len(frames) % 2 == 0 and 2 <= len(frames) <= 6 and frames[0].mode == "RGB"
