"""Per patient: group the indexed files into series and structure objects, link each RTSTRUCT / SEG to the image
series it was drawn on, and choose the case (image series, mask, other sequences), or say why there is none.

Nothing is guessed: two candidates that the rules cannot tell apart exclude the patient, with the reason.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from mcrad.dicom import SLICE_GAP_TOL_MM

REASONS = ("no structure set", "no ROI matching", "structure set without its series", "ROI on another modality",
           "ambiguous series", "ambiguous structure set", "incomplete series", "missing sequence",
           "ambiguous sequence", "no clinical row")


@dataclass
class Series:
    uid: str
    study: str
    frame: str
    modality: str
    description: str
    protocol: str
    image_type: str
    files: list[str] = field(default_factory=list)
    sops: set[str] = field(default_factory=set)
    positions: list[list[float]] = field(default_factory=list)
    orientations: list[list[float]] = field(default_factory=list)
    duplicates: int = 0
    frames_ok: bool = False  # a multi-frame file: one file holds the volume

    @property
    def label(self) -> str:
        text = self.description or self.protocol or "no description"
        return f"{self.modality} '{text}' ({len(self.files)} files)"

    @property
    def localizer(self) -> bool:
        """A scout: typed LOCALIZER, or slices in more than one orientation (a three-plane localizer)."""
        if "LOCALIZER" in self.image_type.upper().split("\\"):
            return True
        return len({tuple(np.round(o, 3)) for o in self.orientations if len(o) == 6}) > 1

    def incomplete(self) -> str:
        """'' for a uniform 3D stack; else what is wrong (what ingest would refuse)."""
        if len(self.files) == 1:
            return "" if self.frames_ok else "a single slice, not a 3D volume"
        if any(len(p) != 3 for p in self.positions) or any(len(o) != 6 for o in self.orientations):
            return "slices without position or orientation"
        o = np.asarray(self.orientations[0])
        along = np.sort(np.asarray(self.positions) @ np.cross(o[:3], o[3:]))
        gaps = np.diff(along)
        if gaps.min() < SLICE_GAP_TOL_MM:
            return "two slices share one position"
        if gaps.max() - gaps.min() > SLICE_GAP_TOL_MM:
            return f"non-uniform slice spacing ({gaps.min():.2f} to {gaps.max():.2f} mm: missing slices?)"
        return ""


@dataclass
class Structure:
    path: str
    kind: str  # rtstruct | seg
    sop: str
    study: str
    rois: list[str]
    ref_series: list[str]
    ref_frames: list[str]
    ref_sops: list[str]
    when: str
    copies: list[str] = field(default_factory=list)  # other files holding the same SOP instance

    def nearest_copy(self, series: Series) -> str:
        """Of identical copies, the one sharing the longest folder path with its image series."""
        return max([self.path, *self.copies], key=lambda p: len(os.path.commonpath([p, series.files[0]])))


@dataclass
class Pairing:
    """One patient's outcome: the case's files when included, else the reason (one of REASONS) and details."""
    rois_seen: list[str]
    reason: str = ""
    detail: str = ""
    image: Series | None = None
    mask: str = ""
    mask_kind: str = ""
    sequences: dict[str, Series] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def included(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class PairingOptions:
    roi: str
    modality: str | None = None
    sequences: tuple[tuple[str, str], ...] = ()  # (name, regex); the first names the series the ROI is drawn on


def group(records: dict[str, dict]) -> dict[str, tuple[dict[str, Series], list[Structure]]]:
    """PatientID -> (image series by uid, structure objects), from one tree's index. Copies of one SOP instance
    (a duplicate file) count once."""
    out: dict[str, tuple[dict[str, Series], list[Structure]]] = {}
    seen_structures: dict[str, dict[str, Structure]] = {}
    for path in sorted(records):
        r = records[path]
        if r["kind"] not in ("image", "rtstruct", "seg"):
            continue  # RT plans, doses, reports...: nothing a case is made of
        series, structures = out.setdefault(r["patient"], ({}, []))
        if r["kind"] == "image":
            s = series.setdefault(r["series"], Series(r["series"], r["study"], r["frame"], r["modality"],
                                                      r["description"], r["protocol"], r["image_type"]))
            if r["sop"] in s.sops:
                s.duplicates += 1
                continue
            s.sops.add(r["sop"])
            s.files.append(path)
            s.positions.append(r["position"])
            s.orientations.append(r["orientation"])
            s.frames_ok = s.frames_ok or r["frames"] > 1
        elif r["kind"] in ("rtstruct", "seg"):
            sops = seen_structures.setdefault(r["patient"], {})
            if r["sop"] in sops:
                sops[r["sop"]].copies.append(path)
                continue
            sops[r["sop"]] = Structure(path, r["kind"], r["sop"], r["study"], r["rois"], r["ref_series"],
                                       r["ref_frames"], r["ref_sops"], r["when"])
            structures.append(sops[r["sop"]])
    return out


def _matches(pattern: str, name: str) -> bool:
    return re.fullmatch(pattern, name, flags=re.IGNORECASE) is not None


def _linked(st: Structure, candidates: dict[str, Series]) -> list[str]:
    """The image series a structure object was drawn on: its referenced series, else the series holding its
    referenced slices, else the series sharing its frame of reference."""
    if st.ref_series:
        return [u for u in st.ref_series if u in candidates]
    if st.ref_sops:
        return [u for u, s in candidates.items() if s.sops & set(st.ref_sops)]
    return [u for u, s in candidates.items() if s.frame and s.frame in st.ref_frames]


def _choose_structure(on: list[Structure], notes: list[str]) -> Structure | None:
    """The newest of several structure objects on one series (by StructureSet / Content date and time)."""
    if len(on) == 1:
        return on[0]
    ranked = sorted(on, key=lambda s: s.when, reverse=True)
    if not ranked[0].when or ranked[0].when == ranked[1].when:
        return None
    notes.append(f"{len(on) - 1} older structure set(s) on the same series ignored")
    return ranked[0]


def _describe(s: Series) -> str:
    return f"{s.modality} {s.description} {s.protocol}"


def _sequence(name: str, pattern: str, ref: Series, series: dict[str, Series], result: Pairing) -> bool:
    """Find sequence `name` of the reference's study; on failure set the exclusion and return False."""
    pool = [s for s in series.values() if s.uid != ref.uid and not s.localizer and s.study == ref.study]
    found = [s for s in pool if re.search(pattern, _describe(s), flags=re.IGNORECASE)]
    if len(found) > 1 and ref.frame:  # PET/CT: the PET of the CT's frame of reference
        same = [s for s in found if s.frame == ref.frame]
        found = same or found
    if len(found) != 1:
        result.reason = "missing sequence" if not found else "ambiguous sequence"
        result.detail = (f"{name}: {len(found)} series of the study match {pattern!r}"
                         + (f" ({'; '.join(s.label for s in found)})" if found else ""))
        return False
    problem = found[0].incomplete()
    if problem:
        result.reason, result.detail = "incomplete series", f"{name} {found[0].label}: {problem}"
        return False
    result.sequences[name] = found[0]
    return True


