"""The cohort sheet: read, validate (errors name row and column), split into shards and per-centre tables."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mcrad.endpoints import endpoints
from mcrad.errors import CohortError, ConfigError

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
PATH_COLUMNS = ("image", "mask")
SEQUENCE_COLUMN = re.compile(r"^(image|mask)_([A-Za-z0-9]+)$")
MAX_LISTED = 20


def sequences(cfg: dict) -> list[str]:
    """The image sequences of each case, reference first (cohort.sequences; checked by load_config), or [] for
    one image per case."""
    return list(cfg["cohort"]["sequences"])


def sequence_columns(seqs: list[str]) -> list[str]:
    """Sheet columns holding the non-reference sequences' images (required)."""
    return [f"image_{s}" for s in seqs[1:]]


def sequence_files(row: pd.Series, seqs: list[str]) -> dict[str, tuple[str, str]]:
    """Non-reference sequence -> (image cell, own-mask cell or '') of one sheet row."""
    return {s: (row[f"image_{s}"], row.get(f"mask_{s}", "")) for s in seqs[1:]}


def sequence_inputs(sheet_path: str | Path, cfg: dict) -> dict[str, list[str]]:
    """Patient -> the non-reference sequences' files named by the sheet (what the ingest rule depends on)."""
    seqs = sequences(cfg)
    if not seqs:
        return {}
    df = read_sheet(sheet_path)
    return {r["patient_id"]: [str(resolve_path(v, sheet_path)) for img, own in sequence_files(r, seqs).values()
                              for v in (img, own) if v] for _, r in df.iterrows()}


def read_sheet(path: str | Path) -> pd.DataFrame:
    """Read a TSV cohort sheet as strings; empty cells stay empty strings (never silently NaN)."""
    path = Path(path)
    if not path.is_file():
        raise CohortError(f"cohort sheet {path} does not exist. Fix: set cohort.sheet to an existing TSV file, "
                          "or null for the synthetic demo cohort.")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CohortError(f"cohort sheet {path} is not a readable TSV file ({exc}). Fix: save it as "
                          "tab-separated UTF-8 text with one header row.") from exc
    df.columns = [c.strip() for c in df.columns]
    return df


def labelled(cfg: dict) -> bool:
    """Whether the sheet must hold outcomes: always, except a site run from a kit that scores its centre without
    labels (no training and no external centre, only a prospective one: stage 3)."""
    return bool(cfg["design"]["train"] or cfg["design"]["external"])


def required_columns(cfg: dict) -> list[str]:
    outcomes = [col for ep in endpoints(cfg) for col in ep.outcome_columns] if labelled(cfg) else []
    return ["patient_id", "centre", *PATH_COLUMNS, *(c["name"] for c in cfg["cohort"]["clinical"]), *outcomes]


def _at(df: pd.DataFrame, i: int, col: str, msg: str) -> str:
    pid = df.at[i, "patient_id"] if "patient_id" in df.columns else "?"
    return f"line {i + 2} (patient {pid}), column '{col}': {msg}"


def _identity_problems(df: pd.DataFrame, cfg: dict) -> list[str]:
    """Patient ids and centres: valid, unique, and every centre with exactly the roles the design gives."""
    problems = [_at(df, i, "patient_id", f"{pid!r} is not a valid id (letters, digits, '.', '_', '-'; no spaces)")
                for i, pid in df["patient_id"].items() if not ID_PATTERN.match(pid)]
    for pid in df.loc[df["patient_id"].duplicated(), "patient_id"].unique():
        lines = [str(i + 2) for i in df.index[df["patient_id"] == pid]]
        problems.append(f"lines {', '.join(lines)}, column 'patient_id': {pid!r} appears more than once")
    problems += [_at(df, i, "centre", f"{c!r} is not a valid centre name (letters, digits, '.', '_', '-')")
                 for i, c in df["centre"].items() if not ID_PATTERN.match(c)]
    design = cfg["design"]
    roles = set(design["train"]) | set(design["external"]) | set(design.get("prospective", []))
    present = set(df["centre"])
    problems += [f"config design names centre {c!r}, which no row of the sheet has (centres in the sheet: "
                 f"{sorted(present)}). Fix: correct design.train/design.external or the 'centre' column"
                 for c in sorted(roles - present)]
    problems += [_at(df, i, "centre", f"centre {c!r} has no role in the design. Fix: add it to design.train or "
                                      "design.external, or remove its rows")
                 for i, c in df["centre"].items() if ID_PATTERN.match(c) and c not in roles]
    return problems


