"""Multi-sequence MRI: sheet columns image_<SEQ>/mask_<SEQ>, ingest of every sequence, rigid registration to the
reference, features per sequence, and the bad inputs of a multi-sequence case."""
import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from helpers import STUDY
from mcrad.config import load_config
from mcrad.errors import CaseError, ConfigError
from mcrad.features.extract import features_shard, make_extractors
from mcrad.features.robustness import robustness_case
from mcrad.ingest import ingest_shard
from mcrad.paths import Paths
from mcrad.preprocess import preprocess_shard
from mcrad.segment import segment_shard

SEQS = ["T1", "T2"]
SPACING = 2.0  # preprocess.spacing_mm: "aligned within one voxel" means within this many mm


def mr_config(**preprocess) -> dict:
    return load_config({**STUDY, "cohort": {"sheet": "unused.tsv", "sequences": SEQS},
                        "preprocess": {"modality": "MR", "spacing_mm": [SPACING] * 3, **preprocess},
                        "segment": {"peritumoral": {"activate": False}},
                        "features": {"params": "config/radiomics/mr_default.yaml"}})


def motion(degrees=5.0, shift=(4.2, -3.4, 2.6)) -> sitk.Euler3DTransform:
    """A rigid patient movement between the two acquisitions: reference point -> the same anatomy in the T2."""
    t = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.0, np.deg2rad(2.0), np.deg2rad(degrees))
    t.SetTranslation(shift)
    return t


