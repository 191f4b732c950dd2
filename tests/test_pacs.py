"""`mcrad pacs poll` (stage 3 at the PACS over DICOMweb): the security policy, the state database, the query
filters and the SR content as unit tests; and against a real Orthanc (Debian's `orthanc` + `orthanc-dicomweb`,
started here on loopback with authentication): studies uploaded as CT + RTSTRUCT are scored once by the locked
bundles, one SR per study goes back whose score equals `mcrad predict` on the same cases from files, a second
poll adds nothing, an outage mid-poll is a clear error that the next poll completes, wrong credentials are a clear
error, and no identifying value reaches results or logs."""
from __future__ import annotations

import copy
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import requests
import SimpleITK as sitk
import yaml
from helpers import REPO
from mcrad.config import load_config
from mcrad.dicomsynth import PHI, rtutils_rtstruct, write_series
from mcrad.errors import McradError
from mcrad.files import read_table
from mcrad.pacs import client as pacs_client
from mcrad.pacs import query, sr, state
from mcrad.paths import Paths
from pydicom.uid import generate_uid

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "mcrad", "s3cret-pw"
N_STUDIES = 4


# ---- unit tests: security policy -------------------------------------------------------------------------------
@pytest.mark.parametrize("url, insecure, ok", [
    ("http://127.0.0.1:8042/dicom-web", False, True),
    ("http://localhost/dicom-web", False, True),
    ("http://[::1]:8042/dicom-web", False, True),
    ("https://pacs.example.org/dicom-web", False, True),
    ("http://pacs.example.org/dicom-web", False, False),
    ("http://10.0.0.5/dicom-web", False, False),
    ("http://10.0.0.5/dicom-web", True, True),
    ("ftp://pacs.example.org/", True, False),
    ("https://user:pw@pacs.example.org/dicom-web", False, False),
])
def test_plain_http_is_refused_except_to_loopback_unless_allowed(url, insecure, ok):
    if ok:
        assert pacs_client.check_url(url, insecure) == url.rstrip("/")
    else:
        with pytest.raises(McradError, match="Fix"):
            pacs_client.check_url(url, insecure)


def test_credentials_come_from_the_environment_or_netrc_never_the_config(tmp_path):
    url = "https://pacs.example.org/dicom-web"
    env = {pacs_client.USER_VAR: "u", pacs_client.PASSWORD_VAR: "p"}
    assert pacs_client.credentials(url, None, env) == ("u", "p")
    with pytest.raises(McradError, match="both"):
        pacs_client.credentials(url, None, {pacs_client.USER_VAR: "u"})
    netrc = tmp_path / "netrc"
    netrc.write_text("machine pacs.example.org login nu password np\n")
    netrc.chmod(0o600)
    assert pacs_client.credentials(url, str(netrc), {}) == ("nu", "np")
    assert pacs_client.credentials("https://other.org/x", str(netrc), {}) is None
    assert pacs_client.credentials(url, None, {"NETRC": str(tmp_path / "none")}) is None
    with pytest.raises(McradError, match="does not exist"):
        pacs_client.credentials(url, str(tmp_path / "missing"), {})
    # the schema has no place for a password
    cfg = copy.deepcopy(small_config(tmp_path))
    cfg["prospective"]["pacs"]["password"] = "x"
    with pytest.raises(McradError, match="password"):
        load_config(cfg)


def test_tls_is_verified_with_the_ca_bundle_option(tmp_path):
    opts = {"url": "https://pacs.example.org/dicom-web", "timeout_s": 5}
    assert pacs_client.session(opts, {}).verify is True
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert pacs_client.session({**opts, "ca_bundle": str(ca)}, {}).verify == str(ca)
    with pytest.raises(McradError, match="ca_bundle"):
        pacs_client.session({**opts, "ca_bundle": str(tmp_path / "no.pem")}, {})


