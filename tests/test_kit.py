"""Site kit (issue 18): a study trained centrally with no external centre, its kit run at two sites that hold only
the kit and their own sheet and images, the returns collected; metrics equal to the all-in-one study's. Plus the
return's allow-list and content checks, and refusals of a modified kit and of another study's return."""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, TINY_BASE, run_study
from mcrad.errors import McradError
from mcrad.kit import lock, manifest
from mcrad.kit.returns import check_member, list_return

CENTRES = ("C2", "C3")
BASE = TINY_BASE
EP = "nodal_metastasis"


def mcrad(*args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, "-m", "mcrad.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env)
    if ok and proc.returncode != 0:
        pytest.fail(f"mcrad {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def kit_study(tiny_study) -> dict:
    """The all-in-one study (C1 trains, C2 and C3 external: conftest's tiny_study) and the same study trained
    centrally on C1 alone, its kit run at C2 and C3 from directories of their own, the returns collected."""
    work, synth, cohort = tiny_study["work"], tiny_study["synth"], tiny_study["cohort"]
    cohort[cohort["centre"] == "C1"].to_csv(synth / "central.tsv", sep="\t", index=False)
    run_study({**BASE, "cohort": {"sheet": str(synth / "central.tsv")}, "design": {"train": ["C1"], "external": []}},
              work / "central")
    kit = work / "kit.tar.gz"
    mcrad("kit", "export", "--config", str(work / "central" / "config.yaml"), "--out", str(kit), cwd=REPO)
    returns = {}
    for centre in CENTRES:  # each site: the kit, its own sheet and images, nothing else
        site = work / f"site_{centre}"
        (site / "images").mkdir(parents=True)
        rows = cohort[cohort["centre"] == centre]
        for f in [*rows["image"], *rows["mask"]]:
            shutil.copyfile(synth / f, site / f)
        rows.to_csv(site / "sheet.tsv", sep="\t", index=False)
        shutil.copyfile(kit, site / "kit.tar.gz")
        mcrad("kit", "run", "kit.tar.gz", "--sheet", "sheet.tsv", "--centre", centre, "--out", "return.tar.gz",
              "--workdir", "work", "--cores", "2", cwd=site)
        returns[centre] = site / "return.tar.gz"
    # the same C3 run again, sharing aggregates only (its DAG is done: packing only)
    mcrad("kit", "run", "kit.tar.gz", "--sheet", "sheet.tsv", "--centre", "C3", "--out", "aggregate.tar.gz",
          "--workdir", "work", "--aggregate-only", cwd=work / "site_C3")
    mcrad("kit", "collect", "--config", str(work / "central" / "config.yaml"), *map(str, returns.values()),
          "--cores", "2", cwd=REPO)
    return {"work": work, "kit": kit, "returns": returns, "aggregate": work / "site_C3" / "aggregate.tar.gz",
            "all": work / "all" / "results" / "kitstudy", "central": work / "central" / "results" / "kitstudy",
            "central_config": work / "central" / "config.yaml"}


def _numeric_equal(a: pd.DataFrame, b: pd.DataFrame, keys: list[str]) -> None:
    a, b = a.sort_values(keys).reset_index(drop=True), b.sort_values(keys).reset_index(drop=True)
    assert a[keys].equals(b[keys])
    numeric = [c for c in a.columns if c in b.columns and pd.api.types.is_numeric_dtype(a[c])]
    assert len(numeric) > 10
    np.testing.assert_allclose(a[numeric].to_numpy(float), b[numeric].to_numpy(float), rtol=0, atol=1e-9)


@pytest.mark.e2e
def test_site_metrics_equal_all_in_one(kit_study, tmp_path):
    """Per centre (from each return and after collection) and pooled: the all-in-one study's numbers."""
    from mcrad.kit.layout import ReturnPaths
    from mcrad.kit.returns import open_return
    from mcrad.paths import Paths

    reference = pd.read_csv(Paths(kit_study["all"]).metrics(EP), sep="\t")
    reference = reference[reference["stage"] == "external"]
    for centre, archive in kit_study["returns"].items():
        record, folder = open_return(archive, tmp_path / centre)
        assert (record["centre"], record["stage"], record["aggregate_only"]) == (centre, "external", False)
        returned = pd.read_csv(ReturnPaths(folder).metrics(EP), sep="\t")
        _numeric_equal(returned, reference[reference["centre"] == centre], ["model"])
    merged = pd.read_csv(Paths(kit_study["central"]).sites_metrics(EP), sep="\t")
    merged = merged[merged["stage"] == "external"].drop(columns=["source"])
    _numeric_equal(merged, reference, ["model", "centre"])  # C2, C3 and pooled
    paired = pd.read_csv(Paths(kit_study["central"]).sites_paired(EP), sep="\t")
    ref_paired = pd.read_csv(Paths(kit_study["all"]).paired(EP), sep="\t")
    keys = ["centre", "stage", "model_a", "model_b"]
    pd.testing.assert_frame_equal(paired.sort_values(keys).reset_index(drop=True),
                                  ref_paired.sort_values(keys).reset_index(drop=True), check_exact=False, atol=1e-9)


@pytest.mark.e2e
def test_sites_never_see_central_results(kit_study):
    """A site's folder holds no path of the central study, and its run trained nothing."""
    from mcrad.paths import Paths

    forbidden = [str(kit_study["central"].parent.parent), str(kit_study["all"].parent.parent),
                 str(kit_study["work"] / "synth")]
    for centre in CENTRES:
        site = kit_study["work"] / f"site_{centre}"
        for f in site.rglob("*"):
            if f.is_file() and f.suffix in (".tsv", ".json", ".yaml", ".log", ".html", ".txt", ""):
                text = f.read_text(errors="replace")
                assert not any(p in text for p in forbidden), f"{f} names a central path"
        root = Paths(site / "work" / "results" / "kitstudy")
        assert root.site_report.is_file()
        assert not (root.root / "models").exists() and not root.harmoniser.exists()
        assert not root.nyul_standard.exists() and not root.robustness.exists()


@pytest.mark.e2e
def test_returns_list_only_tables(kit_study):
    """Every member of every return listed: tables only, no problem; aggregate-only holds no per-patient row."""
    for archive in [*kit_study["returns"].values(), kit_study["aggregate"]]:
        members = list_return(archive)
        assert (members["problems"] == "").all(), members
        assert all(m.endswith((".tsv", ".json", ".html")) for m in members["member"])
    full = list_return(kit_study["returns"]["C3"])
    assert f"predictions/{EP}.tsv" in set(full["member"])
    aggregate = list_return(kit_study["aggregate"])
    assert not any(m.startswith("predictions/") for m in aggregate["member"])
    with __import__("tarfile").open(kit_study["aggregate"]) as tar:
        text = "".join(tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile())
    assert "C3-001" not in text and "patient_id" not in text


@pytest.mark.e2e
def test_collected_report_marks_sites(kit_study):
    from mcrad.paths import Paths

    paths = Paths(kit_study["central"])
    summary = pd.read_csv(paths.sites_summary, sep="\t").set_index("centre")
    assert summary.loc["C1", "run"] == "central" and summary.loc["C1", "stage"] == "training"
    assert set(summary.loc[list(CENTRES), "shared"]) == {"per-patient predictions"}
    html = paths.report.read_text()
    assert "Centres run at their sites (site kit)" in html and "site-run" in html


def _repack(folder: Path, out: Path) -> Path:
    """Pack a folder as a kit or return without rebuilding its manifest (what an edit after export leaves)."""
    manifest.pack(folder, out)
    return out


@pytest.mark.e2e
def test_modified_kit_refused(kit_study, tmp_path):
    from mcrad.kit.run import open_kit

    folder = manifest.unpack(kit_study["kit"], tmp_path / "kit", "kit")
    pkl = folder / "models" / EP / "radiomics" / "model.pkl"
    data = bytearray(pkl.read_bytes())
    data[len(data) // 2] ^= 1
    pkl.write_bytes(bytes(data))
    bad = _repack(folder, tmp_path / "modified.tar.gz")
    with pytest.raises(McradError, match=f"models/{EP}/radiomics/model.pkl: changed"):
        open_kit(bad, tmp_path / "site")
    proc = mcrad("kit", "run", str(bad), "--sheet", "x.tsv", "--centre", "C2", "--out", "r.tar.gz", "--workdir",
                 str(tmp_path / "site2"), cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "modified after it was made, refused" in proc.stderr


@pytest.mark.e2e
def test_site_named_as_training_centre_refused(kit_study, tmp_path):
    """A site called C1 would be ComBat's reference batch (left unmapped): refused before anything runs."""
    from mcrad.kit.run import run_kit

    with pytest.raises(McradError, match="'C1' is the name of a training centre"):
        run_kit(kit_study["kit"], tmp_path / "sheet.tsv", "C1", tmp_path / "r.tar.gz", tmp_path / "work")


@pytest.mark.e2e
def test_return_from_another_study_refused(kit_study, tmp_path):
    """A return made with another study's kit (other bundles) is refused by collect, naming both studies."""
    from mcrad.kit.collect import collect

    folder = manifest.unpack(kit_study["returns"]["C2"], tmp_path / "ret", "return")
    record = json.loads((folder / "return.json").read_text())
    record["study"] = "otherstudy"
    record["bundles"] = {k: "0" * 64 for k in record["bundles"]}
    (folder / "return.json").write_text(json.dumps(record))
    manifest.build(folder)  # a consistent return, just not of this study
    other = _repack(folder, tmp_path / "other.tar.gz")
    import yaml

    cfg = yaml.safe_load(kit_study["central_config"].read_text())
    cwd = os.getcwd()
    os.chdir(REPO)  # config paths are relative to the folder the study runs in
    try:
        with pytest.raises(McradError, match="kit of study 'otherstudy'.*refused"):
            collect(cfg, [other])
        # edited after packing (manifest not rebuilt): refused before its origin is read
        (folder / "return.json").write_text(json.dumps({**record, "study": "kitstudy"}))
        with pytest.raises(McradError, match="return.json: changed"):
            collect(cfg, [_repack(folder, tmp_path / "edited.tar.gz")])
    finally:
        os.chdir(cwd)


# ---- fast unit tests: what a return may hold ------------------------------------------------------------------
def _nifti_gz() -> bytes:
    import SimpleITK as sitk

    with __import__("tempfile").TemporaryDirectory() as d:
        p = Path(d) / "x.nii.gz"
        sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkInt16), str(p))
        return p.read_bytes()


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 4, 4)))
    return buf.getvalue()


