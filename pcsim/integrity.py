"""Seals on pcsim's HDF5 files: a SHA-256 digest of every byte, checked before HDF5 reads one.

Every file pcsim writes (results, checkpoints, sweep results) is created with a 512-byte HDF5
*user block*, a region at the start of the file that the HDF5 library skips (the superblock
then sits at offset 512; see the HDF5 File Format Specification, "Disk Format: Level 0A -
Format Signature and Superblock", and ``h5py.File(..., userblock_size=512)``). After the file
is complete its user block receives a seal::

    PCSIM-SEAL 1\\n
    sha256 <64 hex digits of bytes 512..end>\\n
    size <number of bytes after the user block>\\n
    (NUL padding to 512 bytes)

:func:`verify` recomputes the digest before the file is opened with h5py, so any altered,
truncated or extended byte is refused with one line instead of being parsed (a damaged HDF5
structure can make the library raise, return altered values, or loop). Files without a user
block (written by pcsim before seals existed, or by other programs) are read with an
:class:`UnsealedFileWarning`; their content cannot be verified.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

USERBLOCK = 512  # bytes; HDF5 user blocks are 0 or a power of two >= 512
MAGIC = b"PCSIM-SEAL 1\n"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # HDF5 File Format Specification, format signature
_CHUNK = 1 << 20


class SealError(ValueError):
    """A sealed file whose bytes are not the ones written (one-line message)."""


class UnsealedFileWarning(UserWarning):
    """A file without a seal (older pcsim or another program): read unverified."""


def _digest(path: str | Path, offset: int) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def seal(path: str | Path) -> None:
    """Write the seal into the (empty) user block of a closed HDF5 file created with
    ``userblock_size=USERBLOCK``."""
    digest, n = _digest(path, USERBLOCK)
    block = MAGIC + f"sha256 {digest}\nsize {n}\n".encode()
    with open(path, "r+b") as f:
        f.write(block.ljust(USERBLOCK, b"\0"))


def verify(path: str | Path, name: str | None = None, kind: str = "file") -> bool:
    """Check the seal of ``path`` before it is parsed. True: sealed and intact. False: a file
    without a seal (plain HDF5; see :func:`warn_unsealed`). Raises :class:`SealError`
    naming the file when the seal is damaged or the content differs from what was written;
    OSError when the file cannot be read."""
    name = name or Path(path).name
    with open(path, "rb") as f:
        head = f.read(USERBLOCK)
    if head.startswith(HDF5_SIGNATURE):
        return False
    if not head.startswith(MAGIC):
        raise SealError(
            f"{name}: not a readable HDF5 file (no pcsim seal and no HDF5 signature: another "
            f"format, or a {kind} whose header is damaged)"
        )
    try:
        lines = head[len(MAGIC) :].split(b"\0", 1)[0].decode("ascii").split("\n")
        want_digest = lines[0].removeprefix("sha256 ")
        want_size = int(lines[1].removeprefix("size "))
        if len(want_digest) != 64 or not lines[0].startswith("sha256 "):
            raise ValueError
    except (UnicodeDecodeError, ValueError, IndexError):
        raise SealError(
            f"{name}: the {kind}'s seal is damaged; the file cannot be trusted"
        ) from None
    size = os.path.getsize(path) - USERBLOCK
    if size != want_size:
        raise SealError(
            f"{name}: {kind} is {size} bytes long but was written with {want_size} "
            "(truncated or extended); restore it from a copy"
        )
    digest, _ = _digest(path, USERBLOCK)
    if digest != want_digest:
        raise SealError(
            f"{name}: {kind} content does not match its SHA-256 checksum (altered or damaged "
            "on disk); restore it from a copy"
        )
    return True


def warn_unsealed(name: str, kind: str) -> None:
    """Issue the :class:`UnsealedFileWarning` for a pcsim file of an accepted format that
    carries no seal."""
    warnings.warn(
        f"{name}: this {kind} has no checksum (written before pcsim sealed its files, or by "
        "another program); its content is read unverified",
        UnsealedFileWarning,
        stacklevel=3,
    )
