"""`mcrad discover`: DICOM trees (nested and flat, files without extension, two patients in one folder, localizers,
two reconstructions, duplicate and out-of-date structure sets, DICOM-SEG, PET/CT, MR) -> the expected cohort sheet,
every exclusion with its reason, the clinical join both ways, --modality and --sequence, ingest of what was
discovered (PET in SUV), the header cache, and no identifier in any output."""
import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from helpers import STUDY
from mcrad.cli import main
from mcrad.config import load_config
from mcrad.dicomsynth import F18_HALF_LIFE_S, PHI, square, write_pet, write_rtstruct, write_seg, write_series
from mcrad.ingest import ingest_shard
from mcrad.paths import Paths
from pydicom.uid import generate_uid

GTV = {"GTVp": [(4, square(5, 15)), (5, square(6, 14))]}
ACTIVITY, WEIGHT_KG, DOSE_BQ = 5000.0, 70.0, 370e6  # write_pet's defaults: injected 09:00, scanned 10:00
SUV = ACTIVITY * WEIGHT_KG * 1000 / (DOSE_BQ * 2 ** (-3600 / F18_HALF_LIFE_S))


def phi(n: int) -> dict:
    return {**PHI, "PatientID": f"MRN{n:03d}", "PatientName": f"Doe^Patient{n}", "PatientBirthDate": f"195001{n:02d}",
            "AccessionNumber": f"ACC{n:05d}", "InstitutionName": "Saint Elsewhere Hospital"}


def patient(folder, n, rt=True, roi=GTV, reference_series=True, skip=(), recons=1, name="{k:03d}.dcm",
            rt_name="rs.dcm"):
    """A CT study (one or more reconstructions on one frame of reference) and an RTSTRUCT on the first."""
    study, frame = generate_uid(), generate_uid()
    first = None
    for r in range(recons):
        out = write_series(folder / f"recon{r}", phi=phi(n), study_uid=study, frame_uid=frame, skip=skip,
                           description=f"Head {'B30f' if r == 0 else 'B70s'}", name=name)
        first = first or out
    series, frame, ref = first
    if rt:
        write_rtstruct(folder / rt_name, series, frame, ref, roi, phi=phi(n), study_uid=study,
                       reference_series=reference_series)
    return first


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("trees")
    a, b = root / "hospA", root / "hospB"
    p1 = a / "x1" / "st"
    patient(p1, 1)
    write_series(p1 / "scout", n=3, phi=phi(1), image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))  # a localizer
    p2 = a / "x2"
    s2, f2, r2 = patient(p2, 2, recons=2)
    write_rtstruct(p2 / "old_rs.dcm", s2, f2, r2, {"GTVp": [(4, square(5, 9))]}, phi=phi(2),
                   when=("20190101", "080000"))  # out of date
    shutil.copy(p2 / "rs.dcm", a / "copy_of_rs.dcm")  # a duplicate
    patient(a / "x3", 3, roi={"Brainstem": [(4, square(5, 15))]})
    patient(a / "x4", 4, rt=False)
    patient(a / "x5", 5, skip=(6,))
    patient(a / "x6", 6, recons=2, reference_series=False)  # frame of reference only: two reconstructions on it
    s7, f7, r7 = write_series(a / "x7" / "ct", phi=phi(7))
    write_rtstruct(a / "x7" / "rs.dcm", generate_uid(), f7, r7, GTV, phi=phi(7))  # drawn on a series not exported
    flat = b / "EXPORT"  # flat: two patients in one folder, files without extension
    patient(flat, 11, name="IM{k:04d}_11", rt_name="RS11")
    patient(flat, 12, name="IM{k:04d}_12", rt_name="RS12")
    patient(b / "more", 13)
    for r in ("recon0",):  # move the flat patients' slices up into the one folder
        for f in (flat / r).iterdir():
            f.rename(flat / f.name)
        (flat / r).rmdir()
    (flat / "DICOMDIR").write_bytes(b"\x00" * 128 + b"DICM" + b"\x00" * 64)
    (flat / "notes.txt").write_text("export notes\n")
    seg_mr_pet(root / "hospC", root / "elsewhere")
    clinical = pd.DataFrame({"PatID": ["MRN001", "MRN002", "MRN011", "MRN012", "MRN099"],
                             "age": ["61", "58", "70", "66", "50"], "sex": ["M", "F", "M", "M", "F"]})
    clinical.to_excel(root / "clinical.xlsx", index=False)
    return root