GOOD = {
    "metrics/nodal_metastasis.tsv": b"model\tcentre\tstage\tn\tauc\nclinical\tC2\texternal\t16\t0.71\n",
    "predictions/os.tsv": b"patient_id\tcentre\tstage\tmodel\tlabel\tscore\nC2-001\tC2\texternal\tclinical\t1\t0.3\n",
    "return.json": json.dumps({"study": "s", "centre": "C2", "bundles": {"a/b": "f" * 64}}).encode(),
    "report.html": b"<html><table><tr><th>n</th></tr><tr><td>16</td></tr></table></html>",
    "manifest.json": json.dumps({"files": {"qc_summary.tsv": "a" * 64}}).encode(),
}
BAD = {
    "cases/C2-001/image.nii.gz": (b"x", "not a kind"),
    "features.tsv": (b"a\tb\n1\t2\n", "not a kind"),
    "metrics/ep.tsv": (_nifti_gz(), "gzip"),
    "predictions/ep.tsv": (_npy(), "numpy"),
    "qc_summary.tsv": (b"\0" * 128 + b"DICM" + b"\0" * 8, "DICOM"),
    "feature_summary.tsv": (b"centre\tnote\nC2\t/data/site/images/C2-001_ct.nii.gz\n", "image file name"),
    "metrics/a.tsv": (b"centre\tnote\nC2\tread from /home/radiology/exports/batch1\n", "a file path"),
    "metrics/b.tsv": (b"centre\tnote\nC2\tD:\\pacs\\x\n", "a file path"),
    "metrics/c.tsv": (b"centre\ttag\nC2\t(0010,0020)\n", "a DICOM tag"),
    "metrics/d.tsv": (b"centre\tuid\nC2\t1.2.840.113619.2.55.3.604688\n", "a DICOM UID"),
    "metrics/e.tsv": (b"centre\tPatientName\nC2\tDOE^JOHN\n", "identifying DICOM attribute"),
    "metrics/f.tsv": (("\t".join(f"v{i}" for i in range(200)) + "\n").encode(), "200 columns"),
    "metrics/g.tsv": (b"centre\t0.5\t0.7\nC2\t1\t2\n", "not names"),
    "return.json": (json.dumps({"voxels": list(range(1000))}).encode(), "array of 1000 numbers"),
    "report.html": (b"<html><img src='data:image/png;base64,AAAA'></html>", "embedded image"),
    "manifest.json": (json.dumps({"files": {"cases/x/mask.nii.gz": "a" * 64}}).encode(), "not a member"),
}


