"""Features subcommands: features (a shard), gather, robustness, extract (one case), ibsi-report, ibsi-docs."""
from __future__ import annotations

from pathlib import Path

from mcrad.cli.common import add_root, json_arg, sequences_arg


def cmd_features(a) -> None:
    from mcrad.features.extract import features_shard
    from mcrad.files import read_shard, write_table

    write_table(features_shard(read_shard(a.shard), a.options, a.segment_options, a.root, a.strict, a.sequences,
                               a.auto_masks), Path(a.out))


def cmd_gather(a) -> None:
    from mcrad.features.extract import gather_stage

    gather_stage(a.shards, Path(a.out), Path(a.quarantine), Path(a.flags) if a.flags else None)


def cmd_robustness(a) -> None:
    from mcrad.features.robustness import robustness_stage

    robustness_stage(a.features, a.options, a.segment_options, a.root, a.seed, a.sequences, Path(a.out))


def cmd_extract(a) -> None:
    from mcrad.features.extract import extract_single

    extract_single(a.image, a.mask, a.params, a.prefix).to_csv(a.out, index=False)


def cmd_ibsi_report(a) -> None:
    from mcrad.features.ibsi import ibsi_report

    ibsi_report(a.image, a.mask, a.ibsi_config, a.reference).to_csv(a.out, sep="\t", index=False)


def cmd_ibsi_docs(a) -> None:
    from mcrad.features.ibsi_docs import ibsi_docs

    Path(a.out).write_text(ibsi_docs(Path(a.data)))


def register(sub) -> None:
    s = sub.add_parser("features", help="pyradiomics features of the cases of a shard")
    s.add_argument("--shard", required=True, help="the segment shard table")
    s.add_argument("--options", required=True, type=json_arg, help="JSON: the config's features section")
    s.add_argument("--segment-options", required=True, type=json_arg, help="JSON: the config's segment section")
    s.add_argument("--auto-masks", action="store_true", help="ROIs from the auto-segmentation UNet's masks")
    s.add_argument("--sequences", default="", type=sequences_arg, help="cohort.sequences, comma-separated")
    add_root(s)
    s.add_argument("--strict", action="store_true")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_features)

    s = sub.add_parser("gather", help="features of the cases that came through, and the quarantine list")
    s.add_argument("--shards", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--quarantine", required=True)
    s.add_argument("--flags", default=None, help="write the per-case feature-class QC flags (NaN reasons) here")
    s.set_defaults(func=cmd_gather)

    s = sub.add_parser("robustness", help="ICC(3,1) of each feature under ROI perturbations (training centre)")
    s.add_argument("--features", nargs="+", required=True, help="training centres' raw feature tables")
    s.add_argument("--options", required=True, type=json_arg, help="JSON: the config's features section")
    s.add_argument("--segment-options", required=True, type=json_arg)
    s.add_argument("--sequences", default="", type=sequences_arg, help="cohort.sequences, comma-separated")
    s.add_argument("--seed", type=int, required=True)
    add_root(s)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_robustness)

    s = sub.add_parser("extract", help="pyradiomics features of one image and mask (one-row CSV, plus qc_flags)")
    s.add_argument("--image", required=True)
    s.add_argument("--mask", required=True)
    s.add_argument("--params", required=True, help="pyradiomics parameter file (YAML)")
    s.add_argument("--prefix", default="CT_tumour", help="<sequence>_<roi> prefix of the feature names")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_extract)

    s = sub.add_parser("ibsi-report", help="IBSI 1 check of an image and mask through preprocess and features: "
                                           "one row per reference tag (tag, value, reference, tolerance, ok)")
    s.add_argument("--image", required=True)
    s.add_argument("--mask", required=True)
    s.add_argument("--ibsi-config", required=True, choices=["digital", "A", "B", "C", "D", "E"],
                   help="IBSI 1 configuration: config/ibsi/<name>.yaml (preprocess and features sections)")
    s.add_argument("--reference", default=None,
                   help="IBSI reference values (`reference value;tolerance;tag`); without: the computed tags only")
    s.add_argument("--out", required=True, help="TSV")
    s.set_defaults(func=cmd_ibsi_report)

    s = sub.add_parser("ibsi-docs", help="docs/ibsi_compliance.md: ibsi-report on both IBSI 1 phantoms, every "
                                         "configuration")
    s.add_argument("--data", default="../shared/data", help="folder holding ibsi1_digital_phantom, ibsi1_ct_phantom")
    s.add_argument("--out", default="docs/ibsi_compliance.md")
    s.set_defaults(func=cmd_ibsi_docs)
