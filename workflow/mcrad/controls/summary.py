"""validation/<endpoint>/negative_controls.tsv: the real models' rows (control `none`) and every control's, per
feature family, model, centre and stage, with the real model's value beside each control's and the flags."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mcrad.controls import REAL
from mcrad.controls.models import control_rows, metric_names
from mcrad.endpoints import endpoint_named
from mcrad.files import read_table, write_table

CHANCE = 0.5  # AUC and C-index of a score unrelated to the outcome


def flag_controls(table: pd.DataFrame, value: str, margin: float) -> pd.DataFrame:
    """Add `real` (the real model's value in the same family, model, centre and stage), `covers_chance` (the
    interval holds 0.5) and `near_real` (a control's value within `margin` of the real model's, or above it: the
    real result does not stand clear of what the pipeline makes of noise)."""
    keys = ["features", "model", "centre", "stage"]
    real = table.loc[table["control"] == REAL, [*keys, value]].rename(columns={value: "real"})
    out = table.merge(real, on=keys, how="left", validate="many_to_one")
    out["covers_chance"] = (out["lo"] <= CHANCE) & (out["hi"] >= CHANCE)
    is_control = out["control"] != REAL
    near = (out[value] >= out["real"] - margin) & out["real"].notna() & out[value].notna()
    out["near_real"] = np.where(is_control, near, False)
    return out


def summary_stage(cfg: dict, endpoint_name: str, real_metrics: Path, control_files: list[Path], out: Path) -> None:
    """`mcrad controls-summary`: the real metrics (validate's metrics.tsv, family `all`) and the control tables
    (controls-validate) in one table, in the order real, then cfg's kinds."""
    ep = endpoint_named(cfg, endpoint_name)
    opts = cfg["negative_controls"]
    metrics = read_table(real_metrics)
    real = control_rows(metrics[metrics["model"].isin(opts["models"])], ep, REAL, "all")
    table = pd.concat([real, *(read_table(f) for f in control_files)], ignore_index=True)
    order = {k: i for i, k in enumerate([REAL, *opts["kinds"]])}
    table = table.sort_values(["features", "model", "control", "stage", "centre"], kind="stable",
                              key=lambda s: s.map(order) if s.name == "control" else s)
    write_table(flag_controls(table.reset_index(drop=True), metric_names(ep)[0], opts["margin"]), out)
