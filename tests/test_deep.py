"""Deep stage (MONAI): crops, networks, CV deep scores, determinism, pretrained weights, Grad-CAM, DAG."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
import yaml
from helpers import REPO, SNAKEMAKE, write_pair
from mcrad import autoseg, deep, segment, stats
from mcrad.config import load_config
from mcrad.errors import CaseError, McradError
from mcrad.paths import Paths
from sklearn.metrics import roc_auc_score

CPU = torch.device("cpu")
TINY = {"activate": True, "crop_mm": 24, "crop_voxels": 12, "width": 4, "embedding_size": 8, "epochs": 10,
        "patience": 3, "folds": 2, "batch_size": 4, "learning_rate": 0.003, "augment": True}


def deep_opts(**over) -> dict:
    cfg = load_config({"study": {"name": "t"}, "cohort": {}, "design": {"train": ["A"], "external": ["B"]},
                       "endpoints": [{"name": "y", "column": "y"}], "deep": {**TINY, **over}})
    return {**cfg["deep"], "fill_value": -1000.0}


def make_cases(root: Path, n_train: int = 24, n_ext: int = 6) -> tuple[Paths, pd.DataFrame]:
    """Bright, larger tumours are positive: a signal a tiny CNN learns in a few epochs."""
    paths = Paths(root)
    rows = []
    for centre, n in (("A", n_train), ("B", n_ext)):
        for i in range(n):
            pid, y = f"{centre}{i:02d}", i % 2
            d = paths.case_dir(centre, pid)
            ip, mp = write_pair(d / "raw", pid, shape=(14, 20, 20), spacing=(1.0, 1.0, 2.0), radius_vox=3 + y,
                                value=20 + 180 * y, seed=i)
            for sub, src, name in (("preprocess", ip, "image.nii.gz"), ("segment", mp, "roi-tumour.nii.gz")):
                (d / sub).mkdir(parents=True, exist_ok=True)
                src.rename(d / sub / name)
            rows.append({"patient_id": pid, "centre": centre, "status": "ok", "y": y})
    return paths, pd.DataFrame(rows)


def run_once(root: Path, opts: dict, n_train: int = 24) -> tuple[str, str, dict, pd.DataFrame]:
    paths, rows = make_cases(root, n_train)
    deep.setup_determinism(11, 1)
    items, missing = deep.attach_labels(deep.case_items(rows[rows["centre"] == "A"], paths), rows, "y")
    assert missing == []
    net, table, curves, summary = deep.train_endpoint(items, opts, 11, CPU)
    deep.save_network(net, opts, summary, root / "net.pt", root / "net.json")
    loaded, _ = deep.load_network(root / "net.pt", root / "net.json", CPU)
    ext = deep.score_items(loaded, deep.case_items(rows[rows["centre"] == "B"], paths), opts, 11, CPU)
    (root / "train.tsv").write_text(table.to_csv(sep="\t", index=False))
    (root / "ext.tsv").write_text(ext.to_csv(sep="\t", index=False))
    return (root / "train.tsv").read_text(), (root / "ext.tsv").read_text(), summary, curves


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return run_once(tmp_path_factory.mktemp("deep1"), deep_opts())


def test_features_follow_the_contract_and_the_network_learns(trained):
    train_text, ext_text, summary, curves = trained
    from io import StringIO

    train, ext = (pd.read_csv(StringIO(t), sep="\t", dtype={"patient_id": str}) for t in (train_text, ext_text))
    emb = [f"deep_emb_{i:03d}" for i in range(8)]
    for df, centre, n in ((train, "A", 24), (ext, "B", 6)):
        assert list(df.columns) == ["patient_id", "centre", "deep_score", *emb]
        assert (df["centre"] == centre).all() and len(df) == n and df["patient_id"].is_unique
        assert df["deep_score"].between(0, 1).all() and np.isfinite(df[emb].to_numpy()).all()
    y = train["patient_id"].str[1:].astype(int) % 2
    # out-of-fold scores on a separable signal; the final network on unseen external cases
    assert summary["oof_auc"] == pytest.approx(roc_auc_score(y, train["deep_score"]))
    assert summary["oof_auc"] >= 0.8
    assert roc_auc_score(ext["patient_id"].str[1:].astype(int) % 2, ext["deep_score"]) >= 0.8
    assert set(curves["fit"]) == {"fold1", "fold2", "final"}
    assert curves.loc[curves["fit"] == "final", "val_loss"].isna().all()
    assert len(curves[curves["fit"] == "final"]) == summary["final_epochs"]


def test_two_cpu_runs_write_identical_bytes(tmp_path):
    first, second = (run_once(tmp_path / run, deep_opts(epochs=2), n_train=12) for run in ("a", "b"))
    assert first[0] == second[0] and first[1] == second[1]
    # ... and the comparison can fail: another learning rate changes the bytes
    assert run_once(tmp_path / "c", deep_opts(epochs=2, learning_rate=0.002), n_train=12)[0] != first[0]


def test_tumour_crop_is_centred_on_the_roi(tmp_path):
    # reference: with 1 mm voxels and a crop of `voxels` mm, the crop is plain array slicing around the centroid
    rng = np.random.default_rng(0)
    arr = rng.normal(0, 100, (30, 30, 30)).astype(np.float32)
    roi_arr = np.zeros(arr.shape, np.uint8)
    roi_arr[10:15, 12:17, 8:13] = 1   # centroid (z, y, x) = (12, 14, 10)
    image, roi = sitk.GetImageFromArray(arr), sitk.GetImageFromArray(roi_arr)
    img, msk = deep.tumour_crop(image, roi, crop_mm=9, voxels=9, fill=-1000)
    np.testing.assert_allclose(img, arr[8:17, 10:19, 6:15], atol=1e-4)
    assert msk.sum() == roi_arr.sum()
    # parts outside the image are air
    img, _ = deep.tumour_crop(image, roi, crop_mm=60, voxels=60, fill=-1000)
    assert img[0, 0, 0] == -1000 and img.shape == (60, 60, 60)


def test_largest_slices_picks_the_biggest_tumour_sections():
    image = np.arange(5)[:, None, None] * np.ones((5, 4, 4))
    roi = np.zeros((5, 4, 4), np.uint8)
    roi[1, :2, :2], roi[3, :, :], roi[4, :3, :3] = 1, 1, 1
    np.testing.assert_array_equal(deep.largest_slices(image, roi, 2)[:, 0, 0], [3, 4])


@pytest.mark.parametrize("network", ["resnet3d", "densenet3d", "cnn2d"])
def test_each_network_trains_and_gives_gradcam_pngs(tmp_path, network):
    opts = deep_opts(network=network, epochs=1, folds=2, gradcam_cases=2, crop_voxels=16)
    paths, rows = make_cases(tmp_path, n_train=8, n_ext=0)
    items, _ = deep.attach_labels(deep.case_items(rows, paths), rows, "y")
    deep.setup_determinism(3, 1)
    ds = deep.make_dataset(items, opts, -1000.0, 3)
    x = ds.plain[0]["input"]  # image channel(s), then the tumour mask channel(s) (deep.mask_channel)
    assert x.shape == ((6, 16, 16) if network == "cnn2d" else (2, 16, 16, 16))
    mask = x[3:] if network == "cnn2d" else x[1:]
    assert set(mask.unique().tolist()) == {0.0, 1.0} and mask.sum() > 0
    # the mask channel is where the tumour is bright (make_cases: tumour 20 or 200 HU over -50 HU background)
    image = x[:3] if network == "cnn2d" else x[:1]
    assert image[mask == 1].mean() > image[mask == 0].mean()
    net, curve, best = deep.fit(ds, list(range(6)), [6, 7], opts, 3, CPU)
    assert len(curve) == 1 and best == 1
    pngs = deep.write_gradcam(net, items, opts, tmp_path / "cam", CPU)
    assert [p.name for p in pngs] == ["A00.png", "A01.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_mask_channel_is_optional_and_augmentation_keeps_the_tumour_size(tmp_path):
    paths, rows = make_cases(tmp_path, n_train=2, n_ext=0)
    items, _ = deep.attach_labels(deep.case_items(rows, paths), rows, "y")
    plain = deep.make_dataset(items, deep_opts(mask_channel=False), -1000.0, 3).plain[1]["input"]
    assert plain.shape == (1, 12, 12, 12)
    assert deep.build_network(deep_opts(mask_channel=False)).eval()(plain[None]).shape == (1, 1)
    ds = deep.make_dataset(items, deep_opts(), -1000.0, 3)
    base = ds.plain[1]["input"]
    seen = set()
    for _ in range(12):  # flips and in-plane quarter turns: the tumour keeps its voxel count and intensities
        x = ds.train[1]["input"]
        seen.add(str(x[0, 6, 6].round(decimals=3).tolist()))  # a noisy row of the image (the sphere is symmetric)
        assert x[1].sum() == base[1].sum()
        assert torch.allclose(x[0][x[1] == 1].sort().values, base[0][base[1] == 1].sort().values, atol=0.051)
    assert len(seen) > 1  # ... and the augmentation did transform it


def test_pretrained_weights_load_from_a_local_file_only(tmp_path):
    opts = deep_opts()
    src = deep.build_network(opts)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    fresh = deep.build_network(opts)
    assert deep.load_pretrained(fresh, str(tmp_path / "w.pt")) == []
    for k, v in src.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k])
    # another width: only the shape-compatible tensors (none of the convolutions) would load
    partial = {"head.bias": src.state_dict()["head.bias"]}
    torch.save(partial, tmp_path / "p.pt")
    assert "head.weight" in deep.load_pretrained(deep.build_network(opts), str(tmp_path / "p.pt"))
    with pytest.raises(McradError, match="never downloaded"):
        deep.load_pretrained(fresh, str(tmp_path / "missing.pt"))
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(McradError, match="no tensor"):
        deep.load_pretrained(fresh, str(tmp_path / "bad.pt"))


def test_device_choice():
    assert deep.select_device("cpu") == CPU
    assert deep.select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(McradError, match="no CUDA"):
            deep.select_device("cuda")


def test_labels_and_too_few_cases_give_clear_errors(tmp_path):
    paths, rows = make_cases(tmp_path, n_train=6, n_ext=0)
    cohort = rows.assign(y=[0, 1, None, 1, 0, 1]).astype({"y": object})
    items, missing = deep.attach_labels(deep.case_items(rows, paths), cohort, "y")
    assert missing == ["A02"] and len(items) == 5
    with pytest.raises(CaseError, match="A01"):
        deep.attach_labels(deep.case_items(rows, paths), rows.assign(y=[0, 2, 0, 1, 0, 1]), "y")
    with pytest.raises(McradError, match="deep.folds"):
        deep.train_endpoint(items, deep_opts(), 1, CPU)
    with pytest.raises(McradError, match="crop_voxels >= 16"):
        deep.build_network(deep_opts(network="densenet3d", crop_voxels=12))


def _dry_run(tmp_path: Path, deep_block: dict, targets: tuple[str, ...] = (), ok: bool = True) -> str:
    """Dry run (-p prints the shell commands) of the tiny study with `deep_block`; returns stdout (stderr if not ok)."""
    cfg = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    cfg["study"]["results"] = str(tmp_path / "results")
    cfg["deep"] = deep_block
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [str(SNAKEMAKE), "-n", "-p", *targets, "--configfile", str(tmp_path / "c.yaml")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert (proc.returncode == 0) == ok, proc.stderr[-3000:] + proc.stdout[-3000:]
    return proc.stdout if ok else proc.stderr + proc.stdout


@pytest.mark.e2e
def test_dag_has_deep_jobs_only_when_activated(tmp_path):
    on = _dry_run(tmp_path, {"activate": True})
    assert "deep_train" in on and "deep_score" in on
    off = _dry_run(tmp_path, {"activate": False})
    assert "deep_train" not in off and "deep_score" not in off


def _features_job(tmp_path: Path, autoseg: dict, shard: str) -> tuple[set[str], str]:
    """Rules of the jobs that the features of `shard` need, and the features command line."""
    cfg = load_config({**yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text()),
                       "study": {"name": "tiny", "results": str(tmp_path / "results")}})
    target = str(Paths.from_config(cfg).shard_table("features", shard))
    out = _dry_run(tmp_path, {"activate": False, "autoseg": autoseg}, (target,))
    stats = out.split("Job stats:")[1].split("total")[0]
    [command] = [line for line in out.splitlines() if "mcrad.cli features " in line]
    return set(re.findall(r"^(\w+)\s+\d+\s*$", stats, flags=re.M)), command


@pytest.mark.e2e
def test_dag_sends_auto_masks_into_external_features_only_when_configured(tmp_path):
    on = {"activate": True, "use_for_features": True}
    rules, command = _features_job(tmp_path, on, "C2.000")
    assert {"autoseg_train", "autoseg_predict", "features"} <= rules and "--auto-masks" in command
    # the training centre keeps its provided masks (the UNet learned them)
    rules, command = _features_job(tmp_path, on, "C1.000")
    assert "autoseg_predict" not in rules and "--auto-masks" not in command
    rules, command = _features_job(tmp_path, {"activate": True}, "C2.000")
    assert "autoseg_predict" not in rules and "autoseg_train" not in rules and "--auto-masks" not in command
    err = _dry_run(tmp_path, {"autoseg": {"use_for_features": True}}, ok=False)
    assert "use_for_features is true but deep.autoseg.activate is false" in err


def test_dice_matches_simpleitk():
    rng = np.random.default_rng(1)
    a, b = rng.random((8, 9, 10)) > 0.6, rng.random((8, 9, 10)) > 0.5
    ref = sitk.LabelOverlapMeasuresImageFilter()
    ref.Execute(sitk.GetImageFromArray(a.astype(np.uint8)), sitk.GetImageFromArray(b.astype(np.uint8)))
    assert stats.dice(a, b) == pytest.approx(ref.GetDiceCoefficient())
    assert stats.dice(np.zeros(3), np.zeros(3)) == 1.0


def test_autoseg_unet_learns_the_training_masks_and_reports_dice_per_centre(tmp_path):
    paths, rows = make_cases(tmp_path, n_train=6, n_ext=3)
    for r in rows.itertuples():  # autoseg reads the preprocessed mask, as the segment stage does
        d = paths.case_dir(r.centre, r.patient_id)
        (d / "segment" / "roi-tumour.nii.gz").rename(d / "preprocess" / "mask.nii.gz")
    opts = {**deep_opts(), "autoseg": {"activate": True, "patch_voxels": 16, "channels": [4, 8], "epochs": 40,
                                       "learning_rate": 0.01, "batch_size": 3}}
    deep.setup_determinism(5, 1)
    cases = autoseg.autoseg_cases(rows, paths)
    net, losses = autoseg.train_autoseg([(p, i, m) for p, c, i, m in cases if c == "A"], opts, 5, CPU)
    assert losses[-1] < losses[0]
    per_case = autoseg.autoseg_centre(net, cases, opts, paths, CPU)
    assert (paths.case_dir("B", "B00") / "segment" / "auto-tumour.nii.gz").is_file()
    summary = autoseg.dice_summary(per_case, ["A"])
    assert list(summary["centre"]) == ["A", "B"] and list(summary["n"]) == [6, 3]
    assert list(summary["role"]) == ["train (seen)", "external"]
    assert list(summary["feature_masks"]) == ["provided", "provided"]
    assert list(autoseg.dice_summary(per_case, ["A"], use_for_features=True)["feature_masks"]) == ["provided", "auto"]
    assert summary.loc[1, "dice_mean"] == pytest.approx(per_case.loc[per_case["centre"] == "B", "dice"].mean())
    assert summary["dice_mean"].min() > 0.6


def test_features_of_an_external_centre_come_from_the_auto_masks(tmp_path):
    from mcrad.features.extract import features_shard
    from mcrad.files import STATUS_COLUMNS

    paths, rows = make_cases(tmp_path, n_train=6, n_ext=2)
    for r in rows.itertuples():  # autoseg learns the preprocessed mask; the segment ROI stays for the provided run
        d = paths.case_dir(r.centre, r.patient_id)
        sitk.WriteImage(sitk.ReadImage(str(d / "segment" / "roi-tumour.nii.gz")), str(d / "preprocess" / "mask.nii.gz"))
    opts = {**deep_opts(), "autoseg": {"activate": True, "patch_voxels": 16, "channels": [4, 8], "epochs": 4,
                                       "learning_rate": 0.01, "batch_size": 3}}
    deep.setup_determinism(5, 1)
    cases = autoseg.autoseg_cases(rows, paths)
    net, _ = autoseg.train_autoseg([(p, i, m) for p, c, i, m in cases if c == "A"], opts, 5, CPU)
    seg_opts = {"peritumoral": {"activate": True, "radius_mm": 3.0, "min_intensity": None}, "min_voxels": 8,
                "min_extent_voxels": 2}
    per_case = autoseg.autoseg_centre(net, [c for c in cases if c[1] == "B"], opts, paths, CPU, seg_opts)
    ext = rows[rows["centre"] == "B"].assign(failed_stage="", message="")[STATUS_COLUMNS]
    for _, r in ext.iterrows():  # the provided ROIs, as the segment stage writes them
        segment.segment_case(r, seg_opts, paths)
    fopts = {"params": str(REPO / "config" / "radiomics" / "ct_default.yaml"), "sequence": "CT", "sequence_params": {}}
    auto = features_shard(ext, fopts, seg_opts, paths, True, auto_masks=True).set_index("patient_id")
    provided = features_shard(ext, fopts, seg_opts, paths, True).set_index("patient_id")
    voxel_mm3 = 2.0  # make_cases: 1 x 1 x 2 mm
    for r in per_case.itertuples():
        tumour = sitk.GetArrayFromImage(sitk.ReadImage(str(paths.case("B", r.patient_id).roi("tumour", auto=True))))
        ring = sitk.GetArrayFromImage(sitk.ReadImage(str(paths.case("B", r.patient_id).roi("peritumoral", auto=True))))
        given = sitk.GetArrayFromImage(sitk.ReadImage(str(paths.case("B", r.patient_id).roi("tumour"))))
        assert 0 < tumour.sum() == r.auto_voxels and not (ring.astype(bool) & tumour.astype(bool)).any()
        assert tumour.sum() != given.sum()  # a 4-epoch UNet: the two runs must differ to tell which masks fed them
        # the ring was rebuilt around the auto mask: it touches it (6-neighbourhood) on every side
        grown = np.zeros_like(tumour, bool)
        for ax in range(3):
            for step in (1, -1):
                grown |= np.roll(tumour.astype(bool), step, axis=ax)
        assert (ring.astype(bool) & grown).any()
        row_auto, row_given = auto.loc[r.patient_id], provided.loc[r.patient_id]
        assert row_auto["CT_tumour_original_shape_VoxelVolume"] == pytest.approx(tumour.sum() * voxel_mm3)
        assert row_auto["CT_peritumoral_original_shape_VoxelVolume"] == pytest.approx(ring.sum() * voxel_mm3)
        assert row_given["CT_tumour_original_shape_VoxelVolume"] == pytest.approx(given.sum() * voxel_mm3)


def test_gpu_profile_sends_the_deep_rules_to_a_gpu():
    profile = yaml.safe_load((REPO / "profiles" / "slurm-gpu" / "config.yaml").read_text())
    rules = {m for f in (REPO / "workflow" / "rules").glob("*.smk")
             for m in re.findall(r"^rule (\w+):", f.read_text(), flags=re.M)}
    assert set(profile["set-resources"]) <= rules  # a typo would silently leave a rule on the CPU partition
    base = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert {k: v for k, v in profile.items() if k not in ("set-resources", "set-threads")} == \
        {k: v for k, v in base.items() if k not in ("set-resources", "set-threads")}
    for rule in ("deep_train", "deep_score"):
        assert profile["set-resources"][rule]["gpu"] == 1 and "gres" not in profile["set-resources"][rule]
    smk = (REPO / "workflow" / "rules" / "deep.smk").read_text()
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert '"gpu": 0 if CFG["deep"]["device"] == "cpu" else 1' in common and 'threads: CFG["deep"]["threads"]' in smk


def test_report_section_shows_curves_gradcam_and_dice(tmp_path):
    from mcrad.report.inputs import ReportInputs
    from mcrad.report.models import deep_section
    from mcrad.report.page import Report

    paths = Paths(tmp_path)
    gradcam = paths.deep_gradcam("y", "B")
    gradcam.mkdir(parents=True)
    (gradcam / "B00.png").write_bytes(b"\x89PNG fake")
    pd.DataFrame({"fit": ["fold1", "fold1", "final"], "epoch": [1, 2, 1], "train_loss": [0.7, 0.6, 0.65],
                  "val_loss": [0.69, 0.66, None], "val_auc": [0.6, 0.7, None]}).to_csv(paths.deep_curves("y"),
                                                                                      sep="\t", index=False)
    opts = deep_opts()
    summary = {"n": 24, "events": 12, "best_epochs": [2, 2], "final_epochs": 2, "oof_auc": 0.875, "device": "cpu"}
    deep.save_network(deep.build_network(opts), opts, summary, paths.deep_network("y"), paths.deep_network_meta("y"))
    paths.autoseg_dice.parent.mkdir(parents=True)
    pd.DataFrame({"centre": ["B"], "role": ["external"], "dice_mean": [0.81]}).to_csv(paths.autoseg_dice, sep="\t",
                                                                                       index=False)
    cfg = {"endpoints": [{"name": "y"}, {"name": "other"}], "design": {"train": ["A"], "external": ["B"],
                                                                       "prospective": []}}
    declared = [paths.deep_curves("y"), paths.deep_network_meta("y"), gradcam, paths.autoseg_dice]
    rep = Report(tmp_path / "figs")
    deep_section(rep, cfg, ReportInputs(tmp_path, declared))
    [(anchor, title, body)] = rep.sections
    assert anchor == "deep" and "out-of-fold AUC 0.875" in body and "B / B00" in body and "0.810" in body
    assert (tmp_path / "figs" / "deep_curves_y.png").is_file()
    empty = Report(None)
    deep_section(empty, {**cfg, "endpoints": [{"name": "other"}]}, ReportInputs(tmp_path / "none", []))
    assert empty.sections == []
    undeclared = Report(None)  # files the rule does not declare are not read, even when present
    deep_section(undeclared, cfg, ReportInputs(tmp_path, []))
    assert undeclared.sections == []


@pytest.mark.e2e
def test_e2e_study_writes_deep_features_for_every_centre(study):
    ok = pd.concat([pd.read_csv(p, sep="\t", dtype={"patient_id": str}) for p in (study / "shards/segment").glob("*")])
    ok = ok[ok["status"] == "ok"]
    for centre in ("C1", "C2", "C3"):
        df = pd.read_csv(Paths(study).deep_features("nodal_metastasis", centre), sep="\t", dtype={"patient_id": str})
        assert list(df.columns[:3]) == ["patient_id", "centre", "deep_score"]
        assert list(df.columns[3:]) == [f"deep_emb_{i:03d}" for i in range(4)]
        assert sorted(df["patient_id"]) == sorted(ok.loc[ok["centre"] == centre, "patient_id"])
    assert not Paths(study).deep_dir("os").exists()  # survival endpoints have no deep score
    assert "Deep learning" in (study / "report" / "index.html").read_text()


def test_a_case_whose_crop_fails_gets_an_empty_deep_score_and_the_rest_are_scored(tmp_path, capsys):
    paths, rows = make_cases(tmp_path, n_train=0, n_ext=3)
    roi = paths.case("B", "B01").roi("tumour")
    sitk.WriteImage(sitk.ReadImage(str(roi)) * 0, str(roi))  # an empty ROI: no crop
    opts = deep_opts()
    items = deep.case_items(rows, paths)
    table = deep.score_items(deep.build_network(opts), items, opts, 3, CPU)
    assert list(table["patient_id"]) == ["B00", "B01", "B02"]
    assert table.loc[1, "deep_score"] != table.loc[1, "deep_score"] and table.loc[[0, 2], "deep_score"].notna().all()
    assert table.filter(like="deep_emb_").iloc[1].isna().all()
    assert "patient B01 has no deep score" in capsys.readouterr().err


def test_models_that_cannot_score_a_case_leave_it_out_of_their_metrics_only():
    from mcrad.endpoints import endpoint
    from mcrad.validate.metrics import paired_delong

    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 20)
    rows = [pd.DataFrame({"patient_id": [f"p{i}" for i in range(40)], "centre": "B", "stage": "external",
                          "model": m, "label": y, "score": y + rng.normal(0, 1, 40)}) for m in ("radiomics", "deep")]
    rows[1].loc[3, "score"] = np.nan  # the deep stage could not crop p3
    pred = pd.concat(rows, ignore_index=True)
    scored = endpoint({"name": "y", "column": "y"}).scored(pred)
    assert len(scored) == 79 and "p3" in set(scored.loc[scored["model"] == "radiomics", "patient_id"])
    [pair] = paired_delong(scored).to_dict("records")
    assert pair["n"] == 39
