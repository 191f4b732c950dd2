"""The study's software lock: the installed version of every package pinned in requirements.lock when the kit was
exported, and the code hash of each mcrad stage a site runs. At the site, a package or stage that changes features
or predictions must match (refused otherwise); any other difference is a warning."""
from __future__ import annotations

import logging
import re
from importlib import metadata
from pathlib import Path

from mcrad import __version__
from mcrad.errors import McradError

log = logging.getLogger(__name__)

REQUIREMENTS = Path(__file__).resolve().parents[3] / "requirements.lock"
# packages whose version can change an image read, a feature value, a harmonised value or a prediction
FEATURE_PACKAGES = ("pyradiomics-bhklab", "SimpleITK", "numpy", "scipy", "PyWavelets", "scikit-learn",
                    "neuroCombat", "pandas", "mcrad")
# the mcrad stages a site run executes (their source, with everything they import, is hashed)
SITE_STAGES = ("ingest", "preprocess", "segment", "features", "harmonise", "validate", "prospective")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(requirements: Path = REQUIREMENTS) -> list[str]:
    """Package names pinned (name==version) in requirements.lock."""
    names = []
    for line in requirements.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==", line)
        if m:
            names.append(m.group(1))
    return names


def installed(names: list[str]) -> dict[str, str | None]:
    """The installed version of each package (None when absent); mcrad's own version from the package."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["mcrad"] = __version__
    return out


def current(requirements: Path = REQUIREMENTS) -> dict:
    """The lock of this installation: package versions and the code hash of each site stage."""
    from mcrad.plan import code_hash

    names = sorted(set(pinned(requirements)) | (set(FEATURE_PACKAGES) - {"mcrad"}), key=str.lower)
    return {"packages": installed(names), "code": {stage: code_hash(stage) for stage in SITE_STAGES}}


def compare(lock: dict, here: dict) -> tuple[list[str], list[str]]:
    """(refusals, warnings): differences between the kit's lock and this installation."""
    feature = {_norm(p) for p in FEATURE_PACKAGES}
    refusals, warnings = [], []
    for name, wanted in sorted(lock["packages"].items()):
        got = {_norm(k): v for k, v in here["packages"].items()}.get(_norm(name))
        if got == wanted:
            continue
        line = f"{name}: the study used {wanted}, this installation has {got or 'none'}"
        (refusals if _norm(name) in feature else warnings).append(line)
    for stage, digest in sorted(lock["code"].items()):
        if here["code"].get(stage) != digest:
            refusals.append(f"mcrad stage {stage}: its code differs from the study's (code hash {digest}, here "
                            f"{here['code'].get(stage)})")
    return refusals, warnings


def check(lock: dict, here: dict | None = None) -> list[str]:
    """Refuse a mismatch that changes features or predictions; log and return the other differences."""
    refusals, warnings = compare(lock, current() if here is None else here)
    if refusals:
        raise McradError("this installation differs from the study's software lock in what changes features or "
                         "predictions, refused:\n  " + "\n  ".join(refusals) + "\nFix: install the study's "
                         "versions (pip install -r requirements.lock in the mcrad release the kit names), then rerun.")
    for w in warnings:
        log.warning("software lock: %s (does not change features or predictions; going on)", w)
    return warnings
