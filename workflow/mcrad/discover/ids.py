"""Pseudonyms for the cohort sheet: a keyed hash (HMAC-SHA256 under a key file kept outside results/) or
sequential codes whose map to the hospital ids is written only where the user says. Hospital ids go in, pseudonyms
come out; nothing here logs or returns a hospital id."""
from __future__ import annotations

import csv
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from mcrad.errors import McradError

KEY_BYTES = 32


def _outside_results(path: Path, what: str) -> None:
    if "results" in path.resolve().parts:
        raise McradError(f"{what} {path} lies under a results/ folder, which travels with the study. Fix: keep it "
                         "outside results/ (e.g. beside the DICOM trees, readable only by you)")


def load_key(path: Path) -> bytes:
    """The key in `path`, made (random, owner-only) when the file does not exist yet."""
    _outside_results(path, "pseudonymisation key file")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(KEY_BYTES) + "\n")
    key = path.read_text().strip()
    if len(key) < 32:
        raise McradError(f"pseudonymisation key file {path} holds fewer than 32 characters. Fix: point "
                         "--pseudonymise at a new file (mcrad makes the key) or at the study's existing key")
    return key.encode()


class Pseudonymiser:
    """centre + hospital PatientID -> pseudonym, `<centre>-<code>` (a valid sheet id)."""

    def __init__(self, key_file: Path | None = None, code_map: Path | None = None):
        if (key_file is None) == (code_map is None):
            raise McradError("give exactly one of a key file (keyed hash) and a code map file (sequential codes)")
        self.key = load_key(key_file) if key_file else None
        self.map_path = code_map
        self.codes: dict[tuple[str, str], str] = {}
        if code_map is not None:
            _outside_results(code_map, "pseudonym map")
            if code_map.exists():
                with open(code_map, newline="") as fh:
                    self.codes = {(r["centre"], r["hospital_id"]): r["patient_id"]
                                  for r in csv.DictReader(fh, delimiter="\t")}

    def __call__(self, centre: str, hospital_id: str) -> str:
        if self.key is not None:
            digest = hmac.new(self.key, f"{centre}\0{hospital_id}".encode(), hashlib.sha256).hexdigest()
            return f"{centre}-{digest[:12]}"
        if (centre, hospital_id) not in self.codes:
            used = sum(1 for c, _ in self.codes if c == centre)
            self.codes[(centre, hospital_id)] = f"{centre}-{used + 1:04d}"
        return self.codes[(centre, hospital_id)]

    def save(self) -> None:
        """Write the sequential-code map (owner-only): the one file that links pseudonyms back to patients."""
        if self.map_path is None:
            return
        self.map_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.map_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", newline="") as fh:
            w = csv.writer(fh, delimiter="\t", lineterminator="\n")
            w.writerow(["patient_id", "centre", "hospital_id"])
            for (centre, hid), code in sorted(self.codes.items(), key=lambda kv: kv[1]):
                w.writerow([code, centre, hid])


class KeepIds:
    """Hospital ids kept as they are (a tree already pseudonymised upstream): `--keep-ids`."""

    def __call__(self, centre: str, hospital_id: str) -> str:
        return hospital_id

    def save(self) -> None:
        pass
