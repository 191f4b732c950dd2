"""Report: one self-contained HTML page (figures embedded, no network) that reads as a study report: design,
cohort, QC, harmonisation, models, per-centre performance, curves, comparisons, methods, reporting checklists
and provenance. Figures are also written as PNG files for `snakemake --report`. A section appears only for
what the study ran. It reads only the files its rule declares (report.inputs).

page (the HTML page), inputs (declared files), study (design, cohort, QC, robustness, harmonisation), models,
guardrails (sample size, volume confounding, harmonisation diagnostics), performance (binary endpoints,
prospective), survival, multiclass, controls (negative controls), nulls (permutation nulls), sites (site-run
centres), provenance (methods, runtime, checklist).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mcrad.endpoints import endpoints


def write_report(cfg: dict, root: Path, declared: Iterable[str | Path], sheet: Path, out: Path,
                 figures_dir: Path | None = None) -> None:
    """The study report from the declared input files of the report rule."""
    from mcrad.model.bundle import software_versions
    from mcrad.report import controls, guardrails, models, performance, provenance, sites, study
    from mcrad.report.inputs import ReportInputs
    from mcrad.report.nulls import nulls_section
    from mcrad.report.page import Report

    inputs, versions, eps = ReportInputs(root, declared), software_versions(), endpoints(cfg)
    rep = Report(figures_dir)
    cohort = study.cohorts(cfg, inputs)
    study.design_section(rep, inputs, eps, cohort)
    study.cohort_section(rep, cfg, cohort)
    study.qc_section(rep, inputs)
    study.harmonisation_section(rep, cfg, inputs)
    study.robustness_section(rep, cfg, inputs)
    models.models_section(rep, cfg, inputs)
    models.shap_section(rep, cfg, inputs)
    models.deep_section(rep, cfg, inputs)
    guardrails.guardrails_section(rep, cfg, inputs)  # beside the models: sample size, volume, harmonisation
    for ep in eps:
        performance.prospective_section(rep, ep, inputs)
        ep.report_sections(rep, inputs)
    controls.controls_section(rep, cfg, inputs, eps)
    sites.sites_section(rep, eps, inputs)
    nulls_section(rep, cfg, inputs)
    if cfg["cohort"]["sheet"] is None:
        study.truth_section(rep, inputs)
    provenance.methods_section(rep, cfg, inputs, versions)
    provenance.runtime_section(rep, inputs)
    provenance.provenance_section(rep, cfg, inputs, sheet, versions)
    provenance.checklist_section(rep)  # last: it points at the sections above
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(rep.html(cfg["study"]["name"]))
