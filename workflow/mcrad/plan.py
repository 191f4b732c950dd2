"""Plan the DAG from a validated config: which cases, which shards, which centres play which stage, which
optional stages run, and the code each rule depends on.

Runs when Snakemake parses the workflow, so a bad cohort sheet stops the study before any job runs.
"""
from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from mcrad.cohort import load_sheet, make_shards, planned_cases, resolve_path, sequence_inputs
from mcrad.endpoints import Endpoint, endpoints
from mcrad.errors import ConfigError
from mcrad.paths import Paths

PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class StudyPlan:
    sheet: Path
    synthetic: bool
    index: pd.DataFrame            # patient_id, centre of every case
    shards: dict[str, list[str]]   # shard id -> patient ids
    train: list[str]
    external: list[str]
    prospective: list[str]         # held back: scored by the locked models, labels only later (stage 3)
    case_files: dict[str, list[str]]  # patient id -> image and mask paths, all sequences (empty for synthetic)
    endpoints: list[Endpoint]
    nyul: bool                     # MR Nyul standardisation: preprocess waits for a fit on the training centres
    deep: bool                     # the deep stage runs (deep.activate)
    autoseg: bool                  # auto-segmentation runs (deep.autoseg.activate)
    autoseg_features: bool         # non-training centres' features come from the auto masks

    @property
    def centres(self) -> list[str]:
        return self.train + self.external + self.prospective

    def shards_of(self, centre: str) -> list[str]:
        return [s for s in self.shards if s.rsplit(".", 1)[0] == centre]

    def centre_of(self, shard: str) -> str:
        return shard.rsplit(".", 1)[0]

    def endpoint(self, name: str) -> Endpoint:
        return next(ep for ep in self.endpoints if ep.name == name)

    def models_of(self, name: str) -> list[str]:
        """The endpoint's model registry: clinical, radiomics, nomogram, plus deep and fusion models when active."""
        return list(self.endpoint(name).model_names(self.deep))

    def fused(self, name: str) -> bool:
        """The endpoint has deep and fusion models (they need the deep stage's tables)."""
        return len(self.models_of(name)) > len(self.endpoint(name).model_names(False))

    @property
    def deep_endpoints(self) -> list[str]:
        return [ep.name for ep in self.endpoints if self.deep and ep.supports_deep]

    def autoseg_masks(self, shard: str) -> bool:
        """Whether the features of `shard` come from the auto-segmentation masks (never for a training centre)."""
        return self.autoseg_features and self.centre_of(shard) not in self.train


def plan_study(cfg: dict) -> StudyPlan:
    paths = Paths.from_config(cfg)
    design = cfg["design"]
    if cfg["cohort"]["sheet"] is None and cfg["cohort"]["discover"]:
        raise ConfigError("cohort.discover is set but discovery has not run. Fix: plan the study with prepare_study.")
    if cfg["cohort"]["sheet"] is None:
        index = planned_cases(cfg["cohort"]["synthetic"])
        present = set(index["centre"])
        unknown = [c for c in design["train"] + design["external"] + design["prospective"] if c not in present]
        if unknown:
            raise ConfigError(f"design names centre(s) {unknown}, but the synthetic cohort has centres "
                              f"{sorted(present)}. Fix: change design or cohort.synthetic.centres.")
        idle = sorted(present - set(design["train"]) - set(design["external"]) - set(design["prospective"]))
        if idle:
            raise ConfigError(f"synthetic centre(s) {idle} have no role in the design. Fix: add them to "
                              "design.external, or lower cohort.synthetic.centres.")
        sheet, case_files = paths.synth_sheet, {}
    else:
        sheet = Path(cfg["cohort"]["sheet"])
        df = load_sheet(sheet, cfg)
        index = df[["patient_id", "centre"]]
        sequences = sequence_inputs(sheet, cfg)
        case_files = {r.patient_id: [str(resolve_path(r.image, sheet)), str(resolve_path(r.mask, sheet)),
                                     *sequences.get(r.patient_id, [])] for r in df.itertuples()}
    pre, deep = cfg["preprocess"], cfg["deep"]
    autoseg = deep["autoseg"]
    if autoseg["use_for_features"] and not autoseg["activate"]:
        raise ConfigError("deep.autoseg.use_for_features is true but deep.autoseg.activate is false. "
                          "Fix: set deep.autoseg.activate: true, or use_for_features: false.")
    return StudyPlan(sheet=sheet, synthetic=cfg["cohort"]["sheet"] is None, index=index,
                     shards=make_shards(index, cfg["execution"]["shard_size"]), train=list(design["train"]),
                     external=list(design["external"]), prospective=list(design["prospective"]), case_files=case_files,
                     endpoints=endpoints(cfg), nyul=(pre["modality"], pre["mr_normalise"]) == ("MR", "nyul"),
                     deep=deep["activate"], autoseg=autoseg["activate"], autoseg_features=autoseg["use_for_features"])