def recorded(df: pd.DataFrame, spec: dict) -> pd.Series:
    """A clinical column with its missing-value codes (cohort.clinical[].missing) as empty cells."""
    return df[spec["name"]].where(~df[spec["name"]].isin(spec["missing"]), "")


def _level_problems(df: pd.DataFrame, cfg: dict, spec: dict) -> list[str]:
    """A categorical value the locked models cannot score: outside the column's `levels`, or (without them) never
    seen in the training centre(s), whose levels the one-hot encoding was fitted on."""
    name, values = spec["name"], recorded(df, spec)
    if "levels" in spec:
        allowed, why = set(spec["levels"]), f"is not one of cohort.clinical levels {spec['levels']}"
        rows = df.index[(values != "") & ~values.isin(allowed)]
    else:
        training = df["centre"].isin(cfg["design"]["train"])
        allowed = set(values[training]) - {""}
        why = f"never occurs in the training centre(s), whose levels are {sorted(allowed)}"
        rows = df.index[~training & (values != "") & ~values.isin(allowed)]
    return [_at(df, i, name, f"level {df.at[i, name]!r} {why}. Fix: recode it to a training level, or list it in "
                             f"the column's `missing` codes if it means not recorded") for i in rows]


def _value_problems(df: pd.DataFrame, cfg: dict) -> list[str]:
    """Clinical numbers that are not numbers; categorical levels the models cannot score; labels each endpoint
    refuses."""
    problems = []
    for spec in cfg["cohort"]["clinical"]:
        values = recorded(df, spec)
        if spec["type"] in ("numeric", "ordinal"):
            numbers = pd.to_numeric(values.replace("", None), errors="coerce")
            problems += [_at(df, i, spec["name"], f"{df.at[i, spec['name']]!r} is not a number (missing-value "
                                                  "codes go in the column's `missing`)")
                         for i in df.index[numbers.isna() & (values != "")]]
        else:
            problems += _level_problems(df, cfg, spec)
    for ep in endpoints(cfg) if labelled(cfg) else []:
        problems += [_at(df, i, column, problem) for i, column, problem in ep.sheet_problems(df)]
    return problems


def _sequence_problems(df: pd.DataFrame, seqs: list[str]) -> list[str]:
    """Multi-sequence columns the config does not know would be silently ignored."""
    problems = []
    for col in df.columns:
        m = SEQUENCE_COLUMN.match(col)
        if seqs and m and m.group(2) not in seqs[1:]:
            why = (f"sequence {m.group(2)} is the reference, whose {m.group(1)} goes in column '{m.group(1)}'"
                   if m.group(2) == seqs[0] else f"sequence {m.group(2)!r} is not in cohort.sequences {seqs}")
            problems.append(f"column '{col}': {why}. Fix: rename or remove the column, or list the sequence")
    return problems


def _file_problems(df: pd.DataFrame, seqs: list[str], sheet_path: Path) -> list[str]:
    problems = []
    own_masks = [c for c in (f"mask_{s}" for s in seqs[1:]) if c in df.columns]
    for col in [*PATH_COLUMNS, *sequence_columns(seqs), *own_masks]:
        for i, rel in df[col].items():
            if rel == "" and col in own_masks:
                continue  # a sequence's own mask is optional (registration QC only)
            if rel == "":
                problems.append(_at(df, i, col, "empty path"))
            elif not resolve_path(rel, sheet_path).exists():
                problems.append(_at(df, i, col, f"file not found: {resolve_path(rel, sheet_path)}. Fix: correct "
                                                "the path (relative paths are read from the sheet's folder)"))
    return problems


def validate_sheet(df: pd.DataFrame, cfg: dict, sheet_path: str | Path, check_files: bool = True) -> None:
    """Raise one CohortError that lists every problem, each naming sheet line and column."""
    sheet_path = Path(sheet_path)
    seqs = sequences(cfg)
    missing = [c for c in required_columns(cfg) + sequence_columns(seqs) if c not in df.columns]
    if missing:
        raise CohortError(f"cohort sheet {sheet_path}: missing column(s) {missing}; the sheet has {list(df.columns)}. "
                          "Fix: add the column(s), or change cohort.clinical / endpoints / sequences in the config.")
    if df.empty:
        raise CohortError(f"cohort sheet {sheet_path} has no rows.")
    problems = _identity_problems(df, cfg) + _value_problems(df, cfg) + _sequence_problems(df, seqs)
    if check_files:
        problems += _file_problems(df, seqs, sheet_path)
    if problems:
        shown = problems[:MAX_LISTED]
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise CohortError(f"cohort sheet {sheet_path}: {len(problems)} problem(s):\n  - "
                          + "\n  - ".join(shown) + more)


