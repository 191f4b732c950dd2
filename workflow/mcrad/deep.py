"""Deep stage: MONAI networks on tumour-centred crops give a deep score and penultimate-layer embeddings.

Training centre: k-fold CV gives out-of-fold deep scores; a final network trained on all training patients (for
the median best epoch of the folds) gives the embeddings and scores every other centre. Deterministic on CPU.
"""
from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch
from monai.data import CacheDataset, DataLoader, PersistentDataset
from monai.data import Dataset as MonaiDataset
from monai.networks.nets import DenseNet, ResNet
from monai.transforms import (
    Compose,
    ConcatItemsd,
    EnsureTyped,
    MapTransform,
    RandFlipd,
    RandRotate90d,
    RandShiftIntensityd,
    ScaleIntensityRanged,
)
from monai.utils import set_determinism
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch import nn

from mcrad.errors import CaseError, McradError
from mcrad.files import read_shards, read_tables, write_json, write_table
from mcrad.model.registry import DEEP_EMB, DEEP_SCORE
from mcrad.paths import Paths

SCORE, EMB = DEEP_SCORE, DEEP_EMB


def select_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise McradError("deep.device is 'cuda' but torch sees no CUDA device. Fix: set deep.device: auto or cpu.")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def setup_determinism(seed: int, threads: int) -> None:
    """Seed every RNG and forbid non-deterministic kernels, so two CPU runs write identical bytes."""
    set_determinism(seed=seed)
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.set_num_threads(threads)


