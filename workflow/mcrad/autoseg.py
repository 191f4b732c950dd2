"""Auto-segmentation (deep.autoseg): a MONAI UNet trained on the training centre's provided masks predicts a
tumour mask for every case (segment/auto-tumour, and the peritumoral ring rebuilt around it); its Dice against
the provided masks per centre goes to the report."""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mcrad.errors import CaseError
from mcrad.files import read_shards, write_json, write_table
from mcrad.paths import Paths
from mcrad.segment import peritumoral_ring, roi_names
from mcrad.stats import dice


def _autoseg_input(image: sitk.Image, opts: dict):
    """Image scaled to [0, 1] over the deep intensity window and resized to patch_voxels^3, as (1, 1, z, y, x)."""
    import torch
    from monai.transforms import Resize

    low, high = opts["intensity_window"]
    arr = np.clip((sitk.GetArrayFromImage(image).astype(np.float32) - low) / (high - low), 0, 1)
    p = opts["autoseg"]["patch_voxels"]
    return Resize((p, p, p), mode="trilinear")(torch.from_numpy(arr)[None])[None]


def unet(opts: dict):
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
    net = unet(opts).to(device)
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
    return [(r.patient_id, r.centre, paths.case(r.centre, r.patient_id).preprocess_image,
             paths.case(r.centre, r.patient_id).preprocess_mask) for r in ok.itertuples()]


def autoseg_centre(net, cases: list[tuple[str, str, Path, Path]], opts: dict, paths: Paths, device,
                   segment_opts: dict | None = None) -> pd.DataFrame:
    """Auto masks (cases/<centre>/<patient>/segment/auto-tumour.nii.gz) and their Dice against the provided mask.

    With `segment_opts` whose peritumoral ring is on, the ring is rebuilt around the auto mask (auto-peritumoral),
    as the segment stage builds it around the provided one, so features can come from auto ROIs alone.
    """
    rois = roi_names(segment_opts) if segment_opts else ["tumour"]
    out = []
    for pid, centre, image_path, mask_path in cases:
        case = paths.case(centre, pid)
        try:
            image, mask = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(mask_path))
            auto = predict_autoseg(net, image, opts, device)
            case.segment_dir.mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(auto, str(case.roi("tumour", auto=True)), useCompression=True)
            if "peritumoral" in rois:
                peri = segment_opts["peritumoral"]
                ring = peritumoral_ring(image, auto, peri["radius_mm"], peri["min_intensity"])
                sitk.WriteImage(ring, str(case.roi("peritumoral", auto=True)), useCompression=True)
        except Exception as exc:  # noqa: BLE001 - one case without an auto mask; its features quarantine it
            traceback.print_exception(exc, file=sys.stderr)
            for roi in rois:
                case.roi(roi, auto=True).unlink(missing_ok=True)
            print(f"mcrad: autoseg: patient {pid} has no auto mask ({type(exc).__name__}: {exc}); its features "
                  "job quarantines it", file=sys.stderr)
            out.append({"patient_id": pid, "centre": centre, "dice": np.nan, "auto_voxels": 0})
            continue
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


def autoseg_train_stage(opts: dict, seed: int, shard_files: list[Path], paths: Paths) -> None:
    """`mcrad autoseg-train`: the UNet learns the training centre(s)' provided masks; saved with its options."""
    import torch

    from mcrad.deep import select_device, setup_determinism

    setup_determinism(seed, opts["threads"])
    device = select_device(opts["device"])
    cases = [(pid, img, msk) for pid, _, img, msk in autoseg_cases(read_shards(shard_files), paths)]
    net, losses = train_autoseg(cases, opts, seed, device)
    paths.autoseg_dir.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, paths.autoseg_network)
    write_json({"options": opts, "cases": len(cases), "losses": losses}, paths.autoseg_network_meta)
    print(f"autoseg: UNet trained on {len(cases)} cases, final DiceCE loss {losses[-1]:.4f}")


def autoseg_predict_stage(seed: int, shard_files: list[Path], segment_opts: dict, paths: Paths, out: Path) -> None:
    """`mcrad autoseg-predict`: auto masks and their Dice for the cases of one centre."""
    import torch

    from mcrad.deep import select_device, setup_determinism

    opts = json.loads(paths.autoseg_network_meta.read_text())["options"]
    setup_determinism(seed, opts["threads"])
    device = select_device(opts["device"])
    net = unet(opts)
    net.load_state_dict(torch.load(paths.autoseg_network, map_location="cpu", weights_only=True))
    cases = autoseg_cases(read_shards(shard_files), paths)
    write_table(autoseg_centre(net.to(device).eval(), cases, opts, paths, device, segment_opts), out)
