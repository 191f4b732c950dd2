"""Locked bundles: model.pkl + meta.json, and manifest.json with the sha256 of each; loading checks them."""
from __future__ import annotations

import hashlib
import json
import pickle
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn

from mcrad import __version__
from mcrad.errors import McradError
from mcrad.files import file_sha256
from mcrad.paths import MANIFEST_FILE, META_FILE, MODEL_FILE


def software_versions() -> dict[str, str]:
    import radiomics
    import SimpleITK

    return {"mcrad": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "pandas": pd.__version__, "scikit-learn": sklearn.__version__,
            "SimpleITK": SimpleITK.Version_VersionString(),
            "pyradiomics": radiomics.__version__}


def save_bundle(out: Path, name: str, entry: dict[str, Any], features: list[str], clinical: list[dict],
                endpoint: dict, training: dict[str, Any]) -> None:
    """Lock a model: model.pkl + meta.json, and manifest.json with the sha256 of each."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / MODEL_FILE, "wb") as fh:
        pickle.dump(entry["model"], fh, protocol=5)
    meta = {"model": name, "endpoint": endpoint, "threshold": entry["threshold"], "features": features,
            "clinical": clinical, "training": training, "description": entry["info"],
            "software": software_versions()}
    (out / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    manifest = {"files": {f: file_sha256(out / f) for f in (MODEL_FILE, META_FILE)}}
    manifest["bundle_sha256"] = hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def load_bundle(path: Path) -> tuple[Any, dict]:
    """Load a locked bundle after checking every file against its manifest."""
    verify_bundle(path)
    with open(path / MODEL_FILE, "rb") as fh:
        model = pickle.load(fh)  # noqa: S301 - our own bundle, verified against the manifest above
    return model, json.loads((path / META_FILE).read_text())


def verify_bundle(path: Path) -> dict:
    """The bundle's manifest, after checking every file it lists against its sha256."""
    manifest_file = path / MANIFEST_FILE
    if not manifest_file.is_file():
        raise McradError(f"{path} is not a model bundle (no manifest.json).")
    manifest = json.loads(manifest_file.read_text())
    for f, digest in manifest["files"].items():
        if not (path / f).is_file() or file_sha256(path / f) != digest:
            raise McradError(f"bundle {path}: {f} does not match its manifest sha256; the locked model was "
                             "changed after training. Fix: retrain, or restore the original bundle.")
    return manifest


def load_meta(path: Path) -> tuple[dict, dict]:
    """(meta.json, manifest) of a verified bundle, without unpickling the model."""
    manifest = verify_bundle(path)
    return json.loads((path / META_FILE).read_text()), manifest
