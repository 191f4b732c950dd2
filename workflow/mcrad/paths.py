"""Every path under a study's results folder, built here and nowhere else.

`Paths` names the study-level files (one per centre, endpoint or model); `CaseFiles` the files of one case under
cases/<centre>/<patient>/, stage by stage. Rules, stage functions and the report all ask these two.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# a locked model bundle (a folder that travels as a whole): the fitted model, its description, the sha256 of both
MODEL_FILE, META_FILE, MANIFEST_FILE = "model.pkl", "meta.json", "manifest.json"
BUNDLE_FILES = (MODEL_FILE, META_FILE, MANIFEST_FILE)


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case, by stage: ingest (canonical copies), preprocess (resampled), segment (ROIs)."""

    dir: Path

    def done(self, stage: str) -> Path:
        """The per-case cache record of a stage (key of code, options and inputs; the stage's result row)."""
        return self.dir / stage / "done.json"

    # ingest: the image as read, the binary analysed mask, extra ROIs, further sequences, the QC picture
    @property
    def ingest_dir(self) -> Path:
        return self.dir / "ingest"

    @property
    def ingest_image(self) -> Path:
        return self.ingest_dir / "image.nii.gz"

    @property
    def ingest_mask(self) -> Path:
        return self.ingest_dir / "mask.nii.gz"

    def ingest_extra_mask(self, name: str) -> Path:
        return self.ingest_dir / f"mask-{name}.nii.gz"

    def ingest_sequence(self, seq: str) -> Path:
        return self.ingest_dir / f"image-{seq}.nii.gz"

    def ingest_sequence_mask(self, seq: str) -> Path:
        """A non-reference sequence's own mask (registration QC only)."""
        return self.ingest_dir / f"seqmask-{seq}.nii.gz"

    @property
    def qc_picture(self) -> Path:
        return self.ingest_dir / "qc.png"

    # preprocess: cropped, resampled, intensity-treated image and mask; registered sequences
    @property
    def preprocess_dir(self) -> Path:
        return self.dir / "preprocess"

    @property
    def preprocess_image(self) -> Path:
        return self.preprocess_dir / "image.nii.gz"

    @property
    def preprocess_mask(self) -> Path:
        return self.preprocess_dir / "mask.nii.gz"

    def preprocess_sequence(self, seq: str) -> Path:
        return self.preprocess_dir / f"image-{seq}.nii.gz"

    def preprocess_transform(self, seq: str) -> Path:
        """Rigid transform of a sequence's registration (reference point -> sequence point)."""
        return self.preprocess_dir / f"transform-{seq}.tfm"

    # segment: the ROIs features are extracted from
    @property
    def segment_dir(self) -> Path:
        return self.dir / "segment"

    def roi(self, name: str, auto: bool = False) -> Path:
        """roi-<name> from the provided mask, or auto-<name> from the auto-segmentation UNet's mask."""
        return self.segment_dir / f"{'auto' if auto else 'roi'}-{name}.nii.gz"


class BundleLayout:
    """Where the locked bundles sit under `root`: the same in a study's results and in a site kit."""

    root: Path

    def models_dir(self, endpoint: str) -> Path:
        return self.root / "models" / endpoint

    def bundle(self, endpoint: str, model: str) -> Path:
        return self.models_dir(endpoint) / model

    def bundle_files(self, endpoint: str, model: str) -> list[Path]:
        return [self.bundle(endpoint, model) / f for f in BUNDLE_FILES]

    def bundle_manifest(self, endpoint: str, model: str) -> Path:
        return self.bundle(endpoint, model) / MANIFEST_FILE


