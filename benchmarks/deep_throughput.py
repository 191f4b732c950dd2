"""Training throughput of the deep stage's network on each device, and the share of step time spent waiting for data.

Usage: .venv/bin/python benchmarks/deep_throughput.py --root results/demo --config CONFIG [--devices cuda cpu]
         [--epochs 3] [--repeat 8]
       .venv/bin/python benchmarks/deep_throughput.py --smoke
Reads the segmented training cases of a study that has run up to `segment`, caches their crops (CacheDataset, as
the deep stage does) and trains the configured network for a few epochs per device. `--repeat` lists each case
several times (with augmentation) so a GPU sees enough batches to show its rate. Prints one line per device:
samples/s, seconds per step, and the share of each step spent waiting for the data loader.
--smoke: no study needed; 8 synthetic segmented cases (written to a temporary folder as the segment stage
leaves them), a tiny network, one epoch on the CPU (the suite's size).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

from mcrad import deep  # noqa: E402
from mcrad.config import load_config  # noqa: E402
from mcrad.endpoints import endpoints  # noqa: E402
from mcrad.files import read_shards, read_tables, write_table  # noqa: E402
from mcrad.paths import Paths  # noqa: E402

SMOKE_CONFIG = {"study": {"name": "smoke"}, "cohort": {"sheet": None}, "design": {"train": ["C1"], "external": []},
                "endpoints": [{"name": "nodal_metastasis", "column": "nodal_metastasis"}],
                "deep": {"activate": True, "crop_voxels": 12, "width": 4, "embedding_size": 4, "batch_size": 4,
                         "threads": 2}}


def training_items(cfg: dict, root: Path) -> list[dict]:
    """The training cases of the first endpoint the deep stage runs for, with their labels."""
    paths = Paths(root)
    train = cfg["design"]["train"]
    pattern = paths.shard_table("segment", "*")
    rows = read_shards(sorted(pattern.parent.glob(pattern.name)))
    cohort = read_tables([paths.cohort_table(c) for c in train])
    column = next(ep.column for ep in endpoints(cfg) if ep.supports_deep)
    items, _ = deep.attach_labels(deep.case_items(rows[rows["centre"].isin(train)], paths), cohort, column)
    return items


def smoke_study(root: Path, n: int = 8) -> None:
    """What the segment stage leaves of `n` training cases of centre C1: preprocessed image, tumour ROI, shard
    and cohort tables (noisy 40^3 images at 1.5 mm, a sphere of radius 5-8 voxels; label = the larger half)."""
    paths = Paths(root)
    pids = [f"C1-{i + 1:03d}" for i in range(n)]
    z, y, x = np.indices((40, 40, 40))
    for i, pid in enumerate(pids):
        sphere = (z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= (5 + i % 4) ** 2
        arr = np.random.default_rng(i).normal(0, 15, sphere.shape) + np.where(sphere, 40.0, -60.0)
        case = paths.case("C1", pid)
        for array, path in ((arr.astype(np.float32), case.preprocess_image),
                            (sphere.astype(np.uint8), case.roi("tumour"))):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((1.5, 1.5, 1.5))
            path.parent.mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(image, str(path))
    rows = pd.DataFrame({"patient_id": pids, "centre": "C1"})
    write_table(rows.assign(status="ok", failed_stage="", message=""), paths.shard_table("segment", "C1.000"))
    write_table(rows.assign(nodal_metastasis=[int(i % 4 >= 2) for i in range(n)]), paths.cohort_table("C1"))


def measure(items: list[dict], opts: dict, device: torch.device, epochs: int, seed: int) -> dict:
    deep.setup_determinism(seed, opts["threads"])
    t0 = time.perf_counter()
    ds = deep.make_dataset(items, opts, opts["fill_value"], seed)
    cache_s = time.perf_counter() - t0
    net = deep.build_network(opts).to(device)
    optim = torch.optim.Adam(net.parameters(), lr=opts["learning_rate"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    wait = step = 0.0
    samples = 0
    for epoch in range(epochs + 1):  # epoch 0 warms up (CUDA context, cuDNN autotuning) and is not counted
        loader = deep._loader(ds.train, list(range(len(items))), opts, True, seed + epoch)
        it = iter(loader)
        while True:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            x = batch["input"].to(device, non_blocking=True)
            y = torch.as_tensor(batch["label"], dtype=torch.float32, device=device)
            t_data = time.perf_counter()
            optim.zero_grad()
            loss_fn(net(x)[:, 0], y).backward()
            optim.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            t_end = time.perf_counter()
            if epoch:
                wait, step, samples = wait + t_data - t, step + t_end - t_data, samples + len(y)
    return {"device": str(device), "samples": samples, "samples_per_s": samples / (wait + step),
            "data_wait_share": wait / (wait + step), "cache_s": cache_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", help="results/<study> of a study run up to segment")
    ap.add_argument("--config")
    ap.add_argument("--devices", nargs="+", default=["cuda", "cpu"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="synthetic cases, one CPU epoch (the suite's size)")
    args = ap.parse_args()
    if args.smoke:
        with tempfile.TemporaryDirectory() as tmp:
            smoke_study(Path(tmp))
            run(load_config(SMOKE_CONFIG), Path(tmp), ["cpu"], 1, 1)
    elif args.root and args.config:
        run(load_config(yaml.safe_load(Path(args.config).read_text())), Path(args.root), args.devices, args.epochs,
            args.repeat)
    else:
        ap.error("--root and --config are required (or --smoke)")


def run(cfg: dict, root: Path, devices: list[str], epochs: int, repeat: int) -> None:
    opts = {**cfg["deep"], "fill_value": float(cfg["preprocess"]["intensity_clip"][0])}
    items = training_items(cfg, root) * repeat
    print(f"deep throughput: {len(items)} training samples/epoch ({repeat}x repeat), network={opts['network']}"
          f" crop={opts['crop_voxels']}^3 width={opts['width']} batch={opts['batch_size']} epochs={epochs}")
    rates = {}
    for name in devices:
        if name == "cuda" and not torch.cuda.is_available():
            print("cuda: not available, skipped")
            continue
        r = measure(items, opts, deep.select_device(name), epochs, cfg["study"]["seed"])
        rates[name] = r["samples_per_s"]
        print(f"{r['device']}: {r['samples_per_s']:.1f} samples/s, data-wait share {r['data_wait_share']:.1%} of"
              f" step time, {r['samples']} samples timed, crop cache built in {r['cache_s']:.1f} s")
    if "cuda" in rates and "cpu" in rates:
        print(f"speed-up cuda/cpu: {rates['cuda'] / rates['cpu']:.1f}x")


if __name__ == "__main__":
    main()