def test_archive_errors_read_clearly_and_never_carry_credentials():
    resp = requests.Response()
    resp.status_code = 401
    err = pacs_client.describe(requests.HTTPError(response=resp), "QIDO-RS search")
    assert "refused the credentials" in str(err) and PASSWORD not in str(err)
    down = pacs_client.describe(requests.ConnectionError("refused"), "STOW-RS")
    assert "unreachable" in str(down) and "next poll" in str(down)


# ---- unit tests: state, query filters, SR ----------------------------------------------------------------------
def test_state_database_remembers_studies_per_bundle_set_and_polls(tmp_path):
    conn = state.open_state(tmp_path / "s.sqlite")
    study = state.uid_hash("1.2.3.4", "demo")
    assert study != state.uid_hash("1.2.3.4", "other") and "1.2.3.4" not in study
    key = state.bundles_key(["b", "a"])
    assert key == state.bundles_key(["a", "b"]) and key != state.bundles_key(["a", "c"])
    assert not state.is_done(conn, study, key) and state.last_poll_day(conn) is None
    state.mark_done(conn, study, key, "2.25.1", "ComBat")
    state.mark_done(conn, study, key, "2.25.1", "ComBat")  # a retry records it once
    assert state.is_done(conn, study, key) and not state.is_done(conn, study, state.bundles_key(["new"]))
    assert state.done_count(conn) == 1
    state.record_poll(conn, state.now())
    assert state.last_poll_day(conn) == state.now().strftime("%Y%m%d")
    conn.close()
    assert state.is_done(state.open_state(tmp_path / "s.sqlite"), study, key)  # survives a restart
    state.audit(tmp_path / "audit.log", study, ["ep/radiomics"], "ok")
    line = (tmp_path / "audit.log").read_text().strip().split("\t")
    assert line[1:] == [study, "ep/radiomics", "ok"]


def test_query_filters_modality_date_window_and_description():
    assert query.search_filters("CT", None) == {"ModalitiesInStudy": "CT"}
    assert query.search_filters("CT", "20240101") == {"ModalitiesInStudy": "CT", "StudyDate": "20240101-"}
    item = {query.STUDY_DESCRIPTION: {"vr": "LO", "Value": ["CT Neck with contrast"]}}
    assert query.matches(item, "ct neck.*") and not query.matches(item, "neck")
    assert query.matches({}, ".*") and not query.matches({}, "CT.+")
    assert query.value({query.STUDY_UID: {"vr": "UI", "Value": ["1.2"]}}, query.STUDY_UID) == "1.2"


def test_poll_interval_parses_and_refuses_nonsense():
    from mcrad.pacs.poll import parse_every

    assert parse_every("10m") == 600 and parse_every("30s") == 30 and parse_every("2h") == 7200
    for bad in ("", "-5m", "0s", "ten minutes"):
        with pytest.raises(McradError, match="--every"):
            parse_every(bad)


def test_sr_carries_score_threshold_call_model_bundle_and_references_its_evidence(tmp_path):
    images, structure = synthetic_case(tmp_path)
    results = {"nodal_metastasis": pd.DataFrame([{
        "patient_id": "P-1", "centre": "C3", "stage": "prospective", "model": "radiomics", "score": 0.123456789012345,
        "threshold": 0.4, "positive": 0, "bundle_sha256": "ab" * 32}])}
    ds = sr.build_sr(images, structure, results, {"nodal_metastasis": ["score", "threshold"]}, "ComBat, locked",
                     "GTV.*", "k1")
    path = sr.save(ds, tmp_path / "sr.dcm")
    back = pydicom.dcmread(path)
    assert back.Modality == "SR" and back.StudyInstanceUID == images[0].StudyInstanceUID
    (found,) = sr.read_scores(back)
    assert abs(found["score"] - 0.123456789012345) < 1e-12 and found["threshold"] == 0.4
    assert found["call"] == "negative" and found["model"] == "radiomics" and found["endpoint"] == "nodal_metastasis"
    assert found["bundle_sha256"] == "ab" * 32 and found["harmonisation"] == "ComBat, locked"
    assert found["mcrad_version"]
    evidence = {s.SeriesInstanceUID for st in back.CurrentRequestedProcedureEvidenceSequence
                for s in st.ReferencedSeriesSequence}
    assert evidence == {images[0].SeriesInstanceUID, structure.SeriesInstanceUID}
    again = sr.build_sr(images, structure, results, {"nodal_metastasis": ["score", "threshold"]}, "x", "GTV.*", "k1")
    assert again.SOPInstanceUID == back.SOPInstanceUID  # a retry stores the same instance
    import highdicom as hd

    assert isinstance(hd.sr.srread(path), hd.sr.Comprehensive3DSR)


