"""Calibration and parity image sets.

A set is read from a folder of images (recursive: jpg, png, bmp, webp, tiff), a video file (frames,
decoded with PyAV, OpenCV or imageio, whichever is installed; animated GIFs with Pillow), ``.npy`` /
``.npz`` arrays (uint8 images (N, H, W, 3) or already-preprocessed float tensors (N, 3, H, W)), or
a list file naming one image path per line (relative to the list file; ``#`` starts a comment).
Without a source, the photographs bundled in ``calib/`` are used. Sampling is seeded; the set's hash
(over the items' own SHA-256 digests, in order) goes into the manifest and keys calibration caches.
Images are preprocessed with the model's own preprocessing (the manifest's, for a bundle).

int8 keeps calibration and the parity gate apart (:func:`load_image_sets`): a gate scored on the images
the activation ranges came from is in-sample and flatters the quantized model. Without ``--calib`` it
calibrates on the generated images in ``calib/generated/`` (scripts/make_calib_images.py) and gates on
the photographs; with ``--calib`` every 4th item of the set (every 2nd below 8 items) is held out for
the gate and the rest calibrate. Both sets' hashes go into the manifest.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from edgekit.errors import UsageError
from edgekit.preprocess import Preprocess

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif"}
ARRAY_SUFFIXES = {".npy", ".npz"}
LIST_SUFFIXES = {".txt", ".lst"}


@dataclass
class CalibrationSet:
    """Preprocessed model inputs plus where they came from."""

    inputs: list[np.ndarray]  # each float32 (1, C, H, W)
    names: list[str]
    source: str
    sha256: str
    images: list[np.ndarray] = field(default_factory=list)  # uint8 RGB originals, when the source had images
    item_sha256: list[str] = field(default_factory=list)  # each item's own digest, in order

    def __len__(self) -> int:
        return len(self.inputs)

    def describe(self) -> dict:
        return {"source": self.source, "count": len(self), "sha256": self.sha256, "names": self.names}

    def subset(self, indices: list[int], source: str) -> CalibrationSet:
        """The items at ``indices`` (in order), hashed like a set read on its own."""
        digests = [self.item_sha256[i] for i in indices]
        return CalibrationSet([self.inputs[i] for i in indices], [self.names[i] for i in indices], source,
                              _set_digest(digests),
                              [self.images[i] for i in indices] if len(self.images) == len(self.inputs) else [], digests)


PARITY_EVERY = 4  # int8 with --calib: every 4th item is held out for the parity gate...
PARITY_EVERY_SMALL = 2  # ...every 2nd when the set has fewer than 8 items, so the gate sees more than one


@dataclass
class ImageSets:
    """The images an export uses: ``parity`` for the gate; ``calibration`` (int8 only) disjoint from it."""

    parity: CalibrationSet
    calibration: CalibrationSet | None = None
    split: str = ""  # how the two were separated, for the manifest

    def describe(self) -> dict:
        """The parity set's manifest entry, with the calibration set it was kept apart from."""
        out = self.parity.describe()
        if self.calibration is not None:
            out.update(disjoint_from_calibration=True, calibration_sha256=self.calibration.sha256, split=self.split)
        return out


def load_image_sets(source: str | Path | None, preprocess: Preprocess, size: int | None = None,
                    int8: bool = False, seed: int = 0) -> ImageSets:
    """The parity set, and for int8 a calibration set that shares no image with it (module doc).

    size: as :func:`load_calibration`; without a source it samples each of the two default sets.
    """
    if not int8:
        return ImageSets(load_calibration(source, preprocess, size, seed))
    if source is None:
        calibration = load_calibration(generated_images_dir(), preprocess, size, seed)
        parity = load_calibration(None, preprocess, size, seed)
        return ImageSets(parity, calibration, "calibration on the generated images (calib/generated), "
                                              "parity on the bundled photographs")
    full = load_calibration(source, preprocess, size, seed)
    if len(full) < 2:
        raise UsageError(f"int8 needs at least 2 images in --calib ({full.source} gave {len(full)}): one part "
                         f"calibrates, the other checks parity on images calibration never saw; add images or "
                         f"raise --calib-size")
    every = PARITY_EVERY if len(full) >= 8 else PARITY_EVERY_SMALL
    nth = {2: "2nd", 4: "4th"}[every]
    held = [i for i in range(len(full)) if i % every == every - 1]
    rest = [i for i in range(len(full)) if i % every != every - 1]
    return ImageSets(full.subset(held, f"{full.source} (every {nth} item, held out)"),
                     full.subset(rest, f"{full.source} (all but every {nth} item)"),
                     f"every {nth} item of --calib held out for the parity gate, the rest calibrate")