def seg_mr_pet(c: Path, elsewhere: Path) -> None:
    """Centre C: a tumour given as a DICOM-SEG (no RTSTRUCT); a SEG drawn on a series missing from the export; a
    PET/CT (RTSTRUCT on the CT, a PET of the same study and frame of reference with its SUV tags); an MR + RTSTRUCT."""
    gtv = np.zeros((12, 32, 40), bool)
    gtv[3:6, 5:15, 8:20] = True
    write_series(c / "x21" / "ct", phi=phi(21), description="Thorax B30f")
    write_seg(c / "x21" / "seg" / "SEG0001", c / "x21" / "ct", {"GTV primary": gtv, "Heart": ~gtv})
    study = generate_uid()
    write_series(c / "x22" / "ct", phi=phi(22), study_uid=study)
    write_series(elsewhere / "x22", phi=phi(22), study_uid=study)  # another reconstruction, not exported
    write_seg(c / "x22" / "seg.dcm", elsewhere / "x22", {"GTVp": gtv})
    study, frame = generate_uid(), generate_uid()
    series, frame, ref = write_series(c / "x23" / "ct", phi=phi(23), study_uid=study, frame_uid=frame,
                                      description="PETCT CT AC B30f")
    write_rtstruct(c / "x23" / "rs.dcm", series, frame, ref, GTV, phi=phi(23), study_uid=study)
    write_pet(c / "x23" / "pet", ACTIVITY, phi=phi(23), study_uid=study, frame_uid=frame, description="PET AC WB",
              n=8, rows=16, cols=20, spacing=(2.0, 2.0, 3.0), origin=(-12.0, 2.0, 29.0),
              extra={"SeriesDate": "20190402"})
    series, frame, ref = write_series(c / "x24" / "mr", modality="MR", phi=phi(24), description="T1 axial")
    write_rtstruct(c / "x24" / "rs.dcm", series, frame, ref, GTV, phi=phi(24))


def discover_c(trees, tmp_path, *extra):
    """Discovery over centre C only (no clinical sheet): the sheet, discovery.tsv (by patient id) and id map."""
    out = tmp_path / "sheet_c" / "cohort.tsv"
    codes = tmp_path / "private" / "codes_c.tsv"
    assert main(["discover", f"C={trees / 'hospC'}", "--roi", "GTV.*", "--out", str(out), "--code-map", str(codes),
                 "--cache", str(tmp_path / "cache.db"), *extra]) == 0
    pid = pd.read_csv(codes, sep="\t", dtype=str).set_index("hospital_id")["patient_id"].to_dict()
    sheet = pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False)
    report = pd.read_csv(out.parent / "discovery.tsv", sep="\t", dtype=str, keep_default_na=False)
    return out, sheet, report.set_index("patient_id"), {n: pid[f"MRN{n:03d}"] for n in (21, 22, 23, 24)}


def discover(trees, tmp_path, *extra):
    out = tmp_path / "sheet" / "cohort.tsv"
    argv = ["discover", f"A={trees / 'hospA'}", f"B={trees / 'hospB'}", "--roi", "GTV.*", "--out", str(out),
            "--clinical", str(trees / "clinical.xlsx"), "--id-col", "PatID", "--cache", str(tmp_path / "cache.db"),
            *extra]
    return main(argv), out


