"""What a site run writes for its return besides the validation tables: label-free per-feature summaries before
and after harmonisation, QC counts, and a site report. No per-patient value, path or identifier."""
from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from mcrad.files import META, read_table, read_tables, write_table

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def feature_summary(raw: pd.DataFrame, harmonised: pd.DataFrame) -> pd.DataFrame:
    """Per centre, feature and table (raw, harmonised): n, mean, SD and quantiles."""
    rows = []
    for table, df in (("raw", raw), ("harmonised", harmonised)):
        for centre, g in df.groupby("centre", sort=True):
            X = g[[c for c in g.columns if c not in META]].apply(pd.to_numeric, errors="coerce")
            q = X.quantile(list(QUANTILES))
            stats = pd.DataFrame({"centre": centre, "table": table, "feature": X.columns, "n": X.count().to_numpy(),
                                  "mean": X.mean().to_numpy(), "sd": X.std(ddof=1).to_numpy(),
                                  **{f"q{int(p * 100):02d}": q.loc[p].to_numpy() for p in QUANTILES}})
            rows.append(stats)
    return pd.concat(rows, ignore_index=True)


def qc_summary(qc: pd.DataFrame, quarantine: pd.DataFrame) -> pd.DataFrame:
    """Per centre: cases read, cases analysed, and cases quarantined per stage (messages name files: left out)."""
    rows = [{"centre": c, "item": "cases in the sheet", "n": len(g)} for c, g in qc.groupby("centre", sort=True)]
    rows += [{"centre": c, "item": f"quarantined at {stage}", "n": len(s)}
             for c, g in quarantine.groupby("centre", sort=True) for stage, s in g.groupby("failed_stage", sort=True)]
    return pd.DataFrame(rows, columns=["centre", "item", "n"])


def site_report(centre_tables: dict[str, pd.DataFrame], title: str) -> str:
    """A one-page HTML site report: tables only (no figure, no path)."""
    from mcrad.report.page import Report, table

    rep = Report(None)
    for name, df in centre_tables.items():
        rep.add(name.lower().replace(" ", "-"), name, table(df) if len(df) else "<p class='note'>none</p>")
    return rep.html(html.escape(title))


def summary_stage(raw_files: list[Path], harmonised_files: list[Path], qc_file: Path, quarantine_file: Path,
                  metric_files: list[Path], prediction_files: list[Path], out_features: Path, out_qc: Path,
                  out_report: Path, title: str) -> None:
    """`mcrad kit summary`: the site run's summaries and report (the return is packed from these and the
    validation tables)."""
    features = feature_summary(read_tables(raw_files), read_tables(harmonised_files))
    qc = qc_summary(read_table(qc_file), read_table(quarantine_file))
    write_table(features, out_features)
    write_table(qc, out_qc)
    tables = {"Cases and quarantine": qc}
    for f in metric_files:  # validation/<endpoint>/metrics.tsv
        tables[f"Stage 2 metrics: {Path(f).parent.name}"] = read_table(f)
    for f in prediction_files:  # stage 3 without labels: how many were scored, per model
        p = read_table(f)
        tables[f"Stage 3 scoring: {Path(f).parent.name}"] = p.groupby(["centre", "model"]).size() \
            .rename("scored").reset_index()
    out_report.parent.mkdir(parents=True, exist_ok=True)
    out_report.write_text(site_report(tables, title))
