"""Calibration sets: every source kind, the model's preprocessing, seeded sampling, the hash, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekit.calib import bundled_images_dir, generated_images_dir, load_calibration, load_image_sets
from edgekit.errors import UsageError
from edgekit.preprocess import Preprocess

PRE = Preprocess(size=(32, 48), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def _image(seed: int, h: int = 40, w: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    """Eight images in five formats, two levels deep, plus files that are not images."""
    root = tmp_path / "frames"
    (root / "a" / "b").mkdir(parents=True)
    for i, (sub, ext) in enumerate([("", "png"), ("", "jpg"), ("a", "bmp"), ("a", "webp"), ("a/b", "tiff"),
                                    ("a/b", "png"), ("", "jpeg"), ("a", "PNG")]):
        Image.fromarray(_image(i)).save(root / sub / f"img{i}.{ext}")
    (root / "notes.txt").write_text("not an image")
    (root / "a" / "labels.json").write_text("{}")
    return root


def test_folder_is_recursive_and_reads_common_formats(folder):
    s = load_calibration(folder, PRE)
    assert len(s) == 8 and len(s.images) == 8
    assert sorted(s.names) == sorted(f"img{i}.{e}" for i, e in enumerate(
        ["png", "jpg", "bmp", "webp", "tiff", "png", "jpeg", "PNG"]))
    assert all(x.shape == (1, 3, 32, 48) and x.dtype == np.float32 for x in s.inputs)
    assert s.describe()["count"] == 8 and len(s.sha256) == 64


def test_model_preprocessing_is_applied(folder):
    s = load_calibration(folder, PRE)
    i = s.names.index("img0.png")
    expected = PRE(_image(0))  # resize to 32x48, /255, (x - 0.5) / 0.25, NCHW
    np.testing.assert_array_equal(s.inputs[i], expected)
    assert s.inputs[i].min() < -1.0 and s.inputs[i].max() > 1.0  # normalized, not [0, 1]


def test_seeded_sampling_and_hash(folder):
    a = load_calibration(folder, PRE, size=3, seed=0)
    b = load_calibration(folder, PRE, size=3, seed=0)
    c = load_calibration(folder, PRE, size=3, seed=1)
    full = load_calibration(folder, PRE)
    assert len(a) == 3 and a.names == b.names and a.sha256 == b.sha256
    assert c.names != a.names and c.sha256 != a.sha256  # another seed picks another subset (8 choose 3 = 56)
    assert full.sha256 != a.sha256
    assert len(load_calibration(folder, PRE, size=100)) == 8  # more than there are: all of them


def test_int8_sets_are_disjoint_by_a_fixed_rule(folder):
    """int8: every 4th item of --calib (every 2nd below 8) is held out for the parity gate; both hashes are
    those of the subsets read on their own, and no item is in both."""
    sets = load_image_sets(folder, PRE, int8=True)
    full = load_calibration(folder, PRE)
    assert sets.parity.names == [full.names[3], full.names[7]]
    assert sets.calibration.names == [n for i, n in enumerate(full.names) if i not in (3, 7)]
    assert not set(sets.parity.item_sha256) & set(sets.calibration.item_sha256)
    assert sets.parity.sha256 != sets.calibration.sha256 != full.sha256
    entry = sets.describe()
    assert entry["sha256"] == sets.parity.sha256 and entry["calibration_sha256"] == sets.calibration.sha256
    assert entry["disjoint_from_calibration"] is True and "every 4th" in entry["split"]
    small = load_image_sets(folder, PRE, size=5, int8=True)
    assert (len(small.calibration), len(small.parity)) == (3, 2)  # every 2nd
    assert load_image_sets(folder, PRE).calibration is None  # fp32: one set, no calibration
    with pytest.raises(UsageError, match="int8 needs at least 2 images"):
        load_image_sets(folder, PRE, size=1, int8=True)


def test_int8_default_calibrates_on_generated_images_and_gates_on_photographs():
    sets = load_image_sets(None, PRE, int8=True)
    assert sets.calibration.source == str(generated_images_dir()) and len(sets.calibration) == 8
    assert sets.parity.source == str(bundled_images_dir()) and len(sets.parity) == 6
    assert not set(sets.parity.item_sha256) & set(sets.calibration.item_sha256)


def test_generated_images_are_what_the_script_renders():
    """The committed renders are reproducible: scripts/make_calib_images.py gives the same pixels."""
    from scripts import make_calib_images as mk

    files = sorted(generated_images_dir().glob("*.png"))
    assert [f.name for f in files] == [mk.file_name(i) for i in range(mk.COUNT)]
    for i in (0, mk.COUNT - 1):
        np.testing.assert_array_equal(np.asarray(Image.open(files[i]).convert("RGB")), mk.render(seed=1000 + i))


def test_hash_changes_when_an_image_changes(folder):
    before = load_calibration(folder, PRE).sha256
    Image.fromarray(_image(99)).save(folder / "img0.png")
    assert load_calibration(folder, PRE).sha256 != before


def test_npy_uint8_images(tmp_path):
    images = np.stack([_image(i) for i in range(5)])
    np.save(tmp_path / "x.npy", images)
    s = load_calibration(tmp_path / "x.npy", PRE, size=2)
    assert len(s) == 2 and len(s.images) == 2 and s.names[0].startswith("x.npy[")
    np.testing.assert_array_equal(s.inputs[0], PRE(images[int(s.names[0][6:-1])]))


def test_npz_float_tensors_and_several_arrays(tmp_path):
    a = np.random.default_rng(0).standard_normal((3, 3, 32, 48)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((3, 32, 48)).astype(np.float32)  # one tensor without batch dim
    np.savez(tmp_path / "t.npz", a=a, b=b)
    s = load_calibration(tmp_path / "t.npz", PRE)
    assert len(s) == 4 and not s.images  # already preprocessed: used as they are
    np.testing.assert_array_equal(s.inputs[0], a[:1])
    np.testing.assert_array_equal(s.inputs[3], b[None])


def test_list_file_with_comments_and_relative_paths(folder, tmp_path):
    lst = tmp_path / "calib.txt"
    lst.write_text("# frames for calibration\nframes/img0.png\n\nframes/a/img2.bmp  # a comment\n"
                   f"{folder / 'a' / 'b' / 'img4.tiff'}\n")
    s = load_calibration(lst, PRE)
    assert s.names == ["img0.png", "img2.bmp", "img4.tiff"]


def test_animated_gif_frames(tmp_path):
    frames = [Image.fromarray(_image(i)) for i in range(6)]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=40)
    s = load_calibration(tmp_path / "clip.gif", PRE, size=4)
    assert len(s) == 4 and s.names == sorted(s.names, key=lambda n: int(n.split("#")[1]))
    assert s.sha256 == load_calibration(tmp_path / "clip.gif", PRE, size=4).sha256


def _write_mp4(path, n: int = 12):
    av = pytest.importorskip("av", reason="PyAV is the video decoder tested here (pip install av)")
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def test_video_frames_seeded_sample(tmp_path):
    _write_mp4(tmp_path / "clip.mp4")
    s = load_calibration(tmp_path / "clip.mp4", PRE, size=5, seed=3)
    idx = [int(n.split("#")[1]) for n in s.names]
    assert len(s) == 5 and idx == sorted(idx) and max(idx) < 12
    assert load_calibration(tmp_path / "clip.mp4", PRE, size=5, seed=3).names == s.names
    assert len(load_calibration(tmp_path / "clip.mp4", PRE)) == 12
    # frames decode to the gray level they were written with (mpeg4 is lossy: within a few levels)
    first = s.images[0].astype(int)
    assert abs(first.mean() - idx[0] * 20) < 6


# --- bad input: one clear UsageError each ----------------------------------------------------------------

def _fails(source, match, **kw):
    with pytest.raises(UsageError, match=match):
        load_calibration(source, PRE, **kw)


def test_missing_source(tmp_path):
    _fails(tmp_path / "nope", "does not exist")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    _fails(tmp_path / "empty", "holds no images")


def test_unreadable_image(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "broken.png").write_bytes(b"\x89PNG not really")
    _fails(tmp_path / "d", "cannot read image .*broken.png")


def test_bad_calib_size(folder):
    _fails(folder, "--calib-size must be positive", size=0)


def test_unsupported_file(tmp_path):
    (tmp_path / "x.csv").write_text("1,2")
    _fails(tmp_path / "x.csv", "cannot read calibration source")


def test_list_file_errors(tmp_path):
    (tmp_path / "missing.txt").write_text("a.png\n")
    _fails(tmp_path / "missing.txt", "missing image")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    _fails(tmp_path / "empty.txt", "names no images")
    (tmp_path / "x.csv").write_text("1")
    (tmp_path / "other.txt").write_text("x.csv\n")
    _fails(tmp_path / "other.txt", "not an image")


@pytest.mark.parametrize("array,match", [
    (np.zeros((2, 3, 16, 16), np.float32), r"does not fit the model input \(N, 3, 32, 48\)"),  # wrong size
    (np.zeros((2, 3, 32, 48), np.uint8), "transpose channel-first"),  # uint8 but channel-first
    (np.zeros((4, 4), np.float32), "got shape"),  # not images at all
    (np.full((1, 3, 32, 48), np.nan, np.float32), "NaN"),
    (np.zeros((2, 32, 48, 3), np.int32), "must be uint8 images"),
])
def test_wrongly_shaped_arrays(tmp_path, array, match):
    np.save(tmp_path / "bad.npy", array)
    _fails(tmp_path / "bad.npy", match)


def test_empty_npz_and_corrupt_npy(tmp_path):
    np.savez(tmp_path / "e.npz")
    _fails(tmp_path / "e.npz", "holds no arrays")
    (tmp_path / "c.npy").write_bytes(b"garbage")
    _fails(tmp_path / "c.npy", "cannot read")


def test_video_without_decoder(tmp_path, monkeypatch):
    import edgekit.calib as calib

    (tmp_path / "v.mp4").write_bytes(b"\x00" * 64)
    monkeypatch.setattr(calib, "video_decoder", lambda: None)
    _fails(tmp_path / "v.mp4", "needs a video decoder: pip install av")


def test_corrupt_video(tmp_path):
    pytest.importorskip("av", reason="PyAV is the video decoder tested here (pip install av)")
    (tmp_path / "v.mp4").write_bytes(b"\x00" * 64)
    _fails(tmp_path / "v.mp4", "cannot decode video")