def test_discovered_sheet_pairs_series_and_structures(trees, tmp_path, capsys):
    rc, out = discover(trees, tmp_path, "--code-map", str(tmp_path / "private" / "codes.tsv"))
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    sheet = pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False)
    codes = pd.read_csv(tmp_path / "private" / "codes.tsv", sep="\t", dtype=str).set_index("hospital_id")
    pid = codes["patient_id"].to_dict()
    assert oct(os.stat(tmp_path / "private" / "codes.tsv").st_mode)[-3:] == "600"
    assert list(sheet.columns) == ["patient_id", "centre", "image", "mask", "age", "sex"]
    rows = sheet.set_index("patient_id")
    assert set(rows.index) == {pid["MRN001"], pid["MRN002"], pid["MRN011"], pid["MRN012"]}
    a, b = trees / "hospA", trees / "hospB"
    assert rows.loc[pid["MRN001"], "image"] == str(a / "x1/st/recon0")  # not the localizer
    assert rows.loc[pid["MRN001"], "mask"] == str(a / "x1/st/rs.dcm")
    assert rows.loc[pid["MRN002"], "image"] == str(a / "x2/recon0")  # the reconstruction the RTSTRUCT is on
    assert rows.loc[pid["MRN002"], "mask"] == str(a / "x2/rs.dcm")  # the newer structure set
    assert rows.loc[pid["MRN001"], "age"] == "61" and rows.loc[pid["MRN002"], "sex"] == "F"
    for n in (11, 12):  # flat folder: a series list of this patient's slices only
        cell = rows.loc[pid[f"MRN{n:03d}"], "image"]
        assert not Path(cell).is_absolute()  # beside the sheet, read relative to it (as every sheet path)
        listed = [line for line in open(out.parent / cell) if not line.startswith("#")]
        assert len(listed) == 12 and all(line.strip().endswith(f"_{n}") for line in listed)
        assert rows.loc[pid[f"MRN{n:03d}"], "mask"] == str(b / f"EXPORT/RS{n}")
    report = pd.read_csv(out.parent / "discovery.tsv", sep="\t", dtype=str, keep_default_na=False)
    report = report.set_index("patient_id")
    assert len(report) == 10 and set(report["status"]) == {"included", "excluded"}
    reasons = {n: report.loc[pid[f"MRN{n:03d}"], "reason"] for n in (3, 4, 5, 6, 7, 13)}
    assert reasons == {3: "no ROI matching", 4: "no structure set", 5: "incomplete series", 6: "ambiguous series",
                       7: "structure set without its series", 13: "no clinical row"}
    assert report.loc[pid["MRN003"], "rois_seen"] == "Brainstem"
    assert "non-uniform slice spacing" in report.loc[pid["MRN005"], "detail"]
    assert "2 series" in report.loc[pid["MRN006"], "detail"]
    assert "older structure set" in report.loc[pid["MRN002"], "notes"]
    assert report.loc[pid["MRN001"], "localizers"] == "1"
    assert "lines [6]" in printed.out  # MRN099: in the clinical sheet, not in the trees
    ok = ingest_shard(sheet, out, list(sheet["patient_id"]), Paths(tmp_path / "results"), False,
                      load_config({**STUDY, "ingest": {"roi_pattern": "GTV.*"}})["ingest"])
    assert (ok["status"] == "ok").all(), ok["message"].tolist()
    assert set(ok["mask_voxels"]) == {100 + 64}


def test_rerun_reads_only_new_files_and_keyed_ids_are_stable(trees, tmp_path, capsys):
    key = tmp_path / "keys" / "study.key"
    rc, out = discover(trees, tmp_path, "--pseudonymise", str(key))
    assert rc == 0
    first = pd.read_csv(out, sep="\t", dtype=str)
    assert "0 headers read" not in capsys.readouterr().out
    rc, out = discover(trees, tmp_path, "--pseudonymise", str(key))
    assert rc == 0 and capsys.readouterr().out.count("0 headers read") == 2
    assert pd.read_csv(out, sep="\t", dtype=str).equals(first)
    assert all(p.startswith(("A-", "B-")) and len(p) == 14 for p in first["patient_id"])
    assert main(["discover", f"A={trees / 'hospA'}", "--roi", "GTV.*", "--out", str(tmp_path / "x.tsv"),
                 "--pseudonymise", str(tmp_path / "results" / "k.key"), "--no-cache"]) == 2
    assert "outside results/" in capsys.readouterr().err


def test_no_identifier_reaches_any_output(trees, tmp_path, capsys):
    rc, out = discover(trees, tmp_path, "--pseudonymise", str(tmp_path / "keys" / "k"))
    printed = capsys.readouterr()
    assert rc == 0
    ok = ingest_shard(pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False), out,
                      list(pd.read_csv(out, sep="\t", dtype=str)["patient_id"]), Paths(tmp_path / "results"), False,
                      load_config({**STUDY, "ingest": {"roi_pattern": "GTV.*"}})["ingest"])
    ok.to_csv(tmp_path / "results" / "ingest.tsv", sep="\t", index=False)
    files = [f for d in (out.parent, tmp_path / "results") for f in d.rglob("*") if f.is_file()]
    blobs = [gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes() for f in files]
    secrets = [v for n in (1, 2, 3, 4, 5, 6, 7, 11, 12, 13) for v in phi(n).values()]
    secrets += ["20190402", "20190403", "20190101", "Doe Patient1", "Saint Elsewhere"]
    for value in set(secrets):
        assert not any(value.encode() in b for b in blobs), f"{value} leaked into an output file"
        assert value not in printed.out + printed.err, f"{value} leaked into the log"
    assert oct(os.stat(tmp_path / "cache.db").st_mode)[-3:] == "600"