def test_good_members_pass():
    for name, data in GOOD.items():
        assert check_member(name, data) == [], name


@pytest.mark.parametrize("name", list(BAD))
def test_bad_members_refused(name):
    data, why = BAD[name]
    problems = check_member(name, data)
    assert problems and why in " ".join(problems), (name, problems)


def test_list_return_flags_a_crafted_return(tmp_path):
    folder = tmp_path / "ret"
    for name, data in {**GOOD, "metrics/x.tsv": BAD["metrics/a.tsv"][0]}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / "mask.nii.gz").write_bytes(_nifti_gz())
    manifest.build(folder)
    members = list_return(_repack(folder, tmp_path / "r.tar.gz")).set_index("member")
    assert "a file path" in members.loc["metrics/x.tsv", "problems"]
    assert "not a kind" in members.loc["mask.nii.gz", "problems"]
    assert members.loc["metrics/nodal_metastasis.tsv", "problems"] == ""


def test_manifest_names_every_change(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.json").write_text("{}")
    (tmp_path / "y.tsv").write_text("a\n")
    manifest.build(tmp_path)
    (tmp_path / "y.tsv").write_text("b\n")
    (tmp_path / "a" / "x.json").unlink()
    (tmp_path / "z.tsv").write_text("c\n")
    with pytest.raises(McradError) as exc:
        manifest.verify(tmp_path, "kit k")
    text = str(exc.value)
    assert "y.tsv: changed" in text and "a/x.json: listed in the manifest but missing" in text
    assert "z.tsv: not in the manifest" in text


def test_pack_is_byte_stable(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "a.tsv").write_text("a\n")
    manifest.pack(tmp_path / "f", tmp_path / "1.tar.gz")
    os.utime(tmp_path / "f" / "a.tsv", (1, 1))
    manifest.pack(tmp_path / "f", tmp_path / "2.tar.gz")
    assert (tmp_path / "1.tar.gz").read_bytes() == (tmp_path / "2.tar.gz").read_bytes()
    assert gzip.decompress((tmp_path / "1.tar.gz").read_bytes())


def test_lock_refuses_feature_packages_and_warns_on_others():
    here = {"packages": {"numpy": "2.4.6", "requests": "2.34.2", "mcrad": "0.1.0"}, "code": {"features": "abc"}}
    assert lock.compare(here, here) == ([], [])
    refusals, warnings = lock.compare({**here, "packages": {**here["packages"], "numpy": "1.26.4",
                                                            "requests": "2.0.0"}}, here)
    assert refusals == ["numpy: the study used 1.26.4, this installation has 2.4.6"]
    assert warnings == ["requests: the study used 2.0.0, this installation has 2.34.2"]
    refusals, _ = lock.compare({**here, "code": {"features": "def"}}, here)
    assert "mcrad stage features" in refusals[0]
    with pytest.raises(McradError, match="numpy: the study used 1.26.4"):
        lock.check({**here, "packages": {**here["packages"], "numpy": "1.26.4"}}, here)


def test_config_kit_locked_rules():
    from mcrad.config import load_config

    base = {"study": {"name": "s"}, "cohort": {"sheet": "x.tsv"}, "endpoints": [{"name": "e", "column": "e"}]}
    with pytest.raises(McradError, match="design.train is empty"):
        load_config({**base, "design": {"train": [], "external": ["A"]}})
    with pytest.raises(McradError, match="set kit.dir"):
        load_config({**base, "design": {"train": [], "external": ["A"]}, "kit": {"locked": True}})
    with pytest.raises(McradError, match="leave design.train empty"):
        load_config({**base, "design": {"train": ["B"], "external": ["A"]}, "kit": {"locked": True, "dir": "k"}})
    cfg = load_config({**base, "design": {"train": [], "external": ["A"]}, "kit": {"locked": True, "dir": "k"}})
    assert cfg["kit"]["locked"]


def test_site_without_labels_is_stage_3(tmp_path):
    """A sheet without the outcome column scores its centre as prospective; the sheet check does not ask for it."""
    from mcrad.cohort import labelled, required_columns
    from mcrad.kit.run import has_labels

    cfg = {"endpoints": [{"name": "e", "column": "e"}], "cohort": {"clinical": []},
           "design": {"train": [], "external": [], "prospective": ["A"]}}
    sheet = tmp_path / "s.tsv"
    sheet.write_text("patient_id\tcentre\timage\tmask\nA-1\tA\ti.nii.gz\tm.nii.gz\n")
    assert not has_labels(sheet, "A", cfg)
    assert not labelled(cfg) and "e" not in required_columns(cfg)
    sheet.write_text("patient_id\tcentre\timage\tmask\te\nA-1\tA\ti.nii.gz\tm.nii.gz\t1\n")
    assert has_labels(sheet, "A", cfg)


def test_site_dag_reads_locked_artefacts_from_the_kit(tmp_path):
    """kit.locked: bundles, harmoniser and landmarks from the kit, no training predictions, the site report as
    target; otherwise the study's own paths."""
    from mcrad.config import load_config
    from mcrad.dag import StudyFiles
    from mcrad.kit.layout import KitPaths
    from mcrad.paths import Paths
    from mcrad.plan import plan_study

    sheet = tmp_path / "s.tsv"
    (tmp_path / "i.nii.gz").write_bytes(b"x")
    sheet.write_text("patient_id\tcentre\timage\tmask\tnodal_metastasis\nA-1\tA\ti.nii.gz\ti.nii.gz\t1\n")
    raw = {"study": {"name": "s", "results": str(tmp_path / "r")}, "cohort": {"sheet": str(sheet), "clinical": []},
           "design": {"train": [], "external": ["A"]}, "kit": {"locked": True, "dir": str(tmp_path / "kit")},
           "endpoints": [{"name": "nodal_metastasis", "column": "nodal_metastasis"}]}
    cfg = load_config(raw)
    files = StudyFiles(cfg, plan_study(cfg), Paths.from_config(cfg))
    kit = KitPaths(tmp_path / "kit")
    assert files.artefacts == kit and files.internal_of("nodal_metastasis") == []
    assert files.bundle_manifests("nodal_metastasis")[0] == kit.bundle_manifest("nodal_metastasis", "clinical")
    assert files.targets == [files.paths.site_report]
    central = {**raw, "design": {"train": ["A"], "external": []}, "kit": {}}
    cfg = load_config(central)
    files = StudyFiles(cfg, plan_study(cfg), Paths.from_config(cfg))
    assert files.artefacts == files.paths and files.targets[0] == files.paths.report