def tumour_crop(image: sitk.Image, roi: sitk.Image, crop_mm: float, voxels: int, fill: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """A cube of `crop_mm` edge centred on the ROI centroid, resampled to `voxels`^3 (z, y, x arrays).

    Parts outside the preprocessed image (cropped to the ROI plus a margin) are filled with `fill` (air).
    """
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(roi > 0, sitk.sitkUInt8))
    centroid = np.array(stats.GetCentroid(1))
    spacing = crop_mm / voxels
    direction = np.array(image.GetDirection()).reshape(3, 3)
    origin = centroid - direction @ np.full(3, (crop_mm - spacing) / 2)
    ref = sitk.Image([voxels] * 3, sitk.sitkFloat32)
    ref.SetSpacing([spacing] * 3)
    ref.SetOrigin(origin.tolist())
    ref.SetDirection(image.GetDirection())
    img = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), ref, sitk.Transform(), sitk.sitkLinear, fill)
    msk = sitk.GetArrayFromImage(sitk.Resample(roi, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    if not msk.any():  # a ROI thinner than the crop's voxels: keep every crop voxel it overlaps
        overlap = sitk.Resample(sitk.Cast(roi > 0, sitk.sitkFloat32), ref, sitk.Transform(), sitk.sitkLinear, 0)
        msk = sitk.GetArrayFromImage(overlap) > 0
    return sitk.GetArrayFromImage(img), msk.astype(np.uint8)


def largest_slices(image: np.ndarray, roi: np.ndarray, k: int) -> np.ndarray:
    """The `k` axial slices with the most ROI voxels, in z order (ties: lower z first), as (k, y, x)."""
    area = roi.reshape(roi.shape[0], -1).sum(axis=1, dtype=np.int64)  # signed: it is negated below
    order = np.argsort(-area, kind="stable")[:k]
    return image[np.sort(order)]


class TumourCropd(MapTransform):
    """Reads `image` and `roi` paths (SimpleITK); puts the crop, (C, ...) float32, under `image` and the ROI crop
    (same layout) under `roi`."""

    def __init__(self, crop_mm: float, voxels: int, fill: float, slices_2d: int | None):
        super().__init__(keys=["image", "roi"])
        self.crop_mm, self.voxels, self.fill, self.slices_2d = crop_mm, voxels, fill, slices_2d

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        try:
            image, roi = sitk.ReadImage(str(d["image"])), sitk.ReadImage(str(d["roi"]))
        except RuntimeError as exc:
            raise CaseError(d["patient_id"], str(d["image"]), f"cannot read image or ROI ({exc})",
                            "rerun the preprocess and segment stages for this case") from None
        img, msk = tumour_crop(image, roi, self.crop_mm, self.voxels, self.fill)
        if not msk.any():
            raise CaseError(d["patient_id"], str(d["roi"]), "the tumour ROI is empty",
                            "check the mask of this case")
        if self.slices_2d:
            d["image"], d["roi"] = largest_slices(img, msk, self.slices_2d), largest_slices(msk, msk, self.slices_2d)
        else:
            d["image"], d["roi"] = img[None], msk[None]
        return d


def case_transforms(opts: dict, fill: float) -> Compose:
    """Deterministic crop + scaling: what CacheDataset / PersistentDataset compute once per case."""
    low, high = opts["intensity_window"]
    return Compose([
        TumourCropd(opts["crop_mm"], opts["crop_voxels"], fill,
                    opts["slices_2d"] if opts["network"] == "cnn2d" else None),
        ScaleIntensityRanged(keys="image", a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True),
        EnsureTyped(keys=["image", "roi"], dtype=torch.float32, track_meta=False),
    ])


def network_input(opts: dict) -> ConcatItemsd:
    """`input`: the image channel(s), then with deep.mask_channel the ROI crop, so the network sees the tumour's
    extent and shape directly instead of having to find its boundary in the intensities."""
    return ConcatItemsd(keys=["image", "roi"] if opts["mask_channel"] else ["image"], name="input", dim=0)


def input_channels(opts: dict) -> int:
    per_slice = 2 if opts["mask_channel"] else 1
    return per_slice * (opts["slices_2d"] if opts["network"] == "cnn2d" else 1)


def augmentation(opts: dict, seed: int) -> Compose:
    """Seeded training augmentation applied on top of the cached crops (identity when deep.augment is off).

    Only flips and in-plane quarter turns, which keep the tumour's size, shape and texture (the endpoint's signals),
    applied alike to image and ROI; the small intensity shift touches the image only.
    """
    steps: list = []
    if opts["augment"]:
        two_d = opts["network"] == "cnn2d"
        axes = [1] if two_d else [1, 2]  # left-right (x), front-back (y); never cranio-caudal
        steps = [RandFlipd(keys=["image", "roi"], prob=0.5, spatial_axis=a) for a in axes]
        steps.append(RandRotate90d(keys=["image", "roi"], prob=0.5, spatial_axes=(0, 1) if two_d else (1, 2)))
        steps.append(RandShiftIntensityd(keys="image", offsets=0.05, prob=0.5))
    return Compose([*steps, network_input(opts)]).set_random_state(seed=seed)


class DeepNet(nn.Module):
    """A MONAI backbone ending in an `embedding_size` layer (the deep features) and a logistic head."""

    def __init__(self, backbone: nn.Module, embedding_size: int):
        super().__init__()
        self.backbone = backbone
        self.act = nn.ReLU()
        self.head = nn.Linear(embedding_size, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))  # (B, 1) logits, the shape monai.visualize.GradCAM expects


def build_network(opts: dict) -> DeepNet:
    w, emb = opts["width"], opts["embedding_size"]
    if opts["network"] == "densenet3d":
        if opts["crop_voxels"] < 16:  # four halvings (stem, pool, two transitions) must leave a voxel
            raise McradError(f"deep.network densenet3d needs deep.crop_voxels >= 16, got {opts['crop_voxels']}. "
                             "Fix: raise crop_voxels or use resnet3d.")
        backbone: nn.Module = DenseNet(spatial_dims=3, in_channels=input_channels(opts), out_channels=emb,
                                       init_features=2 * w, growth_rate=w, block_config=(2, 2, 2))
    else:
        two_d = opts["network"] == "cnn2d"
        backbone = ResNet(block="basic", layers=[1, 1, 1, 1], block_inplanes=[w, 2 * w, 4 * w, 8 * w],
                          spatial_dims=2 if two_d else 3, n_input_channels=input_channels(opts),
                          num_classes=emb)
    return DeepNet(backbone, emb)


def gradcam_layer(opts: dict) -> str:
    return "backbone.features.denseblock3" if opts["network"] == "densenet3d" else "backbone.layer4"


def load_pretrained(net: nn.Module, path: str | None) -> list[str]:
    """Load matching tensors of a local state_dict; return the names left at their initial values."""
    if path is None:
        return []
    p = Path(path)
    if not p.is_file():
        raise McradError(f"deep.pretrained: {p} does not exist. Weights are never downloaded; "
                         "fix: point it at a local state_dict (.pt), or set it to null.")
    state = torch.load(p, map_location="cpu", weights_only=True)
    own = net.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise McradError(f"deep.pretrained: no tensor of {p} matches the {len(own)} of the configured network "
                         "(names and shapes). Fix: use weights saved from the same deep.network/width.")
    own.update(usable)
    net.load_state_dict(own)
    return sorted(set(own) - set(usable))


@dataclass
class Dataset:
    """Cached transformed cases; `items` keeps patient_id, centre and label order."""

    items: list[dict]
    train: Any
    plain: Any


def make_dataset(items: list[dict], opts: dict, fill: float, seed: int) -> Dataset:
    """Crops computed once (in memory, or on disk in deep.cache_dir); training reads them through augmentation."""
    tf = case_transforms(opts, fill)
    if opts["cache_dir"]:
        cached = PersistentDataset(items, tf, cache_dir=opts["cache_dir"])
    else:
        cached = CacheDataset(items, tf, cache_rate=1.0, num_workers=0, progress=False)
    return Dataset(items, MonaiDataset(cached, augmentation(opts, seed)), MonaiDataset(cached, network_input(opts)))


def _loader(ds: Any, idx: list[int], opts: dict, shuffle: bool, seed: int) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    # batch norm cannot train on a last batch of one case; it is dropped (another case each epoch, reshuffled)
    return DataLoader(torch.utils.data.Subset(ds, idx), batch_size=opts["batch_size"], shuffle=shuffle,
                      num_workers=0, generator=gen, drop_last=shuffle and len(idx) % opts["batch_size"] == 1)


def predict(net: DeepNet, ds: Dataset, idx: list[int], opts: dict, device: torch.device
            ) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and embeddings of the cases `idx` (in that order)."""
    net.eval()
    probs, embs = [], []
    with torch.no_grad():
        for batch in _loader(ds.plain, idx, opts, False, 0):
            e = net.embed(batch["input"].to(device))
            probs.append(torch.sigmoid(net.head(e))[:, 0].cpu().numpy())
            embs.append(e.cpu().numpy())
    return np.concatenate(probs).astype(np.float64), np.concatenate(embs).astype(np.float64)


def fit(ds: Dataset, train_idx: list[int], val_idx: list[int] | None, opts: dict, seed: int,
        device: torch.device, epochs: int | None = None) -> tuple[DeepNet, list[dict], int]:
    """Train on `train_idx`; with `val_idx`, stop early on validation loss and keep the best epoch's weights.

    Returns the network, one curve row per epoch and the best epoch (1-based).
    """
    torch.manual_seed(seed)
    net = build_network(opts)
    left = load_pretrained(net, opts["pretrained"])
    if opts["pretrained"]:
        print(f"deep: pretrained {opts['pretrained']}: {len(left)} tensor(s) kept their initial values: {left}")
    net.to(device)
    labels = torch.tensor([float(ds.items[i]["label"]) for i in range(len(ds.items))])
    optim = torch.optim.Adam(net.parameters(), lr=opts["learning_rate"], weight_decay=opts["weight_decay"])
    loss_fn = nn.BCEWithLogitsLoss()
    curve, best, best_epoch, best_state, waited = [], np.inf, 1, None, 0
    for epoch in range(1, (epochs or opts["epochs"]) + 1):
        net.train()
        total, n = 0.0, 0
        for batch in _loader(ds.train, train_idx, opts, True, seed + epoch):
            x = batch["input"].to(device)
            y = torch.as_tensor(batch["label"], dtype=torch.float32, device=device)
            optim.zero_grad()
            loss = loss_fn(net(x)[:, 0], y)
            loss.backward()
            optim.step()
            total, n = total + loss.item() * len(y), n + len(y)
        row = {"epoch": epoch, "train_loss": total / n, "val_loss": np.nan, "val_auc": np.nan}
        if val_idx:
            p, _ = predict(net, ds, val_idx, opts, device)
            y_val = labels[val_idx].numpy()
            row["val_loss"] = float(loss_fn(torch.logit(torch.tensor(p).clamp(1e-7, 1 - 1e-7)),
                                            torch.tensor(y_val, dtype=torch.float64)))
            row["val_auc"] = float(roc_auc_score(y_val, p)) if len(set(y_val)) == 2 else np.nan
            if row["val_loss"] < best - 1e-6:
                best, best_epoch, waited = row["val_loss"], epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                waited += 1
        curve.append(row)
        if val_idx and waited >= opts["patience"]:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    return net, curve, best_epoch if val_idx else len(curve)


def _split(labels: np.ndarray, idx: np.ndarray, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    tr, va = train_test_split(idx, test_size=fraction, stratify=labels[idx], random_state=seed)
    return sorted(int(i) for i in tr), sorted(int(i) for i in va)


def features_table(items: list[dict], probs: np.ndarray, embs: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame({"patient_id": [it["patient_id"] for it in items], "centre": [it["centre"] for it in items],
                       SCORE: probs})
    emb = pd.DataFrame(embs, columns=[f"{EMB}{i:03d}" for i in range(embs.shape[1])])
    return pd.concat([df, emb], axis=1)


def case_items(rows: pd.DataFrame, paths: Paths, roi: str = "tumour") -> list[dict]:
    """Inputs of the cases that came through segmentation, sorted by centre and patient (a stable order)."""
    ok = rows[rows["status"] == "ok"].sort_values(["centre", "patient_id"], kind="stable")
    return [{"patient_id": r.patient_id, "centre": r.centre,
             "image": str(paths.case(r.centre, r.patient_id).preprocess_image),
             "roi": str(paths.case(r.centre, r.patient_id).roi(roi))}
            for r in ok.itertuples()]


def attach_labels(items: list[dict], cohort: pd.DataFrame, column: str) -> tuple[list[dict], list[str]]:
    """Items with a 0/1 `label`; returns them and the ids without a label (left out of training, and logged)."""
    labels = dict(zip(cohort["patient_id"], pd.to_numeric(cohort[column], errors="coerce"), strict=True))
    kept, missing = [], []
    for it in items:
        y = labels.get(it["patient_id"])
        if y is None or np.isnan(y):
            missing.append(it["patient_id"])
        elif y not in (0, 1):
            raise CaseError(it["patient_id"], None, f"endpoint column {column!r} is {y}, not 0/1",
                            "fix the cohort sheet")
        else:
            kept.append({**it, "label": int(y)})
    return kept, missing


def train_endpoint(items: list[dict], opts: dict, seed: int, device: torch.device
                   ) -> tuple[DeepNet, pd.DataFrame, pd.DataFrame, dict]:
    """Out-of-fold deep scores by k-fold CV, then the final network on all training cases.

    Returns (final network, features table of the training cases, training curves, summary).
    """
    labels = np.array([it["label"] for it in items])
    counts = np.bincount(labels, minlength=2)
    need = opts["folds"] * 2
    if counts.min() < need:
        raise McradError(f"deep: the training centre(s) have {counts[1]} positive and {counts[0]} negative cases "
                         f"usable; {opts['folds']}-fold CV with a validation split needs >= {need} of each. "
                         "Fix: lower deep.folds, or switch the deep stage off (deep.activate: false).")
    ds = make_dataset(items, opts, _fill(opts), seed)
    oof = np.full(len(items), np.nan)
    curves, best_epochs = [], []
    folds = StratifiedKFold(opts["folds"], shuffle=True, random_state=seed)
    for k, (tr, te) in enumerate(folds.split(np.zeros(len(labels)), labels)):
        fit_idx, val_idx = _split(labels, tr, opts["validation_fraction"], seed + k)
        net, curve, best = fit(ds, fit_idx, val_idx, opts, seed + k, device)
        oof[te], _ = predict(net, ds, [int(i) for i in te], opts, device)
        curves += [{"fit": f"fold{k + 1}", **row} for row in curve]
        best_epochs.append(best)
    final_epochs = int(np.median(best_epochs))
    net, curve, _ = fit(ds, list(range(len(items))), None, opts, seed + opts["folds"], device, final_epochs)
    curves += [{"fit": "final", **row} for row in curve]
    _, embs = predict(net, ds, list(range(len(items))), opts, device)
    table = features_table(items, oof, embs)
    summary = {"n": len(items), "events": int(counts[1]), "best_epochs": best_epochs, "final_epochs": final_epochs,
               "oof_auc": float(roc_auc_score(labels, oof)), "device": str(device)}
    return net, table, pd.DataFrame(curves), summary


def _fill(opts: dict) -> float:
    return float(opts["fill_value"])


def croppable(items: list[dict], opts: dict) -> tuple[list[dict], list[dict]]:
    """(items whose crop can be made, items whose crop fails): the per-case error boundary of the deep stage. A
    failing case is logged with its traceback; its deep score and embedding are then empty (NaN), and the deep
    and fusion models leave it out of their metrics (listed in the predictions table with an empty score)."""
    tf, ok, failed = case_transforms(opts, _fill(opts)), [], []
    for it in items:
        try:
            tf(dict(it))
            ok.append(it)
        except Exception as exc:  # noqa: BLE001 - one case's crop, not the centre's job
            traceback.print_exception(exc, file=sys.stderr)
            print(f"mcrad: deep: patient {it['patient_id']} has no deep score ({type(exc).__name__}: {exc}); the deep "
                  "and fusion models leave it out of their metrics", file=sys.stderr)
            failed.append(it)
    return ok, failed


def no_deep_score(items: list[dict], opts: dict) -> pd.DataFrame:
    """Rows of the deep features table for cases whose crop failed: empty score and embedding."""
    return features_table(items, np.full(len(items), np.nan), np.full((len(items), opts["embedding_size"]), np.nan))


def score_items(net: DeepNet, items: list[dict], opts: dict, seed: int, device: torch.device) -> pd.DataFrame:
    """Deep scores and embeddings of the items, in their order; a case whose crop fails gets NaN."""
    usable, failed = croppable(items, opts)
    table = features_table([], np.zeros(0), np.zeros((0, opts["embedding_size"])))
    if usable:
        probs, embs = predict(net, make_dataset(usable, opts, _fill(opts), seed), list(range(len(usable))), opts,
                              device)
        table = features_table(usable, probs, embs)
    if failed:
        blank = no_deep_score(failed, opts)
        order = {it["patient_id"]: i for i, it in enumerate(items)}
        table = pd.concat([table, blank], ignore_index=True)
        table = table.sort_values("patient_id", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    return table


def save_network(net: DeepNet, opts: dict, summary: dict, network: Path, meta: Path) -> None:
    network.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, network)
    write_json({"options": opts, "summary": summary}, meta)


def load_network(network: Path, meta: Path, device: torch.device) -> tuple[DeepNet, dict]:
    options = json.loads(meta.read_text())["options"]
    net = build_network(options)
    net.load_state_dict(torch.load(network, map_location="cpu", weights_only=True))
    return net.to(device).eval(), options


def write_gradcam(net: DeepNet, items: list[dict], opts: dict, out_dir: Path, device: torch.device) -> list[Path]:
    """Grad-CAM (monai.visualize.GradCAM) of the deep score for the first cases; one PNG per case.

    3D: the axial slice through the crop centre; 2D: the middle of the largest slices.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from monai.visualize import GradCAM

    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = items[: opts["gradcam_cases"]]
    if not chosen:
        return []
    tf = Compose([case_transforms(opts, _fill(opts)), network_input(opts)])
    cam = GradCAM(nn_module=net, target_layers=gradcam_layer(opts))
    written = []
    for it in chosen:
        d = tf(dict(it))
        x = d["input"][None].to(device)
        heat = cam(x, class_idx=0)[0, 0].detach().cpu().numpy()
        with torch.no_grad():
            p = float(torch.sigmoid(net(x))[0, 0])
        img = d["image"].cpu().numpy()
        mid = img.shape[0] // 2 if opts["network"] == "cnn2d" else img.shape[1] // 2
        base = img[mid] if opts["network"] == "cnn2d" else img[0, mid]
        over = heat if opts["network"] == "cnn2d" else heat[mid]
        fig, ax = plt.subplots(figsize=(3, 3), dpi=80)
        ax.imshow(base, cmap="gray", vmin=0, vmax=1)
        ax.imshow(over, cmap="jet", alpha=0.4)
        ax.set_title(f"{it['patient_id']}  p={p:.2f}", fontsize=8)
        ax.axis("off")
        path = out_dir / f"{it['patient_id']}.png"
        fig.savefig(path, metadata={"Software": None})
        plt.close(fig)
        written.append(path)
    return written


def _stage_options(opts: dict, preprocess: dict) -> dict:
    # crops reaching outside the preprocessed image are filled with its lowest intensity (air)
    return {**opts, "fill_value": float(preprocess["intensity_clip"][0])}


def train_stage(opts: dict, preprocess: dict, seed: int, threads: int | None, column: str, shard_files: list[Path],
                cohort_files: list[Path], paths: Paths, centres: list[str], endpoint: str) -> None:
    """`mcrad deep-train`: out-of-fold deep scores of the training centre(s), the final network, its training
    curves and Grad-CAM pictures (deep/<endpoint>/)."""
    opts = _stage_options(opts, preprocess)
    setup_determinism(seed, threads or opts["threads"])
    device = select_device(opts["device"])
    items, missing = attach_labels(case_items(read_shards(shard_files), paths), read_tables(cohort_files), column)
    if missing:
        print(f"deep: {len(missing)} case(s) without a {column} label left out of training: {missing}")
    items, failed = croppable(items, opts)
    net, table, curves, summary = train_endpoint(items, opts, seed, device)
    if failed:  # listed with an empty deep score: the fusion models leave them out of training
        table = pd.concat([table, no_deep_score(failed, opts)], ignore_index=True)
    print(f"deep: {summary}")
    save_network(net, opts, summary, paths.deep_network(endpoint), paths.deep_network_meta(endpoint))
    write_table(curves, paths.deep_curves(endpoint))
    for centre in centres:
        write_table(table[table["centre"] == centre], paths.deep_features(endpoint, centre))
        write_gradcam(net, [it for it in items if it["centre"] == centre], opts, paths.deep_gradcam(endpoint, centre),
                      device)


def score_stage(opts: dict, seed: int, threads: int | None, shard_files: list[Path], paths: Paths, endpoint: str,
                centre: str) -> None:
    """`mcrad deep-score`: one centre scored by the final network, with its Grad-CAM pictures."""
    device = select_device(opts["device"])
    net, opts = load_network(paths.deep_network(endpoint), paths.deep_network_meta(endpoint), device)
    setup_determinism(seed, threads or opts["threads"])
    items = case_items(read_shards(shard_files), paths)
    write_table(score_items(net, items, opts, seed, device), paths.deep_features(endpoint, centre))
    write_gradcam(net, items, opts, paths.deep_gradcam(endpoint, centre), device)