def _unlinked(series: dict[str, Series], matching: list[Structure], opts: PairingOptions) -> tuple[str, str]:
    """(reason, detail) when no structure set with a matching ROI is drawn on an image series of the asked
    modality: the series is there in another modality, or it is not in the tree."""
    scans = {u: s for u, s in series.items() if not s.localizer}
    drawn_on = sorted({u for st in matching for u in _linked(st, scans)})
    if drawn_on:
        labels = "; ".join(scans[u].label for u in drawn_on)
        return "ROI on another modality", (f"ROI {opts.roi!r} is drawn on {labels}, not on a {opts.modality} series "
                                           "(the modality asked for)")
    return "structure set without its series", (f"{len(matching)} structure set(s) with a matching ROI reference "
                                                "image series not in the tree (out of date, or the series was not "
                                                "exported)")


def pair(series: dict[str, Series], structures: list[Structure], opts: PairingOptions) -> Pairing:
    """The case of one patient, or the reason there is none."""
    result = Pairing(rois_seen=sorted({r for st in structures for r in st.rois}))
    if not structures:
        result.reason, result.detail = "no structure set", f"{len(series)} image series, no RTSTRUCT or SEG"
        return result
    matching = [st for st in structures if any(_matches(opts.roi, r) for r in st.rois)]
    if not matching:
        result.reason, result.detail = "no ROI matching", f"no ROI name matches {opts.roi!r}"
        return result
    images = {u: s for u, s in series.items() if not s.localizer
              and (opts.modality is None or s.modality == opts.modality)}
    links = {id(st): _linked(st, images) for st in matching}
    on_series: dict[str, list[Structure]] = {}
    for st in matching:
        for uid in links[id(st)]:
            on_series.setdefault(uid, []).append(st)
    if not on_series:
        result.reason, result.detail = _unlinked(series, matching, opts)
        return result
    if len(on_series) > 1:
        result.reason = "ambiguous series"
        result.detail = (f"ROI {opts.roi!r} is drawn on {len(on_series)} series ("
                         + "; ".join(images[u].label for u in sorted(on_series)) + "): keep one structure set, or "
                         "narrow --roi or --modality")
        return result
    uid, on = next(iter(on_series.items()))
    chosen = _choose_structure(on, result.notes)
    if chosen is None:
        result.reason = "ambiguous structure set"
        result.detail = f"{len(on)} structure sets with ROI {opts.roi!r} on one series, none newer than the others"
        return result
    orphans = [st for st in matching if not links[id(st)]]
    if orphans:
        result.notes.append(f"{len(orphans)} structure set(s) referencing a series not in the tree ignored")
    ref = images[uid]
    problem = ref.incomplete()
    if problem:
        result.reason, result.detail = "incomplete series", f"{ref.label}: {problem}"
        return result
    if ref.duplicates:
        result.notes.append(f"{ref.duplicates} duplicate slice file(s) ignored")
    if opts.sequences and not re.search(opts.sequences[0][1], _describe(ref), flags=re.IGNORECASE):
        result.reason = "missing sequence"
        result.detail = f"the ROI is drawn on {ref.label}, which does not match {opts.sequences[0][0]}"
        return result
    for name, pattern in opts.sequences[1:]:
        if not _sequence(name, pattern, ref, series, result):
            return result
    if chosen.copies:
        result.notes.append(f"{len(chosen.copies)} identical copy(ies) of the structure set ignored")
    result.image, result.mask, result.mask_kind = ref, chosen.nearest_copy(ref), chosen.kind
    return result
