"""Where the photos a listing file names come from: files beside it, or a zip uploaded with it.

A row's `image` is a name; a photo source turns it into what `dram.data.images.load_image` reads (a
path or the photo's bytes) or says, in words fit for the person who wrote the file, why it cannot.
A zip is read in place, never unpacked: no name in it can reach outside it, and its photos reach
the model as bytes.
"""
from __future__ import annotations

import zipfile
import zlib
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Protocol

from dram.errors import DramInputError

MAX_ZIP_BYTES = 300 * 1024 * 1024  # what the photos of one zip may add up to, unpacked


class PhotoBytes(bytes):
    """A photo's bytes with the name it came by (its path in a zip, its hash in the store), so that a photo
    that cannot be read is named in the message (`dram.data.images.load_image` reads `name`)."""

    name: str

    def __new__(cls, data: bytes, name: str) -> PhotoBytes:
        photo = super().__new__(cls, data)
        photo.name = name
        return photo

    def __reduce__(self) -> tuple:  # pickled (multiprocessing, Ray) with its name
        return PhotoBytes, (bytes(self), self.name)


def photo_label(photo: Path | bytes) -> str:
    """A photo as a log line names it: its path, or the name its bytes came by."""
    if isinstance(photo, bytes):
        return getattr(photo, "name", None) or f"a photo of {len(photo)} bytes"
    return str(photo)


class PhotoNotFound(ValueError):
    """A row names a photo its source does not have; the message is the reason the row is skipped."""


class PhotoSource(Protocol):
    def find(self, name: str) -> Path | bytes:
        """The photo `name` as a path or its bytes; raises `PhotoNotFound` saying why not."""


class PhotoFolder:
    """Photos as files, each named by its path relative to `folder` (or an absolute path)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def find(self, name: str) -> Path:
        path = (self.folder / name).resolve()
        if not path.is_file():
            raise PhotoNotFound(f"its photo {name!r} does not exist (looked for {path})")
        return path


class PhotoZip:
    """The photos of an uploaded zip, each by its path in the zip and, when no other photo shares it, by its
    base name. `PhotoZip(None)`: no zip came with the file, so a row naming a photo cannot have it.

    Names outside the zip ("../x.jpg", "/x.jpg") and macOS's `__MACOSX` entries are left out; a zip whose
    photos unpack to more than MAX_ZIP_BYTES is refused. Use it as a context manager: it keeps the zip open.
    """

    def __init__(self, path: Path | None) -> None:
        self.archive: zipfile.ZipFile | None = None
        self.members: dict[str, zipfile.ZipInfo] = {}
        self.shared_bases: set[str] = set()
        self._read: dict[str, PhotoBytes] = {}
        if path is not None:
            self._open(Path(path))

    def _open(self, path: Path) -> None:
        try:
            self.archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as err:
            raise DramInputError("The photo archive is not a valid zip file.") from err
        by_path: dict[str, zipfile.ZipInfo] = {}
        for info in self.archive.infolist():
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            if not info.is_dir() and parts and parts[0] not in ("/", "__MACOSX") and ".." not in parts:
                by_path["/".join(parts)] = info
        if sum(info.file_size for info in by_path.values()) > MAX_ZIP_BYTES:
            self.close()
            raise DramInputError(f"The photo zip unpacks to more than {MAX_ZIP_BYTES // 2**20} MB; "
                                 "upload smaller photos or fewer at a time.")
        bases = Counter(PurePosixPath(name).name for name in by_path)
        self.shared_bases = {base for base, n in bases.items() if n > 1}
        self.members = {**{PurePosixPath(n).name: i for n, i in by_path.items()
                           if PurePosixPath(n).name not in self.shared_bases}, **by_path}

    def find(self, name: str) -> PhotoBytes:
        if self.archive is None:
            raise PhotoNotFound(f"it names the photo {name!r} but no photo zip was uploaded")
        key = name.replace("\\", "/")
        info = self.members.get(key)
        if info is None and key in self.shared_bases:
            raise PhotoNotFound(f"its photo {name!r} is ambiguous: several photos in the zip have that name; "
                                "give its path in the zip instead")
        if info is None:
            raise PhotoNotFound(f"its photo {name!r} is not in the photo zip")
        if info.filename not in self._read:  # a photo several rows name is read once and shared
            try:
                self._read[info.filename] = PhotoBytes(self.archive.read(info), info.filename)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
                raise PhotoNotFound(f"its photo {name!r} is damaged in the zip ({err})") from err
        return self._read[info.filename]

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()

    def __enter__(self) -> PhotoZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