def anatomy(points: np.ndarray, contrast: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(intensity, tumour) of an analytic head at physical points (N x 3, mm, head centred on 0): ellipsoid head,
    spherical tumour, ellipsoidal ventricle. `contrast`: head, tumour, ventricle intensities."""
    x, y, z = points.T
    head = (x / 34) ** 2 + (y / 40) ** 2 + (z / 30) ** 2 <= 1
    tumour = (x - 14) ** 2 + (y + 12) ** 2 + (z - 6) ** 2 <= 10 ** 2
    vent = ((x + 8) / 12) ** 2 + ((y - 10) / 6) ** 2 + ((z + 4) / 8) ** 2 <= 1
    value = np.where(head, contrast[0], 0.0)
    value = np.where(vent, contrast[2], value)
    return np.where(tumour, contrast[1], value), tumour


def acquire(size, spacing, contrast, seen: sitk.Transform | None, seed: int, tumour_at=(0.0, 0.0, 0.0),
            centre=(0.0, 0.0, 0.0)) -> tuple[sitk.Image, sitk.Image]:
    """An image on a grid centred on `centre` (scanner frame, mm) whose voxel at q shows the anatomy at
    seen^-1(q) (the patient moved by `seen`), with noise; and its tumour mask (optionally drawn `tumour_at` mm
    off: a wrong mask)."""
    grid = sitk.Image(list(size), sitk.sitkFloat32)
    grid.SetSpacing(spacing)
    grid.SetOrigin([c - (n - 1) / 2 * s for c, n, s in zip(centre, size, spacing, strict=True)])
    k, j, i = np.indices(size[::-1]).reshape(3, -1)
    q = np.asarray(grid.GetOrigin()) + np.stack([i, j, k], axis=1) * np.asarray(spacing)
    if seen is not None:
        inv = seen.GetInverse()
        q = np.array([inv.TransformPoint(p) for p in q.tolist()])
    value, tumour = anatomy(q, contrast)
    _, wrong = anatomy(q - np.asarray(tumour_at), contrast)
    value = value + np.random.default_rng(seed).normal(0, 8, value.shape)
    image = sitk.GetImageFromArray(value.reshape(size[::-1]).astype(np.float32))
    mask = sitk.GetImageFromArray((wrong if any(tumour_at) else tumour).reshape(size[::-1]).astype(np.uint8))
    for im in (image, mask):
        im.CopyInformation(grid)
    return image, mask


T1_CONTRAST, T2_CONTRAST = (100.0, 300.0, 40.0), (250.0, 80.0, 400.0)  # T2: other contrast, inverted ordering


def write_case(directory, pid, t2_mask_off=(0.0, 0.0, 0.0), seed=1) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    t1, t1_mask = acquire((48, 48, 36), (2.0, 2.0, 2.0), T1_CONTRAST, None, seed=seed)
    # the T2 is a slab off the T1's centre (as a small-field sequence is): its field of view, not the anatomy, moved
    t2, t2_mask = acquire((40, 44, 16), (2.3, 2.2, 3.0), T2_CONTRAST, motion(), seed=seed + 1, tumour_at=t2_mask_off,
                          centre=(6.0, -8.0, 10.0))
    files = {"image": t1, "mask": t1_mask, "image_T2": t2, "mask_T2": t2_mask}
    for col, im in files.items():
        sitk.WriteImage(im, str(directory / f"{pid}_{col}.nii.gz"))
    return {"patient_id": pid, "centre": "A", **{c: f"{pid}_{c}.nii.gz" for c in files}}


def run_ingest(tmp_path, rows, strict=False):
    sheet = tmp_path / "cohort.tsv"
    df = pd.DataFrame(rows)
    df.to_csv(sheet, sep="\t", index=False)
    cfg = mr_config()
    return ingest_shard(df.fillna(""), sheet, list(df["patient_id"]), Paths(tmp_path / "out"), strict, cfg["ingest"],
                        SEQS)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """One two-sequence case through ingest and preprocess; (paths, ingest table, preprocess table)."""
    tmp = tmp_path_factory.mktemp("ms")
    ingested = run_ingest(tmp, [write_case(tmp, "p1")])
    paths = Paths(tmp / "out")
    pre = preprocess_shard(ingested, mr_config()["preprocess"], paths, strict=True, sequences=SEQS, seed=11)
    return paths, ingested, pre


def test_ingest_writes_every_sequence_with_its_geometry(case):
    paths, ingested, _ = case
    row = ingested.iloc[0]
    assert row["status"] == "ok" and row["sequences"] == "T1,T2"
    assert row["sequence_geometry"] == "T2 40x44x16 @ 2.3x2.2x3 mm"
    d = paths.case_dir("A", "p1") / "ingest"
    assert sitk.ReadImage(str(d / "image-T2.nii.gz")).GetSize() == (40, 44, 16)
    assert sitk.ReadImage(str(d / "seqmask-T2.nii.gz")).GetSize() == (40, 44, 16)


def test_registered_sequence_lies_on_the_reference_grid_within_one_voxel(case):
    paths, _, pre = case
    row = pre.iloc[0]
    assert row["status"] == "ok", row["message"]
    assert row["reg_T2_dice"] > 0.9 and row["reg_T2_mi"] > 0.1
    d = paths.case_dir("A", "p1") / "preprocess"
    ref, t2 = sitk.ReadImage(str(d / "image.nii.gz")), sitk.ReadImage(str(d / "image-T2.nii.gz"))
    assert (t2.GetSize(), t2.GetSpacing(), t2.GetOrigin()) == (ref.GetSize(), ref.GetSpacing(), ref.GetOrigin())
    assert sitk.ReadImage(str(d / "image-T1.nii.gz")).GetSize() == ref.GetSize()
    # the transform found against the movement we made, at every voxel of the ROI features are extracted from
    found, truth = sitk.ReadTransform(str(d / "transform-T2.tfm")), motion()
    roi = np.argwhere(sitk.GetArrayFromImage(sitk.ReadImage(str(d / "mask.nii.gz"))) > 0)[:, ::-1]
    assert len(roi) > 300
    points = [ref.TransformIndexToPhysicalPoint(v) for v in roi.tolist()]
    err = max(np.linalg.norm(np.subtract(found.TransformPoint(p), truth.TransformPoint(p))) for p in points)
    assert err < SPACING, f"registration error up to {err:.2f} mm in the ROI: more than one {SPACING} mm voxel"
    # without registration (the scanner frame alone) the same check fails: the test can tell
    assert max(np.linalg.norm(np.subtract(p, truth.TransformPoint(p))) for p in points) > 2 * SPACING
    # the image itself: where the T2 slab saw the anatomy, the registered T2 matches the T2 contrast of the
    # unmoved anatomy on that grid
    source = sitk.ReadImage(str(paths.case_dir("A", "p1") / "ingest" / "image-T2.nii.gz"))
    k, j, i = np.indices(ref.GetSize()[::-1]).reshape(3, -1)
    points = [ref.TransformIndexToPhysicalPoint(v) for v in np.stack([i, j, k], 1).tolist()]
    seen = np.array([np.all((np.array(source.TransformPhysicalPointToContinuousIndex(truth.TransformPoint(p))) >= 0)
                            & (np.array(source.TransformPhysicalPointToContinuousIndex(truth.TransformPoint(p)))
                               <= np.array(source.GetSize()) - 1)) for p in points])
    assert seen.mean() > 0.5
    expected = anatomy(np.array(points), T2_CONTRAST)[0]
    assert np.corrcoef(sitk.GetArrayFromImage(t2).ravel()[seen], expected[seen])[0, 1] > 0.9
    unregistered = sitk.Resample(source, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    assert np.corrcoef(sitk.GetArrayFromImage(unregistered).ravel()[seen], expected[seen])[0, 1] < 0.8


def test_registration_is_byte_identical_run_to_run(case, tmp_path):
    paths, ingested, _ = case
    again = Paths(tmp_path / "out")
    src, dst = paths.case_dir("A", "p1") / "ingest", again.case_dir("A", "p1") / "ingest"
    shutil.copytree(src, dst)
    preprocess_shard(ingested, mr_config()["preprocess"], again, strict=True, sequences=SEQS, seed=11)
    for name in ("image-T2.nii.gz", "transform-T2.tfm", "image.nii.gz"):
        a = (paths.case_dir("A", "p1") / "preprocess" / name).read_bytes()
        assert a == (again.case_dir("A", "p1") / "preprocess" / name).read_bytes(), name


def test_features_are_named_by_sequence(case):
    paths, _, pre = case
    cfg = mr_config()
    seg = segment_shard(pre, cfg["segment"], paths, strict=True)
    out = features_shard(seg, cfg["features"], cfg["segment"], paths, strict=True, sequences=SEQS)
    assert out.iloc[0]["status"] == "ok", out.iloc[0]["message"]
    names = [c for c in out.columns if c.endswith("_original_firstorder_Mean")]
    assert sorted(names) == ["T1_tumour_original_firstorder_Mean", "T2_tumour_original_firstorder_Mean"]
    t1 = {c[3:] for c in out.columns if c.startswith("T1_tumour_")}
    t2 = {c[3:] for c in out.columns if c.startswith("T2_tumour_")}
    assert t1 == t2 and len(t1) > 50
    # T2 shows the tumour darker than its surroundings, T1 brighter: the two really are different images
    assert out.iloc[0]["T1_tumour_original_firstorder_Mean"] != out.iloc[0]["T2_tumour_original_firstorder_Mean"]
    assert out.iloc[0]["T1_tumour_original_shape_VoxelVolume"] == out.iloc[0]["T2_tumour_original_shape_VoxelVolume"]
    # the contour-robustness re-extraction names its features the same way, so its ICCs cover every sequence
    opts = {**cfg["features"], "robustness": {**cfg["features"]["robustness"], "perturbations": ["erode"]}}
    table = robustness_case(out.iloc[0], make_extractors(opts, SEQS), opts, cfg["segment"], paths, 5, SEQS)
    assert list(table.index) == ["original", "erode"]
    feature_columns = [c for c in out.columns if c.startswith(("T1_", "T2_"))]
    assert sorted(table.columns) == sorted(feature_columns)
    assert table.loc["original", "T2_tumour_original_firstorder_Mean"] == pytest.approx(
        out.iloc[0]["T2_tumour_original_firstorder_Mean"])


def test_missing_or_empty_sequence_is_quarantined_naming_patient_file_and_fix(tmp_path):
    good = write_case(tmp_path, "good")
    gone = {**write_case(tmp_path, "gone"), "image_T2": "nowhere_T2.nii.gz"}
    blank = {**write_case(tmp_path, "blank"), "image_T2": ""}
    out = run_ingest(tmp_path, [good, gone, blank]).set_index("patient_id")
    assert out.loc["good", "status"] == "ok"
    msg = out.loc["gone", "message"]
    assert out.loc["gone", "status"] == "quarantined" and out.loc["gone", "failed_stage"] == "ingest"
    assert "patient gone" in msg and "nowhere_T2.nii.gz" in msg and "T2 image file not found" in msg and "Fix:" in msg
    assert "patient blank" in out.loc["blank", "message"] and "column image_T2 is empty" in out.loc["blank", "message"]
    with pytest.raises(CaseError, match="patient gone.*nowhere_T2"):
        run_ingest(tmp_path, [gone], strict=True)


def test_failed_registration_is_quarantined(tmp_path):
    """The T2's own mask drawn 30 mm off: after registration it cannot overlap the reference mask."""
    ingested = run_ingest(tmp_path, [write_case(tmp_path, "off", t2_mask_off=(0.0, 30.0, 0.0))])
    assert ingested.iloc[0]["status"] == "ok"
    out = preprocess_shard(ingested, mr_config()["preprocess"], Paths(tmp_path / "out"), strict=False,
                           sequences=SEQS, seed=11)
    row = out.iloc[0]
    assert row["status"] == "quarantined" and row["failed_stage"] == "preprocess"
    assert "patient off" in row["message"] and "image-T2.nii.gz" in row["message"]
    assert "registration of T2" in row["message"] and "min_dice" in row["message"] and "Fix:" in row["message"]


@pytest.mark.parametrize("change, match", [
    ({"cohort": {"sheet": "s.tsv", "sequences": ["T1"]}}, "names one sequence"),
    ({"cohort": {"sheet": None, "sequences": SEQS}}, "needs a cohort sheet"),
    ({"cohort": {"sheet": "s.tsv", "sequences": SEQS}}, "Multi-sequence MRI takes preprocess.modality MR"),
    ({"cohort": {"sheet": "s.tsv", "sequences": SEQS}, "preprocess": {"modality": "MR", "mr_normalise": "nyul"}},
     "Nyul"),
])
def test_config_refuses_multi_sequence_set_ups_it_cannot_honour(change, match):
    with pytest.raises(ConfigError, match=match):
        load_config({**STUDY, **change})


@pytest.mark.e2e
def test_snakemake_runs_a_two_sequence_mr_study_through_features(tmp_path):
    import os
    import subprocess

    import yaml
    from helpers import REPO, SNAKEMAKE

    clinical = {"age": "60", "sex": "M", "t_stage": "2", "hpv": "positive", "smoking": "never"}
    rows = [{**write_case(tmp_path / "data", f"p{i}", seed=10 * i), **clinical, "nodal_metastasis": str(i % 2)}
            for i in range(3)]
    rows[2]["image_T2"] = "missing_T2.nii.gz"
    pd.DataFrame(rows).to_csv(tmp_path / "data" / "cohort.tsv", sep="\t", index=False)
    cfg = {"study": {"name": "ms", "results": str(tmp_path / "results"), "seed": 3},
           "cohort": {"sheet": str(tmp_path / "data" / "cohort.tsv"), "sequences": SEQS},
           "design": {"train": ["A"], "external": [], "prospective": []},
           "endpoints": [{"name": "nodal_metastasis", "column": "nodal_metastasis"}],
           "preprocess": {"modality": "MR", "spacing_mm": [SPACING] * 3},
           "segment": {"peritumoral": {"activate": False}},
           "features": {"params": "config/radiomics/mr_default.yaml"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    root = tmp_path / "results" / "ms"
    target = root / "features" / "raw.tsv"

    def snakemake(*targets):
        return subprocess.run([str(SNAKEMAKE), *map(str, targets), "--cores", "2", "--configfile",
                               str(tmp_path / "config.yaml")], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": "0"})

    proc = snakemake(target)
    assert proc.returncode != 0 and not root.exists(), "a missing sequence file stops the study before any job"
    assert "line 4 (patient p2), column 'image_T2': file not found" in proc.stderr and "missing_T2" in proc.stderr
    rows[2]["image_T2"] = "p2_image_T2.nii.gz"
    pd.DataFrame(rows).to_csv(tmp_path / "data" / "cohort.tsv", sep="\t", index=False)
    proc = snakemake(target, root / "qc" / "preprocess.tsv", root / "features" / "robustness.tsv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    features = pd.read_csv(target, sep="\t")
    assert list(features["patient_id"]) == ["p0", "p1", "p2"]
    assert {c.split("_")[0] for c in features.columns if c not in ("patient_id", "centre")} == set(SEQS)
    assert features.filter(like="_original_").notna().all().all()
    qc = pd.read_csv(root / "qc" / "preprocess.tsv", sep="\t")
    assert list(qc["status"]) == ["ok"] * 3 and (qc["sequences"] == "T1,T2").all()
    # a 10 mm sphere drawn on a 2.3 x 2.2 x 3 mm grid and carried to a 2 mm one: Dice < 1 even when aligned
    assert (qc["reg_T2_dice"] > 0.85).all() and (qc["reg_T2_mi"] > 0.1).all()
    icc = pd.read_csv(root / "features" / "robustness.tsv", sep="\t")
    assert sorted(icc["feature"]) == sorted(c for c in features.columns if c not in ("patient_id", "centre"))
    assert icc.loc[icc["feature"].str.startswith("T2_"), "icc"].notna().any(), "ICCs of the T2 features too"


def test_report_shows_registration_quality_per_centre(tmp_path):
    from mcrad.report.inputs import ReportInputs
    from mcrad.report.study import qc_registration

    paths = Paths(tmp_path)
    paths.qc_preprocess.parent.mkdir(parents=True)
    pd.DataFrame({"patient_id": ["a", "b", "c"], "centre": ["C1", "C1", "C2"], "status": ["ok", "ok", "error"],
                  "reg_T2_mi": [0.5, 0.3, np.nan], "reg_T2_dice": [0.9, 0.8, np.nan]}
                 ).to_csv(paths.qc_preprocess, sep="\t", index=False)
    inputs = ReportInputs(tmp_path, [paths.qc_preprocess])
    html = qc_registration(inputs)
    assert "reg_T2_mi_median" in html and "reg_T2_dice_min" in html and "0.8" in html
    assert "C2" not in html  # only cases that came through
    paths.qc_preprocess.write_text("patient_id\tcentre\tstatus\na\tC1\tok\n")
    assert qc_registration(inputs) == ""  # single-image studies: no registration table
