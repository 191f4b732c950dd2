"""The report's section on site-run centres (`mcrad kit collect`): which centre ran centrally and which at its
own site from the kit, what each site shared, and the merged stage-2 metrics."""
from __future__ import annotations

from mcrad.report.page import Report, table

METRIC_COLUMNS = ("model", "centre", "stage", "source", "n", "events", "auc", "auc_lo", "auc_hi", "c_index",
                  "c_index_lo", "c_index_hi", "macro_auc", "brier", "cal_intercept", "cal_slope", "note")


def sites_section(rep: Report, eps, inputs) -> None:
    paths = inputs.paths
    if not inputs.has(paths.sites_summary):
        return
    summary = inputs.table(paths.sites_summary)
    body = ["<p>Centres marked <b>site-run</b> ran the locked study at their own site from the site kit (the same "
            "workflow, bundles verified by hash, harmoniser reference from the kit, the centre's ComBat estimates "
            "from its own unlabelled features); only the tables listed under <i>shared</i> left the site. Metrics "
            "per centre, pooled and paired come from the same code as stage 2 where per-patient predictions came "
            "back; a centre that shared aggregates only keeps its own metrics and the pooled estimate over every "
            "external centre is marked unavailable.</p>", table(summary.fillna(""))]
    for ep in eps:
        if not inputs.has(paths.sites_metrics(ep.name)):
            continue
        m = inputs.table(paths.sites_metrics(ep.name))
        m = m[m["stage"] != "internal"]
        body.append(f"<h3>{ep.name}: external centres, central and site-run</h3>")
        body.append(table(m[[c for c in METRIC_COLUMNS if c in m.columns]].fillna("")))
    rep.add("sites", "Centres run at their sites (site kit)", "\n".join(body))