def leaks(folders: list[Path], numbers, printed: str = "") -> list[str]:
    """The identifying values of patients `numbers` (and the trees' dates) found in any file under `folders`
    (gzip files decompressed) or in `printed`."""
    files = [f for d in folders for f in d.rglob("*") if f.is_file()]
    blobs = [gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes() for f in files]
    secrets = {v for n in numbers for v in phi(n).values()} | {"20190402", "20190403", "Saint Elsewhere"}
    return sorted(v for v in secrets if v in printed or any(v.encode() in b for b in blobs))


def ingest_opts() -> dict:
    return load_config({**STUDY, "ingest": {"roi_pattern": "GTV.*"}})["ingest"]


def test_a_seg_tumour_is_discovered_and_ingested_and_a_seg_of_a_missing_series_is_excluded(trees, tmp_path, capsys):
    out, sheet, report, pid = discover_c(trees, tmp_path)
    c, rows = trees / "hospC", sheet.set_index("patient_id")
    assert set(rows.index) == {pid[21], pid[23], pid[24]}
    assert rows.loc[pid[21], "image"] == str(c / "x21/ct") and rows.loc[pid[21], "mask"] == str(c / "x21/seg/SEG0001")
    assert rows.loc[pid[23], "image"] == str(c / "x23/ct")  # the CT the RTSTRUCT is on, not the PET beside it
    assert rows.loc[pid[24], "image"] == str(c / "x24/mr") and rows.loc[pid[24], "mask"] == str(c / "x24/rs.dcm")
    assert report.loc[pid[21], "rois_seen"] == "GTV primary; Heart"
    assert (report.loc[pid[22], "status"], report.loc[pid[22], "reason"]) == (
        "excluded", "structure set without its series")
    ok = ingest_shard(sheet, out, list(sheet["patient_id"]), Paths(tmp_path / "results"), False,
                      ingest_opts()).set_index("patient_id")
    assert (ok["status"] == "ok").all(), ok["message"].tolist()
    assert ok.loc[pid[21], "mask_voxels"] == 3 * 10 * 12 and ok.loc[pid[23], "mask_voxels"] == 164
    assert ok.loc[pid[24], "modality"] == "MR" and ok.loc[pid[24], "mask_voxels"] == 164
    assert leaks([out.parent, tmp_path / "results"], (21, 22, 23, 24), capsys.readouterr().out) == []


def test_modality_filter_keeps_only_rois_drawn_on_that_modality(trees, tmp_path):
    _, sheet, report, pid = discover_c(trees, tmp_path, "--modality", "CT")
    assert set(sheet["patient_id"]) == {pid[21], pid[23]}
    mr = report.loc[pid[24]]
    assert (mr["status"], mr["reason"]) == ("excluded", "ROI on another modality")
    assert "drawn on MR 'T1 axial' (12 files), not on a CT series" in mr["detail"]
    _, sheet, report, pid = discover_c(trees, tmp_path, "--modality", "MR")
    assert list(sheet["patient_id"]) == [pid[24]]
    assert set(report.loc[[pid[21], pid[23]], "reason"]) == {"ROI on another modality"}
    assert report.loc[pid[22], "reason"] == "structure set without its series"  # its series is of no modality here


def test_pet_ct_is_discovered_as_two_sequences_and_the_pet_is_ingested_in_suv(trees, tmp_path, capsys):
    out, sheet, report, pid = discover_c(trees, tmp_path, "--sequence", "CT=^CT", "--sequence", "PT=^PT")
    assert list(sheet.columns) == ["patient_id", "centre", "image", "mask", "image_PT"]
    c = trees / "hospC"
    assert sheet.to_dict("records") == [{"patient_id": pid[23], "centre": "C", "image": str(c / "x23/ct"),
                                         "mask": str(c / "x23/rs.dcm"), "image_PT": str(c / "x23/pet")}]
    assert report.loc[pid[21], "reason"] == "missing sequence" and "PT: 0 series" in report.loc[pid[21], "detail"]
    assert report.loc[pid[24], "reason"] == "missing sequence"  # its ROI is on an MR, which is not CT
    paths = Paths(tmp_path / "results")
    ok = ingest_shard(sheet, out, [pid[23]], paths, False, ingest_opts(), ["CT", "PT"]).iloc[0]
    assert ok["status"] == "ok", ok["message"]
    assert ok["modality"] == "CT" and ok["mask_voxels"] == 164 and ok["sequences"] == "CT,PT"
    assert "PT 20x16x8 @ 2x2x3 mm, SUVbw" in ok["sequence_geometry"]
    pt = sitk.ReadImage(str(paths.case("C", pid[23]).ingest_sequence("PT")))
    assert pt.GetSpacing() == (2.0, 2.0, 3.0) and pt.GetOrigin() == (-12.0, 2.0, 29.0)
    np.testing.assert_allclose(sitk.GetArrayFromImage(pt), SUV, rtol=1e-6)
    assert 1.38 < SUV < 1.39
    assert leaks([out.parent, tmp_path / "results"], (21, 22, 23, 24), capsys.readouterr().out) == []


