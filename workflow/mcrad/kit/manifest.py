"""sha256 manifests of a kit or a return: every member listed, any change, addition or removal refused."""
from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from mcrad.errors import McradError
from mcrad.files import file_sha256

MANIFEST = "manifest.json"


def members(folder: Path) -> list[str]:
    """Every file under `folder` (relative, '/'-separated, sorted), the manifest itself left out."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
                  and p.relative_to(folder).as_posix() != MANIFEST)


def build(folder: Path) -> dict[str, str]:
    """Write folder/manifest.json with the sha256 of every other file; return {member: sha256}."""
    files = {m: file_sha256(folder / m) for m in members(folder)}
    (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=1, sort_keys=True) + "\n")
    return files


def digest(files: dict[str, str]) -> str:
    """One hash for a whole manifest: the identity of a kit or a return."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def verify(folder: Path, what: str) -> dict[str, str]:
    """{member: sha256} of `folder` after checking every file against its manifest; raise naming each mismatch."""
    path = folder / MANIFEST
    if not path.is_file():
        raise McradError(f"{what}: no {MANIFEST}; it is not a kit or return made by mcrad. Fix: use the file as "
                         "exported, unmodified.")
    files = json.loads(path.read_text())["files"]
    present = set(members(folder))
    changed = sorted(m for m in files if m in present and file_sha256(folder / m) != files[m])
    problems = [f"{m}: changed (sha256 differs from the manifest)" for m in changed]
    problems += [f"{m}: listed in the manifest but missing" for m in sorted(set(files) - present)]
    problems += [f"{m}: not in the manifest (added after export)" for m in sorted(present - set(files))]
    if problems:
        raise McradError(f"{what} was modified after it was made, refused:\n  " + "\n  ".join(problems)
                         + "\nFix: ask for a fresh copy of the original file; never edit a kit or a return.")
    return files


def pack(folder: Path, out: Path) -> None:
    """A byte-stable tar.gz of `folder` (sorted members, no owners, fixed times): the same content, the same file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o644
        return info

    import gzip

    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            tar.add(folder / name, arcname=name, filter=clean, recursive=False)


def unpack(archive: Path, into: Path, what: str) -> Path:
    """Extract a kit or return into `into` (refusing links, devices and paths leaving it); return `into`."""
    if not Path(archive).is_file():
        raise McradError(f"{what} {archive} does not exist. Fix: give the path of the .tar.gz file.")
    into.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar.getmembers():
                if not (info.isfile() or info.isdir()):
                    raise McradError(f"{what} {archive}: member {info.name!r} is not a plain file; refused.")
            tar.extractall(into, filter="data")  # "data": no absolute paths, no '..', no special files
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise McradError(f"{what} {archive} is not a readable .tar.gz ({exc}). Fix: copy the file again.") from exc
    return into