def _set_digest(item_digests: list[str]) -> str:
    return hashlib.sha256("".join(item_digests).encode()).hexdigest()


def bundled_images_dir() -> Path:
    return Path(str(resources.files("edgekit.calib_data") / "images"))


def generated_images_dir() -> Path:
    return Path(str(resources.files("edgekit.calib_data") / "generated"))


def load_calibration(source: str | Path | None, preprocess: Preprocess, size: int | None = None,
                     seed: int = 0) -> CalibrationSet:
    """Read a calibration / parity set and apply the model's preprocessing.

    size: sample this many items (seeded) when the source has more; None keeps all.
    """
    path = Path(source) if source is not None else bundled_images_dir()
    if not path.exists():
        raise UsageError(f"calibration source {path} does not exist; pass --calib with an image folder, video, .npy/.npz or list file")
    if size is not None and size <= 0:
        raise UsageError(f"--calib-size must be positive, got {size}")
    if path.is_dir():
        items = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not items:
            raise UsageError(f"calibration folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); add some or pass another --calib")
        return _from_image_paths(items, path, preprocess, size, seed)
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return _from_image_paths([path], path, preprocess, size, seed)
    if suffix in LIST_SUFFIXES:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read list file {path}: {e.__class__.__name__}") from None
        lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
        items = [(path.parent / ln) if not Path(ln).is_absolute() else Path(ln) for ln in lines if ln]
        missing = [str(p) for p in items if not p.is_file()]
        if missing:
            raise UsageError(f"list file {path} names {len(missing)} missing image(s), first: {missing[0]}")
        if not items:
            raise UsageError(f"list file {path} names no images (one image path per line)")
        other = [p for p in items if p.suffix.lower() not in IMAGE_SUFFIXES]
        if other:
            raise UsageError(f"list file {path} names {other[0]}, which is not an image "
                             f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        return _from_image_paths(items, path, preprocess, size, seed)
    if suffix in ARRAY_SUFFIXES:
        return _from_arrays(path, preprocess, size, seed)
    if suffix in VIDEO_SUFFIXES:
        return _from_video(path, preprocess, size, seed)
    raise UsageError(f"cannot read calibration source {path}: expected a folder, an image, a video, .npy/.npz or a .txt list")


def _sample(n: int, size: int | None, seed: int) -> list[int]:
    if size is None or size >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), size))


def read_image(path: Path) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); a clear error when it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(f"cannot read image {path}: {e.__class__.__name__}; remove it or pass another --calib") from None


def _from_image_paths(paths: list[Path], source: Path, preprocess: Preprocess, size: int | None,
                      seed: int) -> CalibrationSet:
    chosen = [paths[i] for i in _sample(len(paths), size, seed)]
    digests, images, inputs = [], [], []
    for p in chosen:
        digests.append(hashlib.sha256(p.read_bytes()).hexdigest())
        image = read_image(p)
        images.append(image)
        inputs.append(preprocess(image))
    return CalibrationSet(inputs, [p.name for p in chosen], str(source), _set_digest(digests), images, digests)


def _check_tensor(x: np.ndarray, preprocess: Preprocess, where: str) -> np.ndarray:
    h, w = preprocess.size
    if x.ndim == 3:
        x = x[None]
    if x.shape[1:] != (3, h, w):
        raise UsageError(f"{where}: tensor of shape {tuple(x.shape)} does not fit the model input (N, 3, {h}, {w})")
    return x.astype(np.float32)