def synthetic_case(tmp_path: Path, n: int = 1, pixels=None, mask=None, spacing=(1.0, 1.0, 2.0), origin=(0., 0., 0.),
                   description: str = "CT neck") -> tuple[list[pydicom.Dataset], pydicom.Dataset]:
    """A CT series and an rt-utils RTSTRUCT (ROI "GTV") in one study, with a hospital's identifiers."""
    if pixels is None:
        pixels = (np.arange(8 * 24 * 24).reshape(8, 24, 24) % 97).astype(np.int16)
    if mask is None:
        mask = np.zeros(pixels.shape, bool)
        mask[2:6, 8:16, 8:16] = True
    folder = tmp_path / f"case{n}"
    nz, ny, nx = pixels.shape
    write_series(folder / "ct", n=nz, rows=ny, cols=nx, spacing=spacing, origin=origin, pixels=pixels,
                 phi=phi(n), study_uid=generate_uid(),
                 extra={"RescaleIntercept": 0, "StudyDescription": description})
    rtutils_rtstruct(folder / "ct", {"GTV": mask}, folder / "rs.dcm")
    images = [pydicom.dcmread(p) for p in sorted((folder / "ct").iterdir())]
    return images, pydicom.dcmread(folder / "rs.dcm")


def phi(n: int) -> dict:
    return {**PHI, "PatientID": f"MRN7{n:03d}", "PatientName": f"Roe^Patient{n}",
            "PatientBirthDate": f"1951021{n % 10}", "AccessionNumber": f"ACC7{n:04d}",
            "InstitutionName": "Saint Elsewhere Hospital"}


def small_config(tmp_path: Path) -> dict:
    from helpers import STUDY

    cfg = copy.deepcopy(STUDY)
    cfg["study"]["results"] = str(tmp_path / "results")
    cfg["prospective"] = {"pacs": {"url": "http://127.0.0.1:1/dicom-web"}}
    return cfg


def test_pacs_options_have_defaults_and_a_missing_section_is_a_clear_error(tmp_path):
    from mcrad.pacs.poll import pacs_options

    cfg = load_config(small_config(tmp_path))
    pacs = cfg["prospective"]["pacs"]
    assert pacs["centre"] == "PACS" and pacs["write_back"] == {"sr": True, "seg": False}
    assert pacs["harmonisation"] == {"first_batch": 20, "allow_unharmonised": False}
    cfg["prospective"]["pacs"] = None
    with pytest.raises(McradError, match="prospective.pacs"):
        pacs_options(cfg)


