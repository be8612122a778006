"""Your own images: a folder or a zip with one sub-folder per identity; and AT&T/ORL folders.

Layout: ``root/<identity>/<image>`` (deeper sub-folders are merged into their identity). A zip
may wrap that in one top folder (``faces.zip: faces/alice/1.jpg``), which is looked through.
Zips are read member by member in memory, never extracted, and guarded: a member path with
``..`` or an absolute path is refused, as is an archive that declares or actually expands past
``lab.core.limits.MAX_ARCHIVE_EXPANDED_BYTES`` or holds more than ``MAX_ARCHIVE_MEMBERS`` members.

Files that are not images, truncated or corrupt are skipped and named in the LoadReport. An
identity with a single image is kept as an impostor-only identity (it has no genuine pair, but
it is still a useful impostor) and said so in the report's notes.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from lab.core import limits
from lab.data.errors import DatasetError
from lab.data.faceset import DataSource, FaceSet, LoadReport
from lab.data.images import IMAGE_SUFFIXES, UnreadableImageError, decode_image, to_square

ATT_SOURCE = DataSource(
    name="AT&T / ORL faces",
    citation="F. Samaria and A. Harter, 'Parameterisation of a stochastic model for human face "
    "identification', 2nd IEEE Workshop on Applications of Computer Vision, 1994. AT&T "
    "Laboratories Cambridge (Olivetti Research Laboratory). Used by Chopra, Hadsell & LeCun 2005.",
    licence="Free for research use; credit the Olivetti Research Laboratory / AT&T Laboratories "
    "Cambridge. Do not redistribute with the code.",
    offline=True,
    url="https://cam-orl.co.uk/facedatabase.html",
)

FOLDER_SOURCE = DataSource(
    name="Your images",
    citation="Images supplied by the user (one sub-folder per identity).",
    licence="Whatever licence the images carry; they stay on this machine.",
    offline=True,
)

_JUNK_NAMES = {"thumbs.db", "desktop.ini", ".ds_store"}


def natural_key(text: str) -> list:
    """Sort key so that s2 comes before s10 and 2.pgm before 10.pgm."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


@dataclass
class _Member:
    path: PurePosixPath  # relative to the dataset root
    size: int  # declared size in bytes
    read: Callable[[], bytes]


def _is_junk(path: PurePosixPath) -> bool:
    """System files that never hold a face (macOS resource forks, thumbnails, hidden files)."""
    return any(part.startswith(".") or part == "__MACOSX" for part in path.parts) or (
        path.name.lower() in _JUNK_NAMES)


def _safe_member_name(name: str) -> PurePosixPath:
    """Refuse absolute paths and `..` in a zip member name (zip-slip)."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        raise DatasetError(f"zip refused: member '{name}' has an absolute path; rebuild the zip "
                           "with paths relative to its top folder")
    if any(part == ".." for part in clean.split("/")):
        raise DatasetError(f"zip refused: member '{name}' points outside the archive ('..'); "
                           "rebuild the zip without parent-directory paths")
    return PurePosixPath(clean)


class _ByteBudget:
    """Counts bytes actually read, so a zip that lies about its sizes is still stopped."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.used, self.what = limit, 0, what

    def take(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise DatasetError(f"{self.what} refused: it expands past the limit of "
                               f"{self.limit:,} bytes (lab.core.limits.MAX_ARCHIVE_EXPANDED_BYTES)")


def _zip_members(archive: zipfile.ZipFile, budget: _ByteBudget) -> list[_Member]:
    infos = archive.infolist()
    if len(infos) > limits.MAX_ARCHIVE_MEMBERS:
        raise DatasetError(f"zip refused: {len(infos):,} members, the limit is "
                           f"{limits.MAX_ARCHIVE_MEMBERS:,} (lab.core.limits.MAX_ARCHIVE_MEMBERS)")
    declared = 0
    members = []
    for info in infos:
        path = _safe_member_name(info.filename)
        declared += max(info.file_size, 0)
        if info.is_dir():
            continue
        members.append(_Member(path, info.file_size, _zip_reader(archive, info, budget)))
    if declared > limits.MAX_ARCHIVE_EXPANDED_BYTES:
        raise DatasetError(f"zip refused: it declares {declared:,} bytes once expanded, the limit "
                           f"is {limits.MAX_ARCHIVE_EXPANDED_BYTES:,} "
                           "(lab.core.limits.MAX_ARCHIVE_EXPANDED_BYTES)")
    return members


def _zip_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                budget: _ByteBudget) -> Callable[[], bytes]:
    def read() -> bytes:
        chunks = []
        try:
            with archive.open(info) as handle:
                while block := handle.read(1 << 20):
                    budget.take(len(block))
                    chunks.append(block)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
            raise UnreadableImageError(f"corrupt zip member ({err})") from err
        except (RuntimeError, NotImplementedError) as err:  # encrypted, unknown compression
            raise UnreadableImageError(f"cannot read zip member ({err})") from err
        return b"".join(chunks)

    return read