def resolve_path(value: str, sheet_path: str | Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(sheet_path).resolve().parent / p


def load_sheet(path: str | Path, cfg: dict, check_files: bool = True) -> pd.DataFrame:
    df = read_sheet(path)
    validate_sheet(df, cfg, path, check_files=check_files)
    return df


def make_shards(index: pd.DataFrame, shard_size: int) -> dict[str, list[str]]:
    """Batches of at most `shard_size` cases of one centre, in sheet order: {"C1.000": [ids...], ...}."""
    shards: dict[str, list[str]] = {}
    for centre, group in index.groupby("centre", sort=True):
        ids = list(group["patient_id"])
        for j in range(0, len(ids), shard_size):
            shards[f"{centre}.{j // shard_size:03d}"] = ids[j:j + shard_size]
    return shards


def predictors_table(df: pd.DataFrame, cfg: dict, centre: str) -> pd.DataFrame:
    """Label-free table of one centre: patient_id, centre and the cohort.clinical predictors, no outcome or other
    sheet column; what prediction and harmonisation read, so an outcome edit does not rerun them."""
    cols = ["patient_id", "centre", *(c["name"] for c in cfg["cohort"]["clinical"])]
    return with_missing(df, cfg).loc[df["centre"] == centre, cols].reset_index(drop=True)


def with_missing(df: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """The sheet with every clinical column's missing-value codes as empty cells (NaN for the models)."""
    return df.assign(**{spec["name"]: recorded(df, spec) for spec in cfg["cohort"]["clinical"]})


def centre_table(df: pd.DataFrame, cfg: dict, centre: str) -> pd.DataFrame:
    """Clinical and endpoint columns of one centre (no image paths): what model and validate rules read."""
    cols = ["patient_id", "centre", *(c["name"] for c in cfg["cohort"]["clinical"]),
            *(ep["column"] for ep in cfg["endpoints"] if labelled(cfg) or ep["column"] in df.columns)]
    paths = {*PATH_COLUMNS, *(f"{k}_{s}" for k in ("image", "mask") for s in sequences(cfg))}
    extra = [c for c in df.columns if c not in cols and c not in paths]
    return with_missing(df, cfg).loc[df["centre"] == centre, cols + extra].reset_index(drop=True)


def cohort_tables_stage(sheet: Path, cfg: dict, centres: list[str], out: list[str], predictors: list[str]) -> None:
    """`mcrad cohort-tables`: per-centre clinical tables (with outcomes) and label-free predictors tables."""
    from mcrad.files import write_table

    df = load_sheet(sheet, cfg)
    for centre, path in zip(centres, out, strict=True):
        write_table(centre_table(df, cfg, centre), path)
    for centre, path in zip(centres if predictors else [], predictors, strict=True):
        write_table(predictors_table(df, cfg, centre), path)


def check_study(config_file: Path) -> str:
    """`mcrad check`: validate a config file and its cohort sheet; what a user reads when both are fine."""
    from mcrad.config import load_config_file
    from mcrad.discover import with_discovered_sheet

    cfg = with_discovered_sheet(load_config_file(config_file))  # cohort.discover: checked like any sheet
    if cfg["cohort"]["sheet"] is None:
        return "config OK; cohort: synthetic demo cohort"
    df = load_sheet(cfg["cohort"]["sheet"], cfg)
    return f"config OK; cohort sheet OK: {len(df)} patients in {df['centre'].nunique()} centres"


# The synthetic cohort's case list lives here, not in mcrad.synth: planning needs it at every workflow parse (once
# per cluster job), and the generator's imports (scipy, scikit-learn, SimpleITK) cost seconds there.
def centre_names(n: int) -> list[str]:
    return [f"C{k + 1}" for k in range(n)]


def patient_id(centre: str, i: int) -> str:
    return f"{centre}-{i + 1:03d}"


def centre_sizes(opts: dict) -> dict[str, int]:
    """Patients per centre from `patients_per_centre` (one number for all, or one per centre)."""
    names, n = centre_names(opts["centres"]), opts["patients_per_centre"]
    if isinstance(n, int):
        return dict.fromkeys(names, n)
    if len(n) != len(names):
        raise ConfigError(f"cohort.synthetic.patients_per_centre lists {len(n)} sizes for {len(names)} centres. "
                          "Fix: give one number per centre, or a single number for all.")
    return dict(zip(names, n, strict=True))


def planned_cases(opts: dict) -> pd.DataFrame:
    """patient_id and centre of every case the generator will make, without making it."""
    rows = [(patient_id(c, i), c) for c, n in centre_sizes(opts).items() for i in range(n)]
    return pd.DataFrame(rows, columns=["patient_id", "centre"])