@dataclass(frozen=True)
class Paths(BundleLayout):
    """Every path the workflow writes, built here and nowhere else."""

    root: Path

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Paths:
        return cls(Path(cfg["study"]["results"]) / cfg["study"]["name"])

    # synthetic demo cohort
    @property
    def discovered_sheet(self) -> Path:
        """cohort.discover: the sheet `mcrad discover` wrote from the DICOM trees (discovery.tsv beside it)."""
        return self.root / "discover" / "cohort.tsv"

    @property
    def synth_dir(self) -> Path:
        return self.root / "synth"

    @property
    def synth_sheet(self) -> Path:
        return self.synth_dir / "cohort.tsv"

    @property
    def synth_truth(self) -> Path:
        return self.synth_dir / "ground_truth.json"

    # cohort tables split by centre, so a training rule can only ever see training rows
    def cohort_table(self, centre: str) -> Path:
        return self.root / "cohort" / f"{centre}.tsv"

    # label-free: patient_id, centre and cohort.clinical only, for rules that must not rerun when outcomes change
    def predictors_table(self, centre: str) -> Path:
        return self.root / "cohort" / "predictors" / f"{centre}.tsv"

    # per-case stages: one table per shard, per-case files under cases/
    def shard_table(self, stage: str, shard: str) -> Path:
        return self.root / "shards" / stage / f"{shard}.tsv"

    def case_dir(self, centre: str, patient_id: str) -> Path:
        return self.root / "cases" / centre / patient_id

    def case(self, centre: str, patient_id: str) -> CaseFiles:
        return CaseFiles(self.case_dir(centre, patient_id))

    @property
    def qc_ingest(self) -> Path:
        return self.root / "qc" / "ingest.tsv"

    @property
    def qc_pictures(self) -> Path:
        """The ingest QC pictures the report shows (a few per centre), copied here as a declared output."""
        return self.root / "qc" / "pictures"

    @property
    def qc_pictures_index(self) -> Path:
        """centre, patient_id, reason of each picture in qc_pictures, in the order the report shows them."""
        return self.qc_pictures / "index.tsv"

    def qc_picture_copy(self, centre: str, patient_id: str) -> Path:
        return self.qc_pictures / f"{centre}_{patient_id}.png"

    @property
    def qc_preprocess(self) -> Path:
        """Per case: the ingest QC columns plus preprocessing (size, ROI voxels, registration MI and Dice)."""
        return self.root / "qc" / "preprocess.tsv"

    def quarantine_centre(self, centre: str) -> Path:
        return self.root / "qc" / "quarantine" / f"{centre}.tsv"

    @property
    def qc_quarantine(self) -> Path:
        return self.root / "qc" / "quarantine.tsv"

    def raw_features(self, centre: str | None = None) -> Path:
        return self.root / "features" / ("raw.tsv" if centre is None else f"raw/{centre}.tsv")

    def feature_flags(self, centre: str | None = None) -> Path:
        """Per case and feature class: why a feature is NaN (ROI too small, flat region, pyradiomics NaN)."""
        return self.root / "qc" / ("feature_flags.tsv" if centre is None else f"feature_flags/{centre}.tsv")

    @property
    def robustness(self) -> Path:
        return self.root / "features" / "robustness.tsv"

    @property
    def nyul_standard(self) -> Path:
        return self.root / "preprocess" / "nyul.json"

    # harmonisation
    @property
    def harmoniser(self) -> Path:
        return self.root / "harmonise" / "combat.json"

    @property
    def harmonised_features(self) -> Path:
        return self.root / "features" / "harmonised.tsv"

    @property
    def harmonised_train(self) -> Path:
        return self.root / "features" / "harmonised" / "train.tsv"

    def harmonised_external(self, centre: str) -> Path:
        return self.root / "features" / "harmonised" / "external" / f"{centre}.tsv"

    @property
    def excluded_features(self) -> Path:
        return self.root / "harmonise" / "excluded_features.tsv"

    @property
    def harmonise_diagnostics(self) -> Path:
        """Label-free: centre identifiability (ComBat refitted in each fold), Kruskal-Wallis counts and the share of
        variance explained by centre, before/after ComBat."""
        return self.root / "harmonise" / "diagnostics.json"

    @property
    def harmonise_kruskal(self) -> Path:
        return self.root / "harmonise" / "kruskal_wallis.tsv"

    @property
    def harmonise_centre_variance(self) -> Path:
        """Label-free: per feature, the share of variance explained by centre before/after (in-fold) ComBat."""
        return self.root / "harmonise" / "centre_variance.tsv"

    @property
    def harmonise_pca(self) -> Path:
        return self.root / "harmonise" / "pca.tsv"

    @property
    def harmonise_outcome_check(self) -> Path:
        """Training labels only: the outcome signal before/after ComBat (a rule of its own)."""
        return self.root / "harmonise" / "outcome_check.json"

    # models (stage 1): models_dir, bundle, bundle_files, bundle_manifest from BundleLayout
    def internal_predictions(self, endpoint: str) -> Path:
        return self.models_dir(endpoint) / "internal_predictions.tsv"

    def internal_predictions_fusion(self, endpoint: str) -> Path:
        return self.models_dir(endpoint) / "internal_predictions_fusion.tsv"

    def shap(self, endpoint: str) -> Path:
        return self.models_dir(endpoint) / "shap_values.tsv"

    # y-randomisation (guardrails.y_randomisation): each model's null of the internal statistic, gathered
    def y_randomisation_model(self, endpoint: str, model: str) -> Path:
        return self.models_dir(endpoint) / "y_randomisation" / f"{model}.tsv"

    def y_randomisation(self, endpoint: str) -> Path:
        return self.models_dir(endpoint) / "y_randomisation.tsv"

    def y_randomisation_summary(self, endpoint: str) -> Path:
        return self.models_dir(endpoint) / "y_randomisation_summary.tsv"

    def shap_summary(self, endpoint: str) -> Path:
        return self.models_dir(endpoint) / "shap_summary.tsv"

    def sample_size(self, endpoint: str) -> Path:
        """Per locked model: Riley's minimum sample size vs the training centre(s)' cases (guardrails)."""
        return self.models_dir(endpoint) / "sample_size.tsv"

    # validation (stage 2) and prospective scoring (stage 3)
    def validation_dir(self, endpoint: str) -> Path:
        return self.root / "validation" / endpoint

    def metrics(self, endpoint: str) -> Path:
        return self.validation_dir(endpoint) / "metrics.tsv"

    def predictions(self, endpoint: str) -> Path:
        return self.validation_dir(endpoint) / "predictions.tsv"

    def paired(self, endpoint: str) -> Path:
        return self.validation_dir(endpoint) / "paired_delong.tsv"

    def comparison(self, endpoint: str) -> Path:
        return self.validation_dir(endpoint) / "harmonisation_comparison.tsv"

    def volume_confounding(self, endpoint: str) -> Path:
        """Metrics of tumour volume alone, locked on the training centre, per centre and stage (guardrails)."""
        return self.validation_dir(endpoint) / "volume_confounding.tsv"

    def volume_correlation(self, endpoint: str) -> Path:
        """Spearman rho with volume of each selected feature and score of the locked radiomics model (training)."""
        return self.validation_dir(endpoint) / "volume_correlation.tsv"

    def curves_dir(self, endpoint: str) -> Path:
        return self.validation_dir(endpoint) / "curves"

    def curves(self, endpoint: str, kind: str) -> Path:
        """Curve tables the report draws (roc, calibration, decision, km, confusion), one row per point."""
        return self.curves_dir(endpoint) / f"{kind}.tsv"

    def prospective_predictions(self, endpoint: str) -> Path:
        return self.validation_dir(endpoint) / "prospective_predictions.tsv"

    def prospective_metrics(self, endpoint: str) -> Path:
        return self.validation_dir(endpoint) / "prospective_metrics.tsv"

    def prospective_paired(self, endpoint: str) -> Path:
        return self.validation_dir(endpoint) / "prospective_paired_delong.tsv"

    # negative controls: each kind's cases, features, quarantine and models under controls/<kind>/, in the study's
    # own layout (a Paths rooted there); the comparison with the real models beside the validation metrics
    def controls(self, kind: str) -> Paths:
        return Paths(self.root / "controls" / kind)

    def negative_controls(self, endpoint: str) -> Path:
        """The study's table; on a control kind's Paths, that kind's rows."""
        return self.validation_dir(endpoint) / "negative_controls.tsv"

    # deep stage (MONAI): per-endpoint, per-centre deep_score + penultimate embeddings
    def deep_dir(self, endpoint: str) -> Path:
        return self.root / "deep" / endpoint

    def deep_features(self, endpoint: str, centre: str) -> Path:
        return self.deep_dir(endpoint) / f"features_{centre}.tsv"

    def deep_network(self, endpoint: str) -> Path:
        return self.deep_dir(endpoint) / "network.pt"

    def deep_network_meta(self, endpoint: str) -> Path:
        return self.deep_dir(endpoint) / "network.json"

    def deep_curves(self, endpoint: str) -> Path:
        return self.deep_dir(endpoint) / "curves.tsv"

    def deep_gradcam(self, endpoint: str, centre: str) -> Path:
        return self.deep_dir(endpoint) / "gradcam" / centre

    # auto-segmentation (deep.autoseg)
    @property
    def autoseg_dir(self) -> Path:
        return self.root / "segment" / "autoseg"

    @property
    def autoseg_network(self) -> Path:
        return self.autoseg_dir / "unet.pt"

    @property
    def autoseg_network_meta(self) -> Path:
        return self.autoseg_dir / "unet.json"

    def autoseg_centre(self, centre: str) -> Path:
        """Per-case Dice of the auto masks of one centre (the auto ROIs sit in each case's segment folder)."""
        return self.autoseg_dir / f"dice_{centre}.tsv"

    @property
    def autoseg_dice(self) -> Path:
        return self.root / "segment" / "autoseg_dice.tsv"

    # report, logs, Snakemake benchmark files
    @property
    def report(self) -> Path:
        return self.root / "report" / "index.html"

    @property
    def figures_dir(self) -> Path:
        return self.root / "report" / "figures"

    def figure(self, name: str) -> Path:
        return self.figures_dir / f"{name}.png"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    @property
    def benchmarks_dir(self) -> Path:
        return self.root / "benchmarks"

    def benchmark(self, rule: str, name: str | None = None) -> Path:
        """Snakemake's benchmark file of a job: benchmarks/<rule>.tsv, or benchmarks/<rule>/<name>.tsv."""
        return self.benchmarks_dir / (f"{rule}.tsv" if name is None else f"{rule}/{name}.tsv")



    # PACS poll (stage 3 over DICOMweb, `mcrad pacs poll`): scores, state, audit log, a new archive's batch
    @property
    def pacs_dir(self) -> Path:
        return self.root / "prospective" / "pacs"

    def pacs_scores(self, endpoint: str) -> Path:
        return self.pacs_dir / endpoint / "scores.tsv"

    @property
    def pacs_state(self) -> Path:
        """SQLite: which study (UID hash) was scored by which bundles, and the SR that carries it."""
        return self.pacs_dir / "state.sqlite"

    @property
    def pacs_audit(self) -> Path:
        """One line per study and poll: time, study UID hash, models, outcome."""
        return self.pacs_dir / "audit.log"

    @property
    def pacs_workspace(self) -> Path:
        """Retrieved DICOM and per-case files of the study being scored; emptied after each study."""
        return self.pacs_dir / "work"

    def pacs_batch_features(self, centre: str) -> Path:
        """A new archive's raw features, collected until its first batch is complete."""
        return self.pacs_dir / "batch" / f"{centre}.tsv"

    def pacs_batch_estimates(self, centre: str) -> Path:
        """A new archive's ComBat batch estimates, locked from its first batch."""
        return self.pacs_dir / "batch" / f"{centre}.json"

    # site kit (`mcrad kit collect`): verified returns of site-run centres and the validation tables they join
    @property
    def sites_dir(self) -> Path:
        return self.root / "sites"

    def site_return(self, centre: str) -> Path:
        """The verified members of one centre's return, as the site packed them."""
        return self.sites_dir / "returns" / centre

    @property
    def sites_summary(self) -> Path:
        """One row per centre: run centrally or at its site, what the site shared, kit and return hashes."""
        return self.sites_dir / "sites.tsv"

    def sites_metrics(self, endpoint: str) -> Path:
        return self.sites_dir / "validation" / endpoint / "metrics.tsv"

    def sites_predictions(self, endpoint: str) -> Path:
        return self.sites_dir / "validation" / endpoint / "predictions.tsv"

    def sites_paired(self, endpoint: str) -> Path:
        return self.sites_dir / "validation" / endpoint / "paired_delong.tsv"

    # a site run from a kit: what it hands to `mcrad kit run` for the return
    @property
    def site_dir(self) -> Path:
        return self.root / "site"

    @property
    def site_feature_summary(self) -> Path:
        """Per feature mean, SD and quantiles before and after harmonisation (no per-patient value)."""
        return self.site_dir / "feature_summary.tsv"

    @property
    def site_qc_summary(self) -> Path:
        """Counts per stage and status (no path, no identifier)."""
        return self.site_dir / "qc_summary.tsv"

    @property
    def site_report(self) -> Path:
        return self.site_dir / "report.html"