def test_a_new_archive_is_harmonised_only_after_its_first_batch_which_is_then_locked(tmp_path):
    from mcrad.harmonise import save
    from mcrad.harmonise.combat import ComBat
    from mcrad.pacs import scoring

    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(30, 3)), columns=["f1", "f2", "f3"])
    model = ComBat(ref_batch="C1").fit(train, pd.Series("C1", index=train.index))
    cfg = load_config(small_config(tmp_path))
    cfg["prospective"]["pacs"].update(centre="NEWHOSP", harmonisation={"first_batch": 3, "allow_unharmonised": True})
    paths = Paths.from_config(cfg)
    paths.harmoniser.parent.mkdir(parents=True)
    save(model, ["f1", "f2", "f3"], paths.harmoniser)

    def case(k: int) -> pd.DataFrame:
        values = rng.normal(2.0, 1.5, size=3)
        return pd.DataFrame([{"patient_id": f"NEWHOSP-{k}", "centre": "NEWHOSP", "f1": values[0], "f2": values[1],
                              "f3": values[2]}])

    first = case(1)
    out, label = scoring.harmonised(cfg, paths, first, "NEWHOSP")
    assert label.startswith("unharmonised") and out[["f1", "f2", "f3"]].equals(first[["f1", "f2", "f3"]])
    cfg["prospective"]["pacs"]["harmonisation"]["allow_unharmonised"] = False
    assert scoring.harmonised(cfg, paths, case(2), "NEWHOSP") == (None, "pending: first batch of archive NEWHOSP "
                                                                       "incomplete")
    out, label = scoring.harmonised(cfg, paths, case(3), "NEWHOSP")
    assert "locked from its first batch" in label
    locked = json.loads(paths.pacs_batch_estimates("NEWHOSP").read_text())
    assert locked["cases"] == ["NEWHOSP-1", "NEWHOSP-2", "NEWHOSP-3"]
    fourth = case(4)
    later, _ = scoring.harmonised(cfg, paths, fourth, "NEWHOSP")
    assert json.loads(paths.pacs_batch_estimates("NEWHOSP").read_text()) == locked  # never refitted
    model.batches_["NEWHOSP"], model.min_batch_size = locked["estimates"], 1
    X = fourth.set_index("patient_id")
    expected = model.transform(X[["f1", "f2", "f3"]], X["centre"])
    np.testing.assert_allclose(later[["f1", "f2", "f3"]].to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12)