def prepare_study(config: dict) -> tuple[dict, StudyPlan]:
    """The validated config and its plan. With cohort.discover, discovery first writes the study's cohort sheet
    from the DICOM trees (only what changed), and the plan reads that sheet."""
    from mcrad.config import load_config
    cfg = load_config(config)
    if cfg["cohort"]["discover"]:  # pydicom and the header index only for studies that discover
        from mcrad.discover import with_discovered_sheet

        cfg = with_discovered_sheet(cfg)
    return cfg, plan_study(cfg)


def options(cfg: dict, *sections: str) -> str:
    """The named config sections as compact JSON: what a rule passes to its `mcrad` step (and reruns on)."""
    return json.dumps({s: cfg[s] for s in sections} if len(sections) > 1 else cfg[sections[0]],
                      sort_keys=True, separators=(",", ":"))


@cache
def _module_file(name: str) -> Path | None:
    """The source file of an mcrad module (a package's __init__.py), or None when it is not one of ours."""
    if name != "mcrad" and not name.startswith("mcrad."):
        return None
    base = PACKAGE.joinpath(*name.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


@cache
def _imports(path: Path, top_only: bool) -> frozenset[str]:
    """The mcrad modules a source file imports: at module level, or (top_only=False) also inside functions.
    `from mcrad.x import y` counts mcrad.x and, when y is a module, mcrad.x.y."""
    tree = _tree(path)
    nodes = tree.body if top_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return frozenset(m for m in found if _module_file(m) is not None)


def _package(module: str) -> str:
    """The stage package (or module) a module belongs to: mcrad.model.train -> mcrad.model."""
    return ".".join(module.split(".")[:2])


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]  # importing a.b.c runs a and a.b first


@cache
def module_closure(command: str) -> frozenset[Path]:
    """Source files a `mcrad <command>` run can execute, read from the imports of the sources.

    Module-level imports are always followed (they run on import). Imports inside functions run only when the
    function is called, so they are followed from the command's CLI module and its own stage package
    (mcrad.<command>), and elsewhere only into stage packages the command already uses. So `ingest`, whose sheet
    check asks mcrad.endpoints to parse labels, does not depend on the model code an endpoint calls when it
    trains (a lazy import into mcrad.model), while `validate`, which uses mcrad.model, does."""
    entry = f"mcrad.cli.{command}"
    own = {entry, f"mcrad.{command}"}
    seen: set[str] = set()
    todo = _with_parents(entry) + _with_parents("mcrad.cli.__main__")
    while True:
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo += [p for m in _imports(_module_file(name), top_only=True) for p in _with_parents(m)]
        used = {_package(m) for m in seen}
        lazy = {p for name in seen if name == entry or not name.startswith("mcrad.cli.")  # other commands' not
                for m in _imports(_module_file(name), top_only=False) - _imports(_module_file(name), top_only=True)
                if name in own or _package(name) in own or _package(m) in used
                for p in _with_parents(m)} - seen
        if not lazy:
            return frozenset(_module_file(name) for name in seen)
        todo = sorted(lazy)


@cache
def code_hash(command: str) -> str:
    """sha256 of the code a rule runs: the CLI module of its `mcrad` subcommand (mcrad.cli.<command>) and every
    mcrad module it imports, found by reading their imports. Passed to a rule as a param so that Snakemake reruns
    the rule when that code changes, and only then."""
    h = hashlib.sha256()
    for f in sorted(module_closure(command)):
        h.update(str(f.relative_to(PACKAGE)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]