def _from_arrays(path: Path, preprocess: Preprocess, size: int | None, seed: int) -> CalibrationSet:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    arrays = [data[k] for k in data.files] if isinstance(data, np.lib.npyio.NpzFile) else [data]
    for arr in arrays:
        if arr.ndim not in (3, 4):
            raise UsageError(f"{path}: arrays must be uint8 images (N, H, W, 3) or float tensors (N, 3, H, W), "
                             f"got shape {tuple(arr.shape)}")
    stacked = [a for arr in arrays for a in (arr if arr.ndim == 4 else arr[None])]
    if not stacked:
        raise UsageError(f"{path} holds no arrays (an empty set)")
    idx = _sample(len(stacked), size, seed)
    digests, images, inputs = [], [], []
    for i in idx:
        a = np.ascontiguousarray(stacked[i])
        digests.append(hashlib.sha256(a.tobytes()).hexdigest())
        if a.dtype == np.uint8 and a.ndim == 3 and a.shape[-1] == 3:
            images.append(a)
            inputs.append(preprocess(a))
        elif a.dtype == np.uint8:
            raise UsageError(f"{path}: uint8 arrays are read as RGB images (N, H, W, 3), got {tuple(a.shape)} per "
                             f"item; transpose channel-first images to channel-last")
        elif np.issubdtype(a.dtype, np.floating):
            if not np.isfinite(a).all():
                raise UsageError(f"{path}[{i}] holds NaN or infinite values")
            inputs.append(_check_tensor(a, preprocess, str(path)))
        else:
            raise UsageError(f"{path}: arrays must be uint8 images (N, H, W, 3) or float tensors (N, 3, H, W), got {a.dtype} {a.shape}")
    return CalibrationSet(inputs, [f"{path.name}[{i}]" for i in idx], str(path), _set_digest(digests), images, digests)


def _from_video(path: Path, preprocess: Preprocess, size: int | None, seed: int) -> CalibrationSet:
    """Frames of a video, sampled with a seeded reservoir so a long video is never held in memory."""
    rng = random.Random(seed)
    kept: list[tuple[int, np.ndarray]] = []
    n = 0
    try:
        for n, frame in enumerate(_decode_frames(path), 1):
            if size is None or len(kept) < size:
                kept.append((n - 1, frame))
            else:
                j = rng.randrange(n)
                if j < size:
                    kept[j] = (n - 1, frame)
    except UsageError:
        raise
    except Exception as e:  # decoders raise many kinds on damaged files
        raise UsageError(f"cannot decode video {path}: {e.__class__.__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None
    if not kept:
        raise UsageError(f"video {path} has no frames (or none could be decoded)")
    kept.sort(key=lambda t: t[0])
    digests, images, inputs = [], [], []
    for _, f in kept:
        f = np.ascontiguousarray(f[..., :3].astype(np.uint8))
        digests.append(hashlib.sha256(f.tobytes()).hexdigest())
        images.append(f)
        inputs.append(preprocess(f))
    return CalibrationSet(inputs, [f"{path.name}#{i}" for i, _ in kept], str(path), _set_digest(digests), images,
                          digests)


def video_decoder() -> str | None:
    """The first installed video decoder edgekit can use: "pyav", "opencv", "imageio", or None."""
    import importlib.util

    for module, name in (("av", "pyav"), ("cv2", "opencv"), ("imageio", "imageio")):
        if importlib.util.find_spec(module) is not None:
            return name
    return None


def _decode_frames(path: Path):
    """Yield uint8 RGB (H, W, 3) frames."""
    if path.suffix.lower() == ".gif":  # Pillow decodes animated GIFs: no video decoder needed
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            for frame in ImageSequence.Iterator(im):
                yield np.asarray(frame.convert("RGB"))
        return
    decoder = video_decoder()
    if decoder is None:
        raise UsageError(f"reading video {path} needs a video decoder: pip install av (or opencv-python-headless, "
                         f"or imageio[pyav]); or extract frames into a folder")
    if decoder == "pyav":
        import av

        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UsageError(f"{path} has no video stream")
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
    elif decoder == "opencv":
        import cv2

        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise UsageError(f"cannot open video {path} with OpenCV")
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                yield frame[..., ::-1]  # OpenCV decodes BGR
        finally:
            cap.release()
    else:
        import imageio.v3 as iio

        for frame in iio.imiter(path):
            yield np.asarray(frame)
