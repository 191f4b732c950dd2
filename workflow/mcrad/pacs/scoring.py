"""One retrieved study through the locked pipeline of stage 3: ingest -> preprocess -> segment -> features (the
stage functions, with the study's options) -> harmonise (apply, locked estimates) -> locked bundles. Nothing is
fitted here except, once, a new archive's ComBat batch estimates from its first batch (then locked)."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd

from mcrad import harmonise
from mcrad.errors import McradError
from mcrad.files import read_table, write_json, write_table
from mcrad.harmonise.combat import ComBat
from mcrad.model.bundle import load_meta
from mcrad.model.registry import DEEP_EMB, DEEP_SCORE
from mcrad.paths import Paths

META = ["patient_id", "centre"]


def extract(cfg: dict, work: Paths, pid: str, centre: str, image_dir: Path, mask_file: Path, roi_pattern: str | None
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(raw features of the case (0 or 1 row), its status row) through the per-case stages, in `work`."""
    from mcrad.features.extract import features_shard, gather
    from mcrad.ingest import ingest_shard
    from mcrad.preprocess import preprocess_shard, uses_nyul
    from mcrad.segment import segment_shard

    if uses_nyul(cfg["preprocess"]):
        study = Paths.from_config(cfg)
        work.nyul_standard.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(study.nyul_standard, work.nyul_standard)
    sheet_path = work.root / "cohort.tsv"
    sheet = pd.DataFrame([{"patient_id": pid, "centre": centre, "image": str(image_dir), "mask": str(mask_file)}])
    write_table(sheet, sheet_path)
    opts = {**cfg["ingest"], **({"roi_pattern": roi_pattern} if roi_pattern else {})}
    rows = ingest_shard(sheet, sheet_path, [pid], work, False, opts)
    rows = preprocess_shard(rows, cfg["preprocess"], work, False, [], cfg["study"]["seed"])
    rows = segment_shard(rows, cfg["segment"], work, False)
    rows = features_shard(rows, cfg["features"], cfg["segment"], work, False)
    ok, quarantined, _ = gather([rows])
    return ok, quarantined


def image_only(meta: dict) -> bool:
    """A bundle a PACS study can feed: no clinical column, no deep-stage feature."""
    deep = any(c == DEEP_SCORE or c.startswith(DEEP_EMB) for c in meta["features"])
    return not deep and meta["model"] not in ("clinical", "nomogram")


def select_bundles(cfg: dict, paths: Paths) -> dict[str, list[tuple[Path, str]]]:
    """endpoint -> [(bundle folder, bundle sha256)] of the configured endpoints and models (default: every
    image-only model). A bundle is checked against its manifest here, before any study is pulled."""
    pacs = cfg["prospective"]["pacs"]
    names = [ep["name"] for ep in cfg["endpoints"]]
    unknown = sorted(set(pacs["endpoints"]) - set(names))
    if unknown:
        raise McradError(f"prospective.pacs.endpoints {unknown} are not endpoints of the study ({names}).")
    chosen: dict[str, list[tuple[Path, str]]] = {}
    for name in pacs["endpoints"] or names:
        folder = paths.models_dir(name)
        found = sorted(p for p in folder.glob("*") if (p / "manifest.json").is_file()) if folder.is_dir() else []
        if not found:
            raise McradError(f"no locked bundle under {folder}. Fix: run the study (stage 1) first; a PACS poll "
                             "never trains.")
        metas = {p.name: load_meta(p) for p in found}
        wanted = pacs["models"] or [m for m, (meta, _) in metas.items() if image_only(meta)]
        bad = [m for m in wanted if m not in metas or not image_only(metas[m][0])]
        if bad:
            raise McradError(f"prospective.pacs.models {bad} of endpoint {name!r} are missing or need clinical or "
                             f"deep inputs a PACS study lacks. Image-only bundles: "
                             f"{[m for m, (meta, _) in metas.items() if image_only(meta)]}.")
        chosen[name] = [(folder / m, metas[m][1]["bundle_sha256"]) for m in wanted]
    return chosen


