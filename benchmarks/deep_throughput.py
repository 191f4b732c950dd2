"""Training throughput of the deep stage's network on each device, and the share of step time spent waiting for data.

Usage: .venv/bin/python benchmarks/deep_throughput.py --root results/demo --config CONFIG [--devices cuda cpu]
         [--epochs 3] [--repeat 8]
Reads the segmented training cases of a study that has run up to `segment`, caches their crops (CacheDataset, as
the deep stage does) and trains the configured network for a few epochs per device. `--repeat` lists each case
several times (with augmentation) so a GPU sees enough batches to show its rate. Prints one line per device:
samples/s, seconds per step, and the share of each step spent waiting for the data loader.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

from mcrad import deep  # noqa: E402
from mcrad.cases import read_shard  # noqa: E402
from mcrad.config import Paths, load_config  # noqa: E402


def training_items(cfg: dict, root: Path) -> list[dict]:
    paths = Paths(root)
    train = cfg["design"]["train"]
    shards = [read_shard(p) for p in sorted((root / "shards" / "segment").glob("*.tsv"))]
    rows = pd.concat(shards, ignore_index=True)
    cohort = pd.concat([pd.read_csv(paths.cohort_table(c), sep="\t", dtype={"patient_id": str}) for c in train])
    column = next(ep["column"] for ep in cfg["endpoints"] if ep["type"] == "binary")
    items, _ = deep.attach_labels(deep.case_items(rows[rows["centre"].isin(train)], paths), cohort, column)
    return items


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
    ap.add_argument("--root", required=True, help="results/<study> of a study run up to segment")
    ap.add_argument("--config", required=True)
    ap.add_argument("--devices", nargs="+", default=["cuda", "cpu"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    cfg = load_config(yaml.safe_load(Path(args.config).read_text()))
    opts = {**cfg["deep"], "fill_value": float(cfg["preprocess"]["intensity_clip"][0])}
    items = training_items(cfg, Path(args.root)) * args.repeat
    print(f"deep throughput: {len(items)} training samples/epoch ({args.repeat}x repeat), network={opts['network']}"
          f" crop={opts['crop_voxels']}^3 width={opts['width']} batch={opts['batch_size']} epochs={args.epochs}")
    rates = {}
    for name in args.devices:
        if name == "cuda" and not torch.cuda.is_available():
            print("cuda: not available, skipped")
            continue
        r = measure(items, opts, deep.select_device(name), args.epochs, cfg["study"]["seed"])
        rates[name] = r["samples_per_s"]
        print(f"{r['device']}: {r['samples_per_s']:.1f} samples/s, data-wait share {r['data_wait_share']:.1%} of"
              f" step time, {r['samples']} samples timed, crop cache built in {r['cache_s']:.1f} s")
    if "cuda" in rates and "cpu" in rates:
        print(f"speed-up cuda/cpu: {rates['cuda'] / rates['cpu']:.1f}x")


if __name__ == "__main__":
    main()
