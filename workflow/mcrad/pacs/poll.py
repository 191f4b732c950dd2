"""The poll: find, retrieve, score, store back, record; and the --every loop."""
from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd

from mcrad.errors import McradError
from mcrad.files import read_table, write_table
from mcrad.pacs import client as pacs_client
from mcrad.pacs import query, state
from mcrad.paths import Paths

log = logging.getLogger("mcrad.pacs")
NOT_SCORES = ("patient_id", "centre", "stage", "model", "positive", "predicted", "bundle_sha256")


def pacs_options(cfg: dict) -> dict:
    pacs = cfg.get("prospective", {}).get("pacs")
    if not pacs:
        raise McradError("the config has no prospective.pacs section. Fix: add prospective.pacs.url (the DICOMweb "
                         "root) to the study config.")
    return pacs


def parse_every(text: str) -> float:
    """'10m', '30s', '2h' -> seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh]?)", text.strip())
    if not m or float(m.group(1)) <= 0:
        raise McradError(f"--every {text!r} is not a positive duration. Fix: e.g. 30s, 10m or 1h.")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def append_scores(paths: Paths, endpoint: str, rows: pd.DataFrame) -> None:
    """Add one study's rows; an earlier row of the same study, model and bundle (a retried study) is replaced.
    Written to a temporary file and renamed, so a crash never leaves half a table."""
    path = paths.pacs_scores(endpoint)
    old = read_table(path) if path.is_file() else rows.iloc[:0]
    key = ["study", "model", "bundle_sha256"]
    if len(old):
        old = old[~old.set_index(key).index.isin(rows.set_index(key).index)]
    tmp = path.with_suffix(".tmp")
    write_table(pd.concat([old, rows], ignore_index=True), tmp)
    os.replace(tmp, path)


def failure_rows(bundles: dict, study: str, pid: str, centre: str, stage: str, message: str, status: str = "failed"
                 ) -> dict[str, pd.DataFrame]:
    return {ep: pd.DataFrame([{"study": study, "patient_id": pid, "centre": centre, "model": p.name,
                               "bundle_sha256": sha, "status": status, "failed_stage": stage, "message": message}
                              for p, sha in chosen]) for ep, chosen in bundles.items()}


def report(paths: Paths, bundles: dict, tables: dict[str, pd.DataFrame], study: str, outcome: str) -> None:
    for ep, rows in tables.items():
        append_scores(paths, ep, rows)
    state.audit(paths.pacs_audit, study, sorted({f"{ep}/{p.name}" for ep, c in bundles.items() for p, _ in c}),
                outcome)
    (log.info if outcome == "ok" else log.warning)("study %s: %s", study, outcome)


def score_rows(results: dict[str, pd.DataFrame], study: str, label: str, sr_instance: str) -> dict[str, pd.DataFrame]:
    when = state.now().isoformat(timespec="seconds")
    return {ep: t.drop(columns=["stage"]).assign(study=study, harmonisation=label, status="ok", failed_stage="",
                                                 message="", sr_instance=sr_instance, scored_at=when)
            for ep, t in results.items()}


def store(client, datasets: list, what: str) -> None:
    try:
        client.store_instances(datasets=datasets)
    except Exception as exc:
        raise pacs_client.describe(exc, f"STOW-RS of the {what}") from None


def retrieve(client, uid: str, pacs: dict, pattern: str, folder: Path):
    try:
        return query.retrieve_study(client, uid, pacs["query"]["modality"], pattern, folder)
    except McradError:
        raise
    except Exception as exc:
        raise pacs_client.describe(exc, "WADO-RS retrieve") from None


def write_back(client, pacs: dict, roi_file: Path, images: list, structure, results: dict, label: str, pattern: str,
               key: str) -> str:
    """STOW-RS the SR (and SEG); returns the SR instance UID. Nothing is stored unless everything was scored."""
    from mcrad.pacs import sr

    numeric = {ep: [c for c in t.columns if c not in NOT_SCORES and pd.api.types.is_numeric_dtype(t[c])]
               for ep, t in results.items()}
    report_ds = sr.build_sr(images, structure, results, numeric, label, pattern, key)
    datasets = [report_ds] if pacs["write_back"]["sr"] else []
    if pacs["write_back"]["seg"]:
        import SimpleITK as sitk

        ordered = sorted(images, key=lambda d: float(d.ImagePositionPatient[2]))
        datasets.append(sr.build_seg(ordered, sitk.GetArrayFromImage(sitk.ReadImage(str(roi_file))), key))
    if datasets:
        store(client, datasets, "results")
    return report_ds.SOPInstanceUID


def score_study(cfg: dict, paths: Paths, client, uid: str, bundles: dict, key: str, conn) -> str:
    """One study, end to end; returns its outcome. A PacsError (archive down) propagates and stops the poll;
    any other failure is reported for this study only."""
    pacs = pacs_options(cfg)
    study = state.uid_hash(uid, cfg["study"]["name"])
    centre, pid = pacs["centre"], f"{pacs['centre']}-{study[:12]}"
    pattern = pacs["roi_pattern"] or cfg["ingest"]["roi_pattern"]
    work = paths.pacs_workspace / study
    shutil.rmtree(work, ignore_errors=True)
    try:
        try:
            images, structure, image_dir, mask_file = retrieve(client, uid, pacs, pattern, work)
        except pacs_client.PacsError:
            raise
        except McradError as exc:
            report(paths, bundles, failure_rows(bundles, study, pid, centre, "retrieve", str(exc), "no_structure"),
                   study, f"no_structure: {exc}")
            return "no_structure"
        from mcrad.pacs import scoring

        pipeline = Paths(work / "pipeline")
        raw, quarantined = scoring.extract(cfg, pipeline, pid, centre, image_dir, mask_file, pattern)
        if raw.empty:
            q = quarantined.iloc[0]
            report(paths, bundles, failure_rows(bundles, study, pid, centre, q["failed_stage"], q["message"]), study,
                   f"failed at {q['failed_stage']}: {q['message']}")
            return "failed"
        features, label = scoring.harmonised(cfg, paths, raw, centre)
        if features is None:
            state.audit(paths.pacs_audit, study, [], label)
            log.warning("study %s: %s", study, label)
            return "pending"
        results = scoring.predict(bundles, features)
        sr_instance = write_back(client, pacs, pipeline.case(centre, pid).ingest_mask, images, structure, results,
                                 label, pattern, key)
        report(paths, bundles, score_rows(results, study, label, sr_instance), study, "ok")
        state.mark_done(conn, study, key, sr_instance, label)
        return "ok"
    except pacs_client.PacsError:
        state.audit(paths.pacs_audit, study, [], "interrupted: PACS error")
        raise
    except Exception as exc:  # noqa: BLE001 - one study's failure never blocks the others
        message = f"{type(exc).__name__}: {exc}"
        report(paths, bundles, failure_rows(bundles, study, pid, centre, "scoring", message), study,
               f"failed: {message}")
        return "failed"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def poll(cfg: dict, since: str | None = None, dry_run: bool = False, environ: dict[str, str] | None = None
         ) -> dict[str, int]:
    """One poll: every new study the query selects, scored once per set of bundles. Returns outcome counts."""
    from mcrad.pacs import scoring  # the heavy imports (pyradiomics, highdicom) after the archive answered

    pacs = pacs_options(cfg)
    paths = Paths.from_config(cfg)
    client = pacs_client.connect(pacs, environ)
    conn = state.open_state(paths.pacs_state)
    started = state.now()
    window = since or (state.last_poll_day(conn) if pacs["query"]["since"] == "last_poll" else pacs["query"]["since"])
    try:
        uids = query.find_studies(client, pacs["query"], window)
    except Exception as exc:
        raise pacs_client.describe(exc, "QIDO-RS search") from None
    bundles = scoring.select_bundles(cfg, paths)  # verified against their manifests before any study is pulled
    key = state.bundles_key([sha for chosen in bundles.values() for _, sha in chosen])
    counts = {"found": len(uids), "skipped": 0, "ok": 0, "failed": 0, "no_structure": 0, "pending": 0, "new": 0}
    for uid in uids:
        if state.is_done(conn, state.uid_hash(uid, cfg["study"]["name"]), key):
            counts["skipped"] += 1
        elif dry_run:
            counts["new"] += 1
            log.info("dry run: would score study %s", state.uid_hash(uid, cfg["study"]["name"]))
        else:
            counts[score_study(cfg, paths, client, uid, bundles, key, conn)] += 1
    if not dry_run:
        state.record_poll(conn, started)
    conn.close()
    log.info("poll: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


def loop(cfg: dict, every: str, since: str | None = None, dry_run: bool = False, polls: int | None = None) -> None:
    """`--every`: poll, sleep, poll again; an archive outage is logged and retried at the next poll."""
    seconds, done = parse_every(every), 0
    while polls is None or done < polls:
        try:
            poll(cfg, since, dry_run)
        except pacs_client.PacsError as exc:
            log.error("%s", exc)
        done += 1
        if polls is None or done < polls:
            time.sleep(seconds)