def _directory_members(root: Path, budget: _ByteBudget) -> list[_Member]:
    members = []
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow linked folders
        dirnames.sort(key=natural_key)
        for filename in filenames:
            full = Path(dirpath) / filename
            if not full.is_file():
                continue
            rel = PurePosixPath(full.relative_to(root).as_posix())
            members.append(_Member(rel, full.stat().st_size, _file_reader(full, budget)))
            if len(members) > limits.MAX_ARCHIVE_MEMBERS:
                raise DatasetError(f"folder refused: more than {limits.MAX_ARCHIVE_MEMBERS:,} "
                                   "files (lab.core.limits.MAX_ARCHIVE_MEMBERS)")
    return members


def _file_reader(path: Path, budget: _ByteBudget) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            data = path.read_bytes()
        except OSError as err:
            raise UnreadableImageError(f"cannot read ({err.strerror or err})") from err
        budget.take(len(data))
        return data

    return read


def _strip_wrapper(paths: list[PurePosixPath]) -> int:
    """How many leading folders every file shares while identities are still one level deeper
    (``faces/alice/1.jpg`` -> identities start at depth 1)."""
    depth = 0
    while paths and all(len(p.parts) >= depth + 3 for p in paths):
        if len({p.parts[depth] for p in paths}) != 1:
            break
        depth += 1
    return depth


def _open_members(source: str | os.PathLike | bytes, budget: _ByteBudget
                  ) -> tuple[list[_Member], zipfile.ZipFile | None, str]:
    if isinstance(source, bytes | bytearray):
        if len(source) > limits.MAX_ARCHIVE_BYTES:
            raise DatasetError(f"zip refused: {len(source):,} bytes, the limit is "
                               f"{limits.MAX_ARCHIVE_BYTES:,} (lab.core.limits.MAX_ARCHIVE_BYTES)")
        return _open_zip(io.BytesIO(bytes(source)), budget, "uploaded zip")
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(f"{path} does not exist; give a folder with one sub-folder per "
                           "identity, or a .zip of such a folder")
    if path.is_dir():
        return _directory_members(path, budget), None, str(path)
    if path.stat().st_size > limits.MAX_ARCHIVE_BYTES:
        raise DatasetError(f"zip refused: {path.name} is {path.stat().st_size:,} bytes, the limit "
                           f"is {limits.MAX_ARCHIVE_BYTES:,} (lab.core.limits.MAX_ARCHIVE_BYTES)")
    if path.suffix.lower() != ".zip" and not zipfile.is_zipfile(path):
        raise DatasetError(f"{path} is neither a folder nor a zip archive; give a folder with one "
                           "sub-folder per identity, or a .zip of such a folder")
    return _open_zip(path, budget, path.name)


def _open_zip(file, budget: _ByteBudget, label: str
              ) -> tuple[list[_Member], zipfile.ZipFile, str]:
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as err:
        raise DatasetError(f"{label} is not a readable zip archive ({err}); re-create it") from err
    try:
        return _zip_members(archive, budget), archive, label
    except BaseException:
        archive.close()
        raise


def _iter_identities(members: list[_Member], report: LoadReport
                     ) -> Iterator[tuple[str, list[_Member]]]:
    """Group members by identity folder, naming what is ignored or skipped."""
    junk = [m for m in members if _is_junk(m.path)]
    if junk:
        report.notes.append(f"ignored {len(junk)} system file(s) such as {junk[0].path}")
    kept = [m for m in members if not _is_junk(m.path)]
    depth = _strip_wrapper([m.path for m in kept if m.path.suffix.lower() in IMAGE_SUFFIXES])
    groups: dict[str, list[_Member]] = {}
    loose = []
    for member in kept:
        parts = member.path.parts[depth:]
        if len(parts) >= 2:
            groups.setdefault(parts[0], []).append(member)
        elif member.path.suffix.lower() in IMAGE_SUFFIXES:
            report.skipped.append((str(member.path), "image not inside an identity sub-folder"))
        else:
            loose.append(str(member.path))  # README, LICENSE ... beside the identity folders
    if loose:
        report.notes.append(f"ignored {len(loose)} non-image file(s) beside the identity "
                            f"folders: {', '.join(loose[:3])}")
    for name in sorted(groups, key=natural_key):
        yield name, sorted(groups[name], key=lambda m: natural_key(str(m.path)))


