"""Segment: regions of interest from the provided mask: the tumour itself and a peritumoral ring."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mcrad.cases import run_stage
from mcrad.config import Paths
from mcrad.errors import CaseError


def roi_names(opts: dict) -> list[str]:
    return ["tumour"] + (["peritumoral"] if opts["peritumoral"]["activate"] else [])


def roi_file(case: Path, roi: str, auto: bool = False) -> Path:
    """A case's ROI: roi-<name> from the provided mask, or auto-<name> from the auto-segmentation UNet's mask."""
    return case / "segment" / f"{'auto' if auto else 'roi'}-{roi}.nii.gz"


def peritumoral_ring(image: sitk.Image, mask: sitk.Image, radius_mm: float, min_intensity: float | None
                     ) -> sitk.Image:
    """Voxels outside the tumour within `radius_mm` of it (physical distance), optionally without air."""
    dist = sitk.SignedMaurerDistanceMap(mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True,
                                        backgroundValue=0)
    ring = sitk.And(dist > 0, dist <= radius_mm)
    if min_intensity is not None:
        ring = sitk.And(ring, image >= min_intensity)
    ring = sitk.Cast(ring, sitk.sitkUInt8)
    ring.CopyInformation(mask)
    return ring


def segment_case(row: pd.Series, opts: dict, paths: Paths) -> dict[str, Any]:
    case = paths.case_dir(row["centre"], row["patient_id"])
    image = sitk.ReadImage(str(case / "preprocess" / "image.nii.gz"))
    mask = sitk.ReadImage(str(case / "preprocess" / "mask.nii.gz"))
    rois = {"tumour": mask}
    peri = opts["peritumoral"]
    if peri["activate"]:
        rois["peritumoral"] = peritumoral_ring(image, mask, peri["radius_mm"], peri["min_intensity"])
    out = case / "segment"
    out.mkdir(parents=True, exist_ok=True)
    result = {}
    for name, roi in rois.items():
        n = int(np.count_nonzero(sitk.GetArrayViewFromImage(roi)))
        if n == 0:
            raise CaseError(row["patient_id"], str(case / "preprocess" / "mask.nii.gz"), f"ROI '{name}' is empty",
                            "check the mask, or switch the peritumoral ring off (segment.peritumoral.activate)")
        sitk.WriteImage(roi, str(out / f"roi-{name}.nii.gz"), useCompression=True)
        result[f"roi_{name}_voxels"] = n
    return result


def segment_shard(rows: pd.DataFrame, opts: dict, paths: Paths, strict: bool) -> pd.DataFrame:
    def inputs(r: pd.Series) -> list[Path]:
        d = paths.case_dir(r["centre"], r["patient_id"]) / "preprocess"
        return [d / "image.nii.gz", d / "mask.nii.gz"]

    return run_stage(rows, "segment", lambda r: segment_case(r, opts, paths), inputs, paths,
                     __file__, opts, strict)


# ---- auto-segmentation (deep.autoseg): a MONAI UNet trained on the training centre's provided masks ----------
def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two binary masks; 1.0 when both are empty."""
    a, b = a.astype(bool), b.astype(bool)
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def _autoseg_input(image: sitk.Image, opts: dict):
    """Image scaled to [0, 1] over the deep intensity window and resized to patch_voxels^3, as (1, 1, z, y, x)."""
    import torch
    from monai.transforms import Resize

    low, high = opts["intensity_window"]
    arr = np.clip((sitk.GetArrayFromImage(image).astype(np.float32) - low) / (high - low), 0, 1)
    p = opts["autoseg"]["patch_voxels"]
    return Resize((p, p, p), mode="trilinear")(torch.from_numpy(arr)[None])[None]


def _unet(opts: dict):
    from monai.networks.nets import UNet

    ch = opts["autoseg"]["channels"]
    return UNet(spatial_dims=3, in_channels=1, out_channels=1, channels=ch, strides=[2] * (len(ch) - 1),
                num_res_units=1)


