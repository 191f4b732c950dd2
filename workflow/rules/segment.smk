# Segment: tumour and peritumoral ROIs for each case of a shard; see workflow/mcrad/segment.py.


rule segment:
    input:
        PATHS.shard_table("preprocess", "{shard}"),
    output:
        PATHS.shard_table("segment", "{shard}"),
    params:
        code=code_hash("segment", "cases"),
        opts=options(CFG, "segment"),
        root=ROOT,
    group:
        "cases"
    log:
        PATHS.log("segment/{shard}"),
    benchmark:
        PATHS.root / "benchmarks" / "segment" / "{shard}.tsv"
    shell:
        "{MCRAD} segment --shard {input:q} --options {params.opts:q} --root {params.root:q} {STRICT}"
        " --out {output:q} > {log:q} 2>&1"


# Auto-segmentation (deep.autoseg): a MONAI UNet learns the training centre's provided masks, then predicts a mask
# for every case; Dice against the provided masks per centre goes to the report.
AUTOSEG = CFG["deep"]["autoseg"]["activate"]
AUTOSEG_DIR = PATHS.autoseg_dice.parent / "autoseg"
AUTOSEG_RESOURCES = {"mem_mb": CFG["deep"]["mem_mb"], "gpu": 0 if CFG["deep"]["device"] == "cpu" else 1}
AUTOSEG_OUTPUTS = [PATHS.autoseg_dice] if AUTOSEG else []
# deep.autoseg.use_for_features: the other centres' features come from the auto ROIs, which autoseg_predict writes
# for a whole centre; its Dice table is what a features shard waits for. Training centres keep the provided masks.
AUTOSEG_FOR_FEATURES = CFG["deep"]["autoseg"]["use_for_features"]
if AUTOSEG_FOR_FEATURES and not AUTOSEG:
    raise WorkflowError("mcrad: deep.autoseg.use_for_features is true but deep.autoseg.activate is false. "
                        "Fix: set deep.autoseg.activate: true, or use_for_features: false.")


def autoseg_for_features(shard):
    """The auto-segmentation output the features of `shard` need: none when off or for a training centre."""
    centre = next(c for c in PLAN.centres if shard in PLAN.shards_of(c))
    return [AUTOSEG_DIR / f"dice_{centre}.tsv"] if AUTOSEG_FOR_FEATURES and centre not in PLAN.train else []


rule autoseg_train:
    input:
        [PATHS.shard_table("preprocess", s) for c in PLAN.train for s in PLAN.shards_of(c)],
    output:
        unet=AUTOSEG_DIR / "unet.pt",
        meta=AUTOSEG_DIR / "unet.json",
    params:
        code=code_hash("segment", "deep"),
        opts=options(CFG, "deep"),
        seed=CFG["study"]["seed"],
        root=ROOT,
        out_dir=AUTOSEG_DIR,
    threads: CFG["deep"]["threads"]
    resources:
        **AUTOSEG_RESOURCES,
    log:
        PATHS.log("autoseg_train"),
    shell:
        "{MCRAD} autoseg-train --options {params.opts:q} --seed {params.seed} --shards {input:q}"
        " --root {params.root:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule autoseg_predict:
    input:
        shards=lambda w: [PATHS.shard_table("preprocess", s) for s in PLAN.shards_of(w.centre)],
        unet=AUTOSEG_DIR / "unet.pt",
        meta=AUTOSEG_DIR / "unet.json",
    output:
        AUTOSEG_DIR / "dice_{centre}.tsv",
    params:
        code=code_hash("segment", "deep"),
        seed=CFG["study"]["seed"],
        root=ROOT,
        model_dir=AUTOSEG_DIR,
        segment=options(CFG, "segment"),
    threads: CFG["deep"]["threads"]
    resources:
        **AUTOSEG_RESOURCES,
    log:
        PATHS.log("autoseg_predict/{centre}"),
    shell:
        "{MCRAD} autoseg-predict --model-dir {params.model_dir:q} --seed {params.seed} --shards {input.shards:q}"
        " --segment-options {params.segment:q}"
        " --root {params.root:q} --out {output:q} > {log:q} 2>&1"


rule autoseg_dice:
    input:
        [AUTOSEG_DIR / f"dice_{c}.tsv" for c in PLAN.centres],
    output:
        PATHS.autoseg_dice,
    params:
        code=code_hash("segment"),
        train=PLAN.train,
        use="--use-for-features" if AUTOSEG_FOR_FEATURES else "",
    log:
        PATHS.log("autoseg_dice"),
    shell:
        "{MCRAD} autoseg-summary --inputs {input:q} --train {params.train:q} {params.use} --out {output:q}"
        " > {log:q} 2>&1"