@pytest.mark.e2e
def test_a_study_runs_straight_from_dicom_trees_and_no_identifier_reaches_its_results(tmp_path):
    """cohort.discover: three hospitals' DICOM exports (CT + RTSTRUCT, hospital ids and names in the headers) and
    a clinical sheet keyed by PatientID run end to end to the report; the sheet is pseudonymous, and no name, id,
    birth date, accession number, institution or date of the trees is in any file of results/ or the log. A
    second run with one more patient discovers it and reruns nothing else upstream of it."""
    import subprocess

    import numpy as np
    import yaml
    from helpers import REPO, SNAKEMAKE

    rng = np.random.default_rng(3)
    trees, clinical, n = {}, [], 0
    for centre, count in (("AMS", 12), ("UTR", 8), ("RTM", 8)):
        for _ in range(count):
            n += 1
            lo = int(rng.integers(4, 9))
            roi = {"GTV_primary": [(k, square(lo, lo + 10 + n % 4)) for k in (4, 5, 6)]}
            patient(tmp_path / "dicom" / centre / f"case{n}", n, roi=roi)
            clinical.append({"mrn": f"MRN{n:03d}", "age": str(50 + n), "y": str(n % 2)})
        trees[centre] = str(tmp_path / "dicom" / centre)
    pd.DataFrame(clinical).to_csv(tmp_path / "clinical.tsv", sep="\t", index=False)
    cfg = {"study": {"name": "fromdicom", "seed": 5, "results": str(tmp_path / "results")},
           "cohort": {"discover": {"centres": trees, "roi": "GTV.*", "key": str(tmp_path / "secret" / "key"),
                                   "clinical": str(tmp_path / "clinical.tsv"), "id_col": "mrn",
                                   "cache": str(tmp_path / "secret" / "index.sqlite")},
                      "clinical": [{"name": "age", "type": "numeric"}]},
           "design": {"train": ["AMS"], "external": ["UTR", "RTM"]},
           "endpoints": [{"name": "y", "column": "y"}],
           "ingest": {"roi_pattern": "GTV.*"}, "preprocess": {"spacing_mm": [1.0, 1.0, 1.0]},
           "model": {"outer_folds": 3, "inner_folds": 3}, "execution": {"shard_size": 6},
           "features": {"robustness": {"activate": False}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [str(SNAKEMAKE), "--cores", "2", "--configfile", str(tmp_path / "config.yaml")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = tmp_path / "results" / "fromdicom"
    assert (results / "report" / "index.html").is_file()
    sheet = pd.read_csv(results / "discover" / "cohort.tsv", sep="\t", dtype=str)
    assert len(sheet) == 28 and sheet["patient_id"].str.match(r"^(AMS|UTR|RTM)-[0-9a-f]{12}$").all()
    assert (pd.read_csv(results / "qc" / "ingest.tsv", sep="\t")["status"] == "ok").all()
    files = [f for f in results.rglob("*") if f.is_file()]
    blobs = [gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes() for f in files]
    secrets = {v for k in range(1, n + 1) for v in phi(k).values()} | {f"MRN{k:03d}" for k in range(1, n + 1)}
    for value in secrets:
        assert not any(value.encode() in b for b in blobs), f"{value} leaked into {results}"
        assert value not in proc.stdout + proc.stderr, f"{value} leaked into the log"
    # one more patient at one external hospital: discovered, every other row of the sheet as it was
    patient(tmp_path / "dicom" / "RTM" / "late", 99, roi={"GTV_primary": [(k, square(5, 16)) for k in (4, 5, 6)]})
    pd.DataFrame([*clinical, {"mrn": "MRN099", "age": "70", "y": "1"}]).to_csv(tmp_path / "clinical.tsv",
                                                                                 sep="\t", index=False)
    plan = subprocess.run([*cmd, "-n"], cwd=REPO, capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr[-3000:]
    again = pd.read_csv(results / "discover" / "cohort.tsv", sep="\t", dtype=str)
    assert len(again) == 29 and again[again["patient_id"].isin(sheet["patient_id"])].reset_index(drop=True).equals(
        sheet.reset_index(drop=True))