def stage2_estimates(model: ComBat, paths: Paths, centre: str) -> dict[str, list[float]]:
    """The batch estimates stage 2 used for a study centre: from its raw features' complete rows, as
    harmonise-apply computes them (the same numbers, so a case of that centre gets its stage-2 values)."""
    raw = read_table(paths.raw_features(centre)).set_index("patient_id")
    if raw.empty:
        raise McradError(f"{paths.raw_features(centre)} has no case: centre {centre} has no stage-2 estimates.")
    complete = ~raw[model.features_].isna().any(axis=1)
    return model.estimate_batch(raw.loc[complete])


def first_batch(model: ComBat, paths: Paths, centre: str, raw: pd.DataFrame, size: int
                ) -> dict[str, list[float]] | None:
    """A new archive: its cases' raw features are collected until `size` complete ones, then its estimates are
    fitted once, written with the cases they came from, and locked (never refitted)."""
    locked = paths.pacs_batch_estimates(centre)
    if locked.is_file():
        return json.loads(locked.read_text())["estimates"]
    table = paths.pacs_batch_features(centre)
    seen = read_table(table) if table.is_file() else raw.iloc[:0]
    batch = pd.concat([seen[~seen["patient_id"].isin(raw["patient_id"])], raw], ignore_index=True)
    write_table(batch, table)
    X = batch.set_index("patient_id")
    complete = X.loc[~X[model.features_].isna().any(axis=1)]
    if len(complete) < size:
        return None
    estimates = model.estimate_batch(complete)
    write_json({"centre": centre, "cases": sorted(complete.index), "estimates": estimates}, locked)
    return estimates


def harmonised(cfg: dict, paths: Paths, raw: pd.DataFrame, centre: str) -> tuple[pd.DataFrame | None, str]:
    """(features for the bundles, how they were harmonised); (None, reason) while a new archive's first batch is
    incomplete and the config does not allow unharmonised scores."""
    model, keep = harmonise.load(paths.harmoniser)
    if model is None:
        return raw[META + keep], "none (harmonise.activate is false in the study)"
    opts = cfg["prospective"]["pacs"]["harmonisation"]
    design = cfg["design"]
    if model.categorical or model.continuous:
        raise McradError("the study's ComBat preserves clinical covariates a PACS study lacks. Fix: poll a study "
                         "harmonised without harmonise.covariates.")
    if centre == model.ref_batch or centre in model.batches_:
        label = f"ComBat, locked estimates of training centre {centre}"
        estimates = model.batches_.get(centre)
    elif centre in design["external"] or centre in design["prospective"]:
        label, estimates = f"ComBat, locked stage-2 estimates of centre {centre}", stage2_estimates(model, paths,
                                                                                                      centre)
    else:
        estimates = first_batch(model, paths, centre, raw, opts["first_batch"])
        label = f"ComBat, estimates of archive {centre} locked from its first batch"
        if estimates is None:
            if not opts["allow_unharmonised"]:
                return None, f"pending: first batch of archive {centre} incomplete"
            return raw[META + keep], f"unharmonised: first batch of archive {centre} incomplete"
    if estimates is not None:
        model.batches_[centre] = estimates
    model.min_batch_size = 1  # the estimates are locked: one study at a time is mapped with them, none is fitted
    combat_log = logging.getLogger("mcrad")
    combat_log.addFilter(_one_case)
    try:
        return harmonise.apply(model, raw, keep), label
    finally:
        combat_log.removeFilter(_one_case)


def _one_case(record: logging.LogRecord) -> bool:
    """Drop ComBat's "features constant within the centre" warning: one study is always constant within itself,
    and its locked estimates come from elsewhere."""
    return "constant within it" not in record.getMessage()


def predict(bundles: dict[str, list[tuple[Path, str]]], features: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """endpoint -> the stage-3 prediction table of `mcrad predict` (score, locked threshold, call) with the
    bundle's sha256."""
    from mcrad.prospective import predict as locked_predict

    out = {}
    for name, chosen in bundles.items():
        table = locked_predict([p for p, _ in chosen], features, None)
        sha = {p.name: h for p, h in chosen}
        out[name] = table.assign(bundle_sha256=table["model"].map(sha))
    return out