def train_autoseg(cases: list[tuple[str, Path, Path]], opts: dict, seed: int, device):
    """Train the UNet on (patient_id, image, mask) cases of the training centre(s); returns (network, losses)."""
    import torch
    from monai.losses import DiceCELoss
    from monai.transforms import Resize

    torch.manual_seed(seed)
    p, a = opts["autoseg"]["patch_voxels"], opts["autoseg"]
    x, y = [], []
    for pid, image_path, mask_path in cases:
        try:
            image, mask = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(mask_path))
        except RuntimeError as exc:
            raise CaseError(pid, str(image_path), f"cannot read image or mask ({exc})",
                            "rerun the preprocess stage for this case") from None
        x.append(_autoseg_input(image, opts))
        m = torch.from_numpy((sitk.GetArrayFromImage(mask) > 0).astype(np.float32))[None]
        y.append((Resize((p, p, p), mode="trilinear")(m) >= 0.5).float()[None])
    x, y = torch.cat(x).to(device), torch.cat(y).to(device)
    net = _unet(opts).to(device)
    optim = torch.optim.Adam(net.parameters(), lr=a["learning_rate"])
    loss_fn = DiceCELoss(sigmoid=True)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(a["epochs"]):
        net.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(a["batch_size"]):
            optim.zero_grad()
            loss = loss_fn(net(x[idx.to(device)]), y[idx.to(device)])
            loss.backward()
            optim.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
    return net.eval(), losses


def predict_autoseg(net, image: sitk.Image, opts: dict, device) -> sitk.Image:
    """The UNet's tumour mask on the grid of `image` (probabilities resized back, kept where >= 0.5)."""
    import torch
    from monai.transforms import Resize

    with torch.no_grad():
        prob = torch.sigmoid(net(_autoseg_input(image, opts).to(device)))[0].cpu()
    size = sitk.GetArrayViewFromImage(image).shape
    arr = (Resize(size, mode="trilinear")(prob)[0].numpy() >= 0.5).astype(np.uint8)
    mask = sitk.GetImageFromArray(arr)
    mask.CopyInformation(image)
    return mask


def autoseg_cases(rows: pd.DataFrame, paths: Paths) -> list[tuple[str, str, Path, Path]]:
    """(patient_id, centre, image, provided mask) of the cases that came through preprocessing, in a stable order."""
    ok = rows[rows["status"] == "ok"].sort_values(["centre", "patient_id"], kind="stable")
    return [(r.patient_id, r.centre, paths.case_dir(r.centre, r.patient_id) / "preprocess" / "image.nii.gz",
             paths.case_dir(r.centre, r.patient_id) / "preprocess" / "mask.nii.gz") for r in ok.itertuples()]


def autoseg_centre(net, cases: list[tuple[str, str, Path, Path]], opts: dict, paths: Paths, device,
                   segment_opts: dict | None = None) -> pd.DataFrame:
    """Auto masks (cases/<centre>/<patient>/segment/auto-tumour.nii.gz) and their Dice against the provided mask.

    With `segment_opts` whose peritumoral ring is on, the ring is rebuilt around the auto mask (auto-peritumoral),
    as the segment stage builds it around the provided one, so features can come from auto ROIs alone.
    """
    rois = roi_names(segment_opts) if segment_opts else ["tumour"]
    out = []
    for pid, centre, image_path, mask_path in cases:
        image, mask = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(mask_path))
        auto = predict_autoseg(net, image, opts, device)
        case = paths.case_dir(centre, pid)
        (case / "segment").mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(auto, str(roi_file(case, "tumour", auto=True)), useCompression=True)
        if "peritumoral" in rois:
            peri = segment_opts["peritumoral"]
            ring = peritumoral_ring(image, auto, peri["radius_mm"], peri["min_intensity"])
            sitk.WriteImage(ring, str(roi_file(case, "peritumoral", auto=True)), useCompression=True)
        out.append({"patient_id": pid, "centre": centre,
                    "dice": dice(sitk.GetArrayFromImage(auto), sitk.GetArrayFromImage(mask) > 0),
                    "auto_voxels": int(sitk.GetArrayViewFromImage(auto).sum())})
    return pd.DataFrame(out, columns=["patient_id", "centre", "dice", "auto_voxels"])


def dice_summary(per_case: pd.DataFrame, train: list[str], use_for_features: bool = False) -> pd.DataFrame:
    """Dice per centre: n, mean, SD, median, IQR; training centres are marked (they were seen in training), and
    `feature_masks` records which masks fed the centre's features (auto for non-training centres when used)."""
    g = per_case.groupby("centre", sort=True)["dice"]
    t = pd.DataFrame({"n": g.size(), "dice_mean": g.mean(), "dice_sd": g.std(ddof=1), "dice_median": g.median(),
                      "dice_q1": g.quantile(0.25), "dice_q3": g.quantile(0.75)}).reset_index()
    t.insert(1, "role", ["train (seen)" if c in train else "external" for c in t["centre"]])
    t["feature_masks"] = ["auto" if use_for_features and c not in train else "provided" for c in t["centre"]]
    return t