# ---- a real Orthanc --------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """Debian's Orthanc as a plain process on loopback, with DICOMweb and authentication; storage in tmp."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.http, self.dicom = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        config = {"Name": "mcradtest", "HttpPort": self.http, "DicomPort": self.dicom,
                  "StorageDirectory": str(folder / "storage"), "IndexDirectory": str(folder / "index"),
                  "RemoteAccessAllowed": False, "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
                  "Plugins": [str(DICOMWEB_PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "orthanc.json").write_text(json.dumps(config))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.folder / "orthanc.log", "ab")
        self.proc = subprocess.Popen([str(ORTHANC), str(self.folder / "orthanc.json")], stdout=log, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(f"{self.url}/system", auth=(USER, PASSWORD), timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        self.stop()
        pytest.fail(f"Orthanc did not start in 30 s; see {self.folder / 'orthanc.log'}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None

    def upload(self, files: list[Path]) -> None:
        for f in files:
            requests.post(f"{self.url}/instances", data=f.read_bytes(), auth=(USER, PASSWORD),
                          timeout=30).raise_for_status()

    def client(self):
        from dicomweb_client.api import DICOMwebClient

        s = requests.Session()
        s.auth = (USER, PASSWORD)
        return DICOMwebClient(f"{self.url}/dicom-web", session=s)

    def series(self, modality: str) -> list[dict]:
        return self.client().search_for_series(search_filters={"Modality": modality})

    def srs(self) -> list[pydicom.Dataset]:
        """Every SR instance in the archive (over DICOMweb)."""
        out = []
        for series in self.series("SR"):
            out += self.client().retrieve_series(query.value(series, query.STUDY_UID),
                                                 query.value(series, query.SERIES_UID))
        return out


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A running Orthanc; required in CI (`make test` installs it as root), skipped elsewhere when missing."""
    if not (ORTHANC.is_file() and DICOMWEB_PLUGIN.is_file()):
        if os.environ.get("CI"):
            pytest.fail("Orthanc with its DICOMweb plugin is missing; `make test` installs it as root")
        pytest.skip("Orthanc not installed (apt-get install orthanc orthanc-dicomweb)")
    server = Orthanc(tmp_path_factory.mktemp("orthanc"))
    server.start()
    yield server
    server.stop()


def case_to_dicom(image: Path, mask: Path, folder: Path, n: int) -> list[Path]:
    """A study's NIfTI case as the hospital's DICOM: CT series (same voxels, geometry to DICOM's precision) and an
    rt-utils RTSTRUCT of its mask; returns every file."""
    img, roi = sitk.ReadImage(str(image)), sitk.ReadImage(str(mask))
    pixels, voxels = sitk.GetArrayFromImage(img).astype(np.int16), sitk.GetArrayFromImage(roi) > 0
    nz, ny, nx = pixels.shape
    write_series(folder / "ct", n=nz, rows=ny, cols=nx, spacing=img.GetSpacing(), origin=img.GetOrigin(),
                 pixels=pixels, phi=phi(n), study_uid=generate_uid(),
                 extra={"RescaleIntercept": 0, "StudyDescription": "CT neck"})
    rtutils_rtstruct(folder / "ct", {"GTV": voxels}, folder / "rs.dcm")
    return [*sorted((folder / "ct").iterdir()), folder / "rs.dcm"]


@pytest.fixture(scope="module")
def pacs_study(study, tmp_path_factory):
    """The session study (C3 is one of its external centres) with its locked artefacts (bundles, harmoniser, raw
    features) copied to a results folder of its own, and N_STUDIES + 2 of C3's cases written as DICOM studies (the
    last two are uploaded by the outage test). Returns (config, DICOM files per study, their patient ids, tmp)."""
    tmp = tmp_path_factory.mktemp("pacs")
    cfg = yaml.safe_load((study.parent.parent / "config.yaml").read_text())
    cfg["study"]["results"] = str(tmp / "results")
    for part in ("models", "harmonise", "features/raw"):
        shutil.copytree(study / part, tmp / "results" / cfg["study"]["name"] / part)
    synth = study / "synth"
    sheet = pd.read_csv(synth / "cohort.tsv", sep="\t", dtype=str)
    rows = sheet[sheet["centre"] == "C3"].head(N_STUDIES + 2)
    studies = [case_to_dicom(synth / r.image, synth / r.mask, tmp / "dicom" / f"s{k}", k)
               for k, r in enumerate(rows.itertuples())]
    return cfg, studies, list(rows["patient_id"]), tmp


def with_pacs(cfg: dict, server: Orthanc, **pacs) -> dict:
    cfg = copy.deepcopy(cfg)
    cfg["prospective"] = {"pacs": {"url": f"{server.url}/dicom-web", "centre": "C3", **pacs}}
    return load_config(cfg)


AUTH = {pacs_client.USER_VAR: USER, pacs_client.PASSWORD_VAR: PASSWORD}


def reference_scores(cfg: dict, files: list[Path], tmp: Path) -> pd.DataFrame:
    """`mcrad predict` on the same cases from files: the DICOM on disk through the study's per-case stages, the
    centre's stage-2 ComBat estimates, then the CLI with the locked radiomics bundle."""
    from mcrad.harmonise import load
    from mcrad.pacs.scoring import extract, stage2_estimates

    paths = Paths.from_config(cfg)
    model, keep = load(paths.harmoniser)
    model.batches_["C3"] = stage2_estimates(model, paths, "C3")
    raw = []
    for k, case in enumerate(files):
        ok, _ = extract(cfg, Paths(tmp / "ref" / str(k)), f"REF-{k}", "C3", case[0].parent, case[-1], None)
        raw.append(ok)
    raw = pd.concat(raw, ignore_index=True)
    X = raw.set_index("patient_id")
    harmonised = model.transform(X[keep], X["centre"]).reset_index()
    harmonised.insert(1, "centre", "C3")
    harmonised.to_csv(tmp / "ref" / "features.tsv", sep="\t", index=False)
    out = tmp / "ref" / "predictions.tsv"
    subprocess.run([sys.executable, "-m", "mcrad.cli", "predict", "--bundle",
                    str(paths.bundle("nodal_metastasis", "radiomics")), "--features", str(tmp / "ref" / "features.tsv"),
                    "--out", str(out)], check=True, capture_output=True, cwd=REPO)
    return read_table(out)


def poll_cli(cfg: dict, tmp: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cfg_file = tmp / "study.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "mcrad.cli", "pacs", "poll", "--config", str(cfg_file), *args],
                          capture_output=True, text=True, env={**os.environ, **(env or AUTH)}, cwd=REPO)


@pytest.mark.e2e
def test_orthanc_studies_are_scored_once_and_their_srs_match_mcrad_predict(orthanc, pacs_study, study):
    cfg, studies, pids, tmp = pacs_study
    cfg = with_pacs(cfg, orthanc, endpoints=["nodal_metastasis"])
    for files in studies[:N_STUDIES]:
        orthanc.upload(files)
    from mcrad.pacs.poll import poll

    assert poll(cfg, dry_run=True, environ=AUTH)["new"] == N_STUDIES
    assert not orthanc.srs() and not Paths.from_config(cfg).pacs_scores("nodal_metastasis").exists()
    proc = poll_cli(cfg, tmp)
    assert proc.returncode == 0, proc.stderr
    assert f"found={N_STUDIES} skipped=0 ok={N_STUDIES} failed=0" in proc.stdout, proc.stderr[-3000:]
    srs = orthanc.srs()
    uploaded = {pydicom.dcmread(files[0]).StudyInstanceUID: k for k, files in enumerate(studies[:N_STUDIES])}
    assert sorted(ds.StudyInstanceUID for ds in srs) == sorted(uploaded)  # one SR per study, in that study
    expected = reference_scores(cfg, studies[:N_STUDIES], tmp)
    stage2 = pd.read_csv(study / "validation" / "nodal_metastasis" / "predictions.tsv", sep="\t",
                         dtype={"patient_id": str})
    stage2 = stage2[(stage2["model"] == "radiomics") & (stage2["stage"] == "external")].set_index("patient_id")
    for ds in srs:
        k = uploaded[ds.StudyInstanceUID]
        images = {pydicom.dcmread(f).SeriesInstanceUID for f in studies[k][:-1]}
        evidence = {s.SeriesInstanceUID for st in ds.CurrentRequestedProcedureEvidenceSequence
                    for s in st.ReferencedSeriesSequence}
        assert evidence == images | {pydicom.dcmread(studies[k][-1]).SeriesInstanceUID}
        (found,) = sr.read_scores(ds)
        assert found["model"] == "radiomics" and "stage-2 estimates of centre C3" in found["harmonisation"]
        ref = expected[expected["patient_id"] == f"REF-{k}"].iloc[0]
        assert abs(found["score"] - ref["score"]) < 1e-9 and found["threshold"] == ref["threshold"]
        assert found["call"] == ("positive" if ref["positive"] else "negative")
        # and the study's own stage-2 scoring of the same case from its NIfTI files
        assert abs(found["score"] - stage2.loc[pids[k], "score"]) < 1e-9
    paths = Paths.from_config(cfg)
    table = pd.read_csv(paths.pacs_scores("nodal_metastasis"), sep="\t")
    assert len(table) == N_STUDIES and (table["status"] == "ok").all()
    assert np.allclose(np.sort(table["score"]), np.sort(expected["score"]), atol=1e-9, rtol=0)
    # a second poll adds nothing
    again = poll(cfg, environ=AUTH)
    assert again["found"] == again["skipped"] == N_STUDIES and again["ok"] == 0
    assert len(orthanc.srs()) == N_STUDIES
    assert len(pd.read_csv(paths.pacs_scores("nodal_metastasis"), sep="\t")) == N_STUDIES


@pytest.mark.e2e
def test_an_outage_mid_poll_is_a_clear_error_and_the_next_poll_completes_without_duplicates(
        orthanc, pacs_study, monkeypatch):
    from mcrad.pacs import poll as pacs_poll
    from mcrad.pacs import scoring

    cfg, studies, pids, tmp = pacs_study
    cfg = with_pacs(cfg, orthanc, endpoints=["nodal_metastasis"], write_back={"seg": True})
    for files in studies[N_STUDIES:]:
        orthanc.upload(files)
    synthetic_case(tmp / "bare", n=9)  # ... and a CT study without a structure set: reported, never blocking
    orthanc.upload(sorted((tmp / "bare" / "case9" / "ct").iterdir()))
    before = len(orthanc.srs())
    real = scoring.extract

    def extract_then_outage(*args, **kwargs):
        out = real(*args, **kwargs)
        orthanc.stop()  # the archive goes down after the first new study was retrieved and scored
        return out

    monkeypatch.setattr(scoring, "extract", extract_then_outage)
    with pytest.raises(pacs_client.PacsError, match="unreachable during STOW-RS"):
        pacs_poll.poll(cfg, environ=AUTH)
    monkeypatch.setattr(scoring, "extract", real)
    orthanc.start()
    assert len(orthanc.srs()) == before  # no partial SR
    counts = pacs_poll.poll(cfg, environ=AUTH)
    assert counts["ok"] == 2 and counts["failed"] == 0 and counts["no_structure"] == 1
    srs = orthanc.srs()
    assert len(srs) == before + 2 == len({ds.StudyInstanceUID for ds in srs})
    segs = orthanc.series("SEG")
    assert len(segs) == 2 and {query.value(s, query.STUDY_UID) for s in segs} <= {ds.StudyInstanceUID for ds in srs}
    table = pd.read_csv(Paths.from_config(cfg).pacs_scores("nodal_metastasis"), sep="\t")
    assert table["study"].is_unique and (table["status"] == "ok").sum() == N_STUDIES + 2
    assert table.loc[table["status"] != "ok", "status"].tolist() == ["no_structure"]
    audit = Paths.from_config(cfg).pacs_audit.read_text()
    assert "interrupted: PACS error" in audit


@pytest.mark.e2e
def test_wrong_credentials_are_a_clear_error(orthanc, pacs_study):
    cfg, _, _, tmp = pacs_study
    cfg = with_pacs(cfg, orthanc)
    proc = poll_cli(cfg, tmp, env={pacs_client.USER_VAR: USER, pacs_client.PASSWORD_VAR: "wrong"})
    assert proc.returncode == 2 and "refused the credentials (401)" in proc.stderr
    assert "wrong" not in proc.stderr
    from mcrad.pacs.poll import poll

    with pytest.raises(pacs_client.PacsError, match=r"refused the credentials \(401\)"):
        poll(cfg, environ={"NETRC": str(tmp / "none")})  # none at all


@pytest.mark.e2e
def test_no_identifier_reaches_pacs_results_or_logs(orthanc, pacs_study):
    cfg, studies, _, _ = pacs_study
    paths = Paths.from_config(load_config(cfg))
    files = [f for f in [*paths.pacs_dir.rglob("*"), paths.log("pacs_poll")] if f.is_file()]
    assert paths.pacs_scores("nodal_metastasis") in files and paths.pacs_audit in files
    blobs = [gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes() for f in files]
    secrets = {v for k in range(len(studies)) for v in phi(k).values()}
    for case in studies:
        ds = pydicom.dcmread(case[0])
        secrets |= {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}
    for value in secrets:
        assert not any(value.encode() in b for b in blobs), f"{value} leaked into {paths.pacs_dir} or the log"
    assert not paths.pacs_workspace.exists() or not any(paths.pacs_workspace.iterdir())


def test_every_loop_logs_an_outage_and_polls_again(monkeypatch):
    from mcrad.pacs import poll as pacs_poll

    calls = []

    def fake_poll(cfg, since, dry_run):
        calls.append(since)
        if len(calls) == 1:
            raise pacs_client.PacsError("PACS unreachable")
        return {}

    monkeypatch.setattr(pacs_poll, "poll", fake_poll)
    monkeypatch.setattr(pacs_poll.time, "sleep", calls.append)
    pacs_poll.loop({}, "10m", "20240101", polls=2)
    assert calls == ["20240101", 600.0, "20240101"]


def test_cli_refuses_a_since_that_is_not_a_date(tmp_path, capsys):
    from mcrad.cli import main

    assert main(["pacs", "poll", "--config", str(tmp_path / "x.yaml"), "--since", "2024-01-01"]) == 2
    assert "YYYYMMDD" in capsys.readouterr().err