def load_image_folder(source: str | os.PathLike | bytes, *, image_size: int | None = 32,
                      channels: int | None = None, data_source: DataSource = FOLDER_SOURCE
                      ) -> FaceSet:
    """Load a folder, a .zip path or zip bytes with one sub-folder per identity.

    channels None: 3 when any image has colour, else 1. image_size None keeps the native size
    (all images must then agree). Raises DatasetError for anything that cannot make a dataset.
    """
    if image_size is not None and not 8 <= image_size <= limits.MAX_IMAGE_SIZE:
        raise DatasetError(f"image_size must be between 8 and {limits.MAX_IMAGE_SIZE}, "
                           f"got {image_size}")
    if channels not in (None, 1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels}")
    budget = _ByteBudget(limits.MAX_ARCHIVE_EXPANDED_BYTES, "dataset")
    members, archive, label = _open_members(source, budget)
    report = LoadReport()
    decoded: list[tuple[str, list[np.ndarray]]] = []
    try:
        for name, group in _iter_identities(members, report):
            arrays = []
            for member in group:
                if member.size > limits.MAX_UPLOAD_BYTES:
                    report.skipped.append((str(member.path), f"file too large ({member.size:,} "
                                           f"bytes, limit {limits.MAX_UPLOAD_BYTES:,})"))
                    continue
                try:
                    arrays.append(decode_image(member.read()))
                except UnreadableImageError as err:
                    report.skipped.append((str(member.path), str(err)))
            decoded.append((name, arrays))
    finally:
        if archive is not None:
            archive.close()
    return _assemble(decoded, report, label, image_size, channels, data_source)


def _is_colour(arr: np.ndarray) -> bool:
    """True for a real colour image; grey saved through a lossy RGB codec (webp, jpeg) drifts a
    level or two between channels and still counts as grey."""
    if arr.ndim == 2:
        return False
    channels = arr.astype(np.int16)
    drift = (np.abs(channels[..., 0] - channels[..., 1])
             + np.abs(channels[..., 1] - channels[..., 2]))
    return float(drift.mean()) > 3.0


def _assemble(decoded: list[tuple[str, list[np.ndarray]]], report: LoadReport, label: str,
              image_size: int | None, channels: int | None, data_source: DataSource) -> FaceSet:
    kept = []
    for name, arrays in decoded:
        if not arrays:
            report.dropped_identities.append((name, "no readable images"))
        else:
            kept.append((name, arrays))
    if len(kept) < limits.MIN_IDENTITIES:
        found = ", ".join(repr(n) for n, _ in kept) or "none"
        raise DatasetError(f"{label}: need at least {limits.MIN_IDENTITIES} identities (one "
                           f"sub-folder of images per person), found {len(kept)} ({found}). "
                           "Put each person's images in their own sub-folder.")
    if len(kept) > limits.MAX_IDENTITIES:
        raise DatasetError(f"{label}: {len(kept):,} identities, the limit is "
                           f"{limits.MAX_IDENTITIES:,} (lab.core.limits.MAX_IDENTITIES)")
    singles = [name for name, arrays in kept if len(arrays) == 1]
    if len(singles) == len(kept):
        raise DatasetError(f"{label}: every identity has a single image, so there is no genuine "
                           "pair to learn from; add at least 2 images for some identities")
    if singles:
        shown = ", ".join(singles[:5]) + (" ..." if len(singles) > 5 else "")
        report.notes.append(f"{len(singles)} identit(ies) with a single image kept as "
                            f"impostor-only (no genuine pair): {shown}")
    if channels is None:
        channels = 3 if any(_is_colour(a) for _, arrays in kept for a in arrays) else 1
    if image_size is None:
        shapes = {a.shape[:2] for _, arrays in kept for a in arrays}
        if len(shapes) > 1:
            raise DatasetError(f"{label}: images have {len(shapes)} different sizes "
                               f"(e.g. {sorted(shapes)[:3]}); choose an image size to resize to")
    images, labels = [], []
    for index, (_, arrays) in enumerate(kept):
        for arr in arrays:
            images.append(to_square(arr, image_size, channels))
            labels.append(index)
    names = [name for name, _ in kept]
    tensor = torch.from_numpy(np.stack(images))
    return FaceSet(tensor, torch.tensor(labels, dtype=torch.long), names, data_source, report)


def load_att(data_dir: str | os.PathLike, *, image_size: int | None = 32) -> FaceSet:
    """AT&T / ORL faces from a folder in the ORL layout (s1..s40/1.pgm..10.pgm), grey."""
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DatasetError(f"AT&T faces folder {path} does not exist. Put the ORL folder "
                           "(s1..s40 with 10 .pgm each) there, set METRIC_LAB_ATT, or use the "
                           "'olivetti' dataset, the same faces downloaded by scikit-learn.")
    faceset = load_image_folder(path, image_size=image_size, channels=1, data_source=ATT_SOURCE)
    if not any(re.fullmatch(r"s\d+", name) for name in faceset.names):
        faceset.report.notes.append(f"{path} does not use the ORL names s1..s40; loaded its "
                                    "sub-folders as identities anyway")
    return faceset
