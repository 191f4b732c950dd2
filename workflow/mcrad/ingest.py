"""Ingest: read each case's image (NIfTI, NRRD or a DICOM series folder) and mask (NIfTI, NRRD or an RTSTRUCT
rasterised on the image grid), check them, and write a canonical copy (image as read, a DICOM PET series in SUVbw;
binary uint8 mask), a QC row and a QC picture."""
from __future__ import annotations

import gzip
import re
import shutil
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
from matplotlib.figure import Figure

from mcrad import dicom, pet
from mcrad.cases import run_stage
from mcrad.cohort import load_sheet, resolve_path, sequence_files
from mcrad.errors import CaseError
from mcrad.files import STATUS_COLUMNS, file_sha256, read_table, read_tables, write_table
from mcrad.paths import CaseFiles, Paths

GEOMETRY_TOL_MM = 1e-3


def read_image(path: Path, patient_id: str, what: str) -> sitk.Image:
    """Read a NIfTI/NRRD file, or the single DICOM series in a folder."""
    if not path.exists():
        raise CaseError(patient_id, str(path), f"{what} file not found", "correct the path in the cohort sheet")
    if dicom.is_series(path):
        return dicom.read_series(path, patient_id).image
    check_compressed(path, patient_id, what)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reader error"
        raise CaseError(patient_id, str(path), f"{what} cannot be read ({first})",
                        "re-export the file as NIfTI (.nii.gz) or NRRD, or check that it is not truncated") from exc


def check_compressed(path: Path, patient_id: str, what: str) -> None:
    """A gzip file (.nii.gz) is decompressed to its end, which checks its length and CRC: a truncated or corrupt
    file is refused here, not later by the resampler of another stage (its header alone still reads)."""
    if not path.name.endswith(".gz"):
        return
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise CaseError(patient_id, str(path), f"{what} file is truncated or corrupt ({type(exc).__name__}: {exc})",
                        "copy or export the file again (an interrupted transfer?)") from exc


def check_image(image: sitk.Image, patient_id: str, image_path: Path) -> None:
    if image.GetDimension() != 3 or min(image.GetSize()) < 2:
        raise CaseError(patient_id, str(image_path), f"image is not a 3D volume (size {image.GetSize()})",
                        "provide the full 3D series, not a single slice or a 4D (dynamic, multi-volume) file")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise CaseError(patient_id, str(image_path), "image has several components per voxel (colour/vector)",
                        "provide a greyscale volume")
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    if not np.allclose(direction @ direction.T, np.eye(3), atol=1e-3):
        raise CaseError(patient_id, str(image_path), f"image direction {np.round(direction, 4).tolist()} is not "
                        "orthonormal (a sheared or corrupt header)", "export the image again from the scanner or PACS")


SPACING_RANGE_MM = (0.01, 50.0)  # beyond any CT, MR or PET reconstruction


def check_geometry(image: sitk.Image, patient_id: str, image_path: Path, max_extent_mm: float) -> list[str]:
    """Plausibility of the header before anything resamples the image; returns warnings for accepted oddities."""
    spacing = np.asarray(image.GetSpacing())
    extent = spacing * np.asarray(image.GetSize())
    if spacing.min() < SPACING_RANGE_MM[0] or spacing.max() > SPACING_RANGE_MM[1]:
        raise CaseError(patient_id, str(image_path), f"voxel spacing {tuple(round(float(s), 4) for s in spacing)} "
                        f"mm is outside {list(SPACING_RANGE_MM)} mm: no scanner makes it (a header in m or um?)",
                        "fix the spacing in the header (re-export the image)")
    if extent.max() > max_extent_mm:
        raise CaseError(patient_id, str(image_path), f"image extent {tuple(round(float(e)) for e in extent)} mm "
                        f"exceeds ingest.max_extent_mm = {max_extent_mm:g}",
                        "check the spacing in the header, or raise ingest.max_extent_mm for whole-body images")
    if np.linalg.det(np.asarray(image.GetDirection()).reshape(3, 3)) < 0:
        return ["image axes are left-handed (a flipped direction): resampled in physical space as given"]
    return []


def roi_mask(mask: sitk.Image, label: int | None) -> sitk.Image:
    """The binary ROI of a mask: every non-zero label, or only `label` (ingest.mask_label)."""
    roi = sitk.Cast((mask > 0) if label is None else (mask == label), sitk.sitkUInt8)
    roi.CopyInformation(mask)
    return roi


def check_finite(image: sitk.Image, patient_id: str, image_path: Path) -> None:
    arr = sitk.GetArrayViewFromImage(image)
    if not np.isfinite(arr).all():
        raise CaseError(patient_id, str(image_path), f"image has {int((~np.isfinite(arr)).sum())} NaN/inf voxels",
                        "re-export the image; mcrad does not guess missing intensities")


def check_pair(image: sitk.Image, mask: sitk.Image, patient_id: str, image_path: Path, mask_path: Path,
               mask_label: int | None = None) -> list[str]:
    """Raise CaseError for a pair that cannot be analysed; return warnings for one that can."""
    check_image(image, patient_id, image_path)
    if mask.GetDimension() != 3:
        raise CaseError(patient_id, str(mask_path), "mask is not 3D", "provide a 3D label volume")
    same = (mask.GetSize() == image.GetSize()
            and np.allclose(mask.GetSpacing(), image.GetSpacing(), atol=GEOMETRY_TOL_MM)
            and np.allclose(mask.GetOrigin(), image.GetOrigin(), atol=GEOMETRY_TOL_MM)
            and np.allclose(mask.GetDirection(), image.GetDirection(), atol=1e-4))
    if not same:
        raise CaseError(patient_id, str(mask_path),
                        f"mask is not on the image grid (mask size {mask.GetSize()}, spacing "
                        f"{tuple(round(s, 4) for s in mask.GetSpacing())}, origin "
                        f"{tuple(round(o, 3) for o in mask.GetOrigin())}; image size {image.GetSize()}, spacing "
                        f"{tuple(round(s, 4) for s in image.GetSpacing())}, origin "
                        f"{tuple(round(o, 3) for o in image.GetOrigin())})",
                        "export the mask on the grid of this image (same series)")
    check_finite(image, patient_id, image_path)
    values = sitk.GetArrayViewFromImage(mask)
    labels = np.unique(values[values > 0])  # the ROI is small: far faster than np.unique over the volume
    if not labels.size:
        raise CaseError(patient_id, str(mask_path), "mask is empty (no voxel > 0)",
                        "check that the right mask file is listed, or remove the case")
    if mask_label is not None:
        if mask_label not in labels:
            raise CaseError(patient_id, str(mask_path), f"mask has no voxel labelled {mask_label} (ingest.mask_label); "
                            f"its labels are {labels.tolist()}", "export the mask with that label, or change "
                            "ingest.mask_label")
        return [f"mask has labels {labels.tolist()}; label {mask_label} is the ROI"] if labels.size > 1 else []
    if labels.size > 1 or labels[0] != 1:
        return [f"mask has label(s) {labels.tolist()}; all non-zero labels form the ROI (ingest.mask_label picks one)"]
    return []


def _nifti_free_text(path: Path) -> bytes:
    """descrip, aux_file and intent_name of a .nii.gz header: the fields that can carry free text."""
    with gzip.open(path, "rb") as fh:
        header = fh.read(348)
    if int.from_bytes(header[:4], "little") != 348:  # NIfTI-2 or big-endian: treat as having free text
        return b"?"
    return (header[148:228] + header[228:252] + header[328:344]).strip(b"\x00 ")


def write_canonical(image: sitk.Image, source: Path, out: Path) -> None:
    """Write the canonical image. A .nii.gz source without header free text is copied byte for byte: the same
    image as re-encoding it, without 5 s of gzip for a 512x512x150 CT."""
    if source.name.endswith(".nii.gz") and not _nifti_free_text(source):
        shutil.copyfile(source, out)
    else:
        sitk.WriteImage(image, str(out), useCompression=True)


def rtstruct_masks(path: Path, image: sitk.Image, series: dicom.DicomSeries | None, patient_id: str, opts: dict
                   ) -> tuple[sitk.Image, dict[str, sitk.Image], list[str]]:
    """The analysed mask (ROIs matching `roi_pattern`, united) and the `extra_rois` masks of an RTSTRUCT, or of
    a DICOM-SEG (segments chosen by label the same way)."""
    if path.is_file() and str(dicom.read_header(path, patient_id).get("Modality", "")) == "SEG":
        return seg_masks(path, image, series, patient_id, opts)
    ds = dicom.read_rtstruct(path, patient_id)
    warnings = dicom.check_reference(ds, series, patient_id, path) if series else [
        "image is not DICOM; RTSTRUCT contours were placed by their coordinates only"]
    rois = dicom.select_rois(ds, opts["roi_pattern"], patient_id, path)
    if len(rois) > 1:
        warnings.append(f"ROIs {sorted(rois.values())} match roi_pattern and were united")
    extras = {}
    for name, pattern in sorted(opts["extra_rois"].items()):
        found = {n: r for n, r in dicom.roi_names(ds).items() if re.fullmatch(pattern, r, flags=re.IGNORECASE)}
        if found:
            extras[name] = dicom.rasterise(ds, found, image, patient_id, path)
        else:
            warnings.append(f"no ROI matches extra_rois.{name} ({pattern!r})")
    return dicom.rasterise(ds, rois, image, patient_id, path), extras, warnings


def seg_masks(path: Path, image: sitk.Image, series: dicom.DicomSeries | None, patient_id: str, opts: dict
              ) -> tuple[sitk.Image, dict[str, sitk.Image], list[str]]:
    from mcrad import dicomseg

    seg = dicomseg.read_seg(path, patient_id)
    chosen = dicomseg.select_segments(seg, opts["roi_pattern"], patient_id, path)
    warnings = [f"segments {sorted(chosen.values())} match roi_pattern and were united"] if len(chosen) > 1 else []
    extras = {}
    for name, pattern in sorted(opts["extra_rois"].items()):
        found = {n: r for n, r in dicomseg.segment_labels(seg).items() if re.fullmatch(pattern, r, flags=re.I)}
        if found:
            extras[name] = dicomseg.seg_mask(seg, found, series, image, patient_id, path)
        else:
            warnings.append(f"no segment matches extra_rois.{name} ({pattern!r})")
    return dicomseg.seg_mask(seg, chosen, series, image, patient_id, path), extras, warnings


def qc_picture(image: sitk.Image, mask: sitk.Image, out: Path) -> None:
    """Mask outline on the axial, coronal and sagittal slices through the ROI centroid (PNG, no metadata)."""
    arr, m = sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(mask)
    k, j, i = (int(round(float(c.mean()))) for c in np.nonzero(m))  # centroid voxel (z, y, x)
    sx, sy, sz = image.GetSpacing()
    views = [("axial", arr[k], m[k], sy / sx), ("coronal", arr[:, j, :], m[:, j, :], sz / sx),
             ("sagittal", arr[:, :, i], m[:, :, i], sz / sy)]
    fig = Figure(figsize=(9, 3.2))
    for ax, (title, plane, outline, aspect) in zip(fig.subplots(1, 3), views, strict=True):
        low, high = np.percentile(plane, [1, 99])
        origin = "upper" if title == "axial" else "lower"  # head up in coronal and sagittal views
        ax.imshow(plane, cmap="gray", vmin=low, vmax=high, aspect=aspect, origin=origin, interpolation="nearest")
        ax.contour(outline, levels=[0.5], colors="red", linewidths=0.8, origin=origin)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.savefig(out, dpi=70, bbox_inches="tight", metadata={"Software": None})


def ingest_sequence(pid: str, seq: str, image_cell: str, mask_cell: str, sheet_path: Path, case: CaseFiles,
                    opts: dict) -> tuple[str, list[str]]:
    """One non-reference sequence of a multi-sequence case: checked and written as ingest/image-<seq>.nii.gz, its
    own mask (if the sheet gives one; registration QC only) as ingest/seqmask-<seq>.nii.gz. Returns a geometry
    summary and warnings."""
    path = resolve_path(image_cell, sheet_path)
    series = dicom.read_series(path, pid) if dicom.is_series(path) else None
    image = series.image if series else read_image(path, pid, f"{seq} image")
    check_image(image, pid, path)
    image, pet_qc = pet.canonical_image(image, series, pid, path, opts["pet_suv"])
    warnings = check_geometry(image, pid, path, opts["max_extent_mm"]) + (list(series.warnings) if series else [])
    check_finite(image, pid, path)
    write_canonical(image, path, case.ingest_sequence(seq))
    if mask_cell:
        mask_path = resolve_path(mask_cell, sheet_path)
        if mask_path.is_file() and dicom.is_dicom(mask_path):
            mask, _, more = rtstruct_masks(mask_path, image, series, pid, {**opts, "extra_rois": {}})
        else:
            mask, more = read_image(mask_path, pid, f"{seq} mask"), []
        warnings += more + check_pair(image, mask, pid, path, mask_path, opts["mask_label"])
        sitk.WriteImage(roi_mask(mask, opts["mask_label"]), str(case.ingest_sequence_mask(seq)), useCompression=True)
    spacing = "x".join(f"{v:.4g}" for v in image.GetSpacing())
    suv = f", SUVbw = x {pet_qc['suv_scale']:.6g}" if pet_qc.get("suv_scale") else ""
    return (f"{seq} {'x'.join(map(str, image.GetSize()))} @ {spacing} mm{suv}",
            [f"{seq}: {w}" for w in warnings])


def ingest_case(row: pd.Series, sheet_path: Path, paths: Paths, opts: dict, sequences: list[str] = ()
                ) -> dict[str, Any]:
    pid = row["patient_id"]
    image_path, mask_path = resolve_path(row["image"], sheet_path), resolve_path(row["mask"], sheet_path)
    series = dicom.read_series(image_path, pid) if dicom.is_series(image_path) else None
    image = series.image if series else read_image(image_path, pid, "image")
    check_image(image, pid, image_path)
    image, pet_qc = pet.canonical_image(image, series, pid, image_path, opts["pet_suv"])
    geometry_warnings = check_geometry(image, pid, image_path, opts["max_extent_mm"])
    if mask_path.is_file() and dicom.is_dicom(mask_path):
        mask, extras, warnings = rtstruct_masks(mask_path, image, series, pid, opts)
    else:
        mask, extras, warnings = read_image(mask_path, pid, "mask"), {}, []
    warnings += (check_pair(image, mask, pid, image_path, mask_path, opts["mask_label"]) + geometry_warnings
                 + list(series.warnings if series else []))
    binary = roi_mask(mask, opts["mask_label"])
    binary.CopyInformation(image)
    case = paths.case(row["centre"], pid)
    case.ingest_dir.mkdir(parents=True, exist_ok=True)
    # Written from pixel data and geometry only: no DICOM header (and so no PHI) reaches the NIfTI files.
    write_canonical(image, image_path, case.ingest_image)
    sitk.WriteImage(binary, str(case.ingest_mask), useCompression=True)
    for name, extra in extras.items():
        sitk.WriteImage(extra, str(case.ingest_extra_mask(name)), useCompression=True)
    if opts["qc_png"]:
        qc_picture(image, binary, case.qc_picture)
    geometry = []
    for seq, (image_cell, mask_cell) in sequence_files(row, list(sequences)).items():
        summary, more = ingest_sequence(pid, seq, image_cell, mask_cell, sheet_path, case, opts)
        geometry.append(summary)
        warnings += more
    voxels = sitk.GetArrayViewFromImage(image)
    n_roi = int(np.count_nonzero(sitk.GetArrayViewFromImage(binary)))
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    tags = series.tags if series else dict.fromkeys(dicom.SAFE_TAGS.values(), "")
    return {
        "size": "x".join(map(str, image.GetSize())),
        "spacing_mm": "x".join(f"{s:.4g}" for s in image.GetSpacing()),
        "pixel_type": image.GetPixelIDTypeAsString(),
        "intensity_min": float(voxels.min()), "intensity_max": float(voxels.max()),
        "mask_voxels": n_roi, "mask_volume_ml": round(n_roi * voxel_ml, 4),
        **tags, **pet_qc,
        "extra_roi_voxels": "; ".join(f"{n}={int(np.count_nonzero(sitk.GetArrayViewFromImage(e)))}"
                                      for n, e in extras.items()),
        "warnings": "; ".join(warnings),
        "image_sha256": file_sha256(image_path), "mask_sha256": file_sha256(mask_path),
        **({"sequences": ",".join(sequences), "sequence_geometry": "; ".join(geometry)} if sequences else {}),
    }


def ingest_shard(sheet: pd.DataFrame, sheet_path: Path, patient_ids: list[str], paths: Paths, strict: bool,
                 opts: dict, sequences: list[str] = ()) -> pd.DataFrame:
    """`sequences` (cohort.sequences, reference first): the other sequences come from columns image_<SEQ> (and
    optional mask_<SEQ>) of the sheet."""
    rows = sheet.set_index("patient_id").loc[patient_ids].reset_index()
    columns = ["image", "mask", *(c for s in sequences[1:] for c in (f"image_{s}", f"mask_{s}") if c in rows)]
    rows = rows[["patient_id", "centre", *columns]].assign(status="ok", failed_stage="", message="")
    rows = rows[[*STATUS_COLUMNS, *columns]]

    def inputs(row: pd.Series) -> list[Path]:
        named = [("image", row["image"]), ("mask", row["mask"])]
        for seq, (image_cell, mask_cell) in sequence_files(row, list(sequences)).items():
            if image_cell == "":
                raise CaseError(row["patient_id"], None, f"no {seq} image (column image_{seq} is empty)",
                                f"fill in the {seq} file or DICOM folder in the cohort sheet")
            named += [(f"{seq} image", image_cell)] + ([(f"{seq} mask", mask_cell)] if mask_cell else [])
        files = [resolve_path(cell, sheet_path) for _, cell in named]
        for f, (what, _) in zip(files, named, strict=True):
            if not f.exists():
                raise CaseError(row["patient_id"], str(f), f"{what} file not found",
                                "correct the path in the cohort sheet")
        return files

    # the per-case cache key covers dicom.py, pet.py and the sequence list too
    key_opts = {**opts, "dicom_code": file_sha256(dicom.__file__), "pet_code": file_sha256(pet.__file__),
                **({"sequences": list(sequences)} if sequences else {})}
    return run_stage(rows, "ingest", lambda r: ingest_case(r, sheet_path, paths, opts, list(sequences)), inputs,
                     paths, __file__, key_opts, strict)


def dicom_to_nifti(series_dir: Path, rtstruct: Path | None, roi_pattern: str, out_image: Path,
                   out_mask: Path | None) -> list[str]:
    """One case outside a study (`mcrad dicom2nifti`): DICOM series (+ RTSTRUCT ROIs matching `roi_pattern`,
    united) to NIfTI, with the checks of the ingest stage. Returns the warnings."""
    who = "(dicom2nifti)"
    if not series_dir.is_dir():
        raise CaseError(who, str(series_dir), "series folder not found", "give the folder holding the DICOM slices")
    series = dicom.read_series(series_dir, who)
    check_image(series.image, who, series_dir)
    out_image.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(series.image, str(out_image), useCompression=True)
    if rtstruct is None or out_mask is None:
        return []
    mask, _, warnings = rtstruct_masks(rtstruct, series.image, series, who, {"roi_pattern": roi_pattern,
                                                                              "extra_rois": {}})
    warnings += check_pair(series.image, mask, who, series_dir, rtstruct)
    out_mask.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(mask, str(out_mask), useCompression=True)
    return warnings


def ingest_stage(sheet_path: Path, cfg: dict, patient_ids: list[str], paths: Paths, strict: bool, out: Path) -> None:
    """`mcrad ingest`: one shard. A missing file quarantines its case, not the study (files are not checked here)."""
    sheet = load_sheet(sheet_path, cfg, check_files=False)
    write_table(ingest_shard(sheet, Path(sheet_path), patient_ids, paths, strict, cfg["ingest"],
                             cfg["cohort"]["sequences"]), out)


def select_qc_pictures(qc: pd.DataFrame, per_centre: int = 3) -> pd.DataFrame:
    """The cases whose QC picture the report shows: per centre, cases with warnings first, then the smallest and
    the largest tumour (at most per_centre). Columns centre, patient_id, reason."""
    rows = []
    ok = qc[qc["status"] == "ok"]
    for centre, group in ok.groupby("centre", sort=True):
        warned = group[group["warnings"].notna()] if "warnings" in group else group.iloc[:0]
        by_size = group.sort_values("mask_volume_ml", kind="stable")
        picks = pd.concat([warned.assign(reason="warnings"), by_size.head(1).assign(reason="smallest tumour"),
                           by_size.tail(1).assign(reason="largest tumour")]).drop_duplicates("patient_id")
        rows += [{"centre": centre, "patient_id": r.patient_id, "reason": r.reason}
                 for r in picks.head(per_centre).itertuples()]
    return pd.DataFrame(rows, columns=["centre", "patient_id", "reason"])


def qc_pictures_stage(qc_file: Path, paths: Paths) -> None:
    """`mcrad qc-pictures`: copy the chosen cases' ingest QC pictures to qc/pictures/ with an index, so the report
    reads declared files only."""
    chosen = select_qc_pictures(read_table(qc_file))
    paths.qc_pictures.mkdir(parents=True, exist_ok=True)
    kept = []
    for r in chosen.itertuples():
        source = paths.case(r.centre, r.patient_id).qc_picture
        if source.is_file():  # ingest.qc_png may be off
            shutil.copyfile(source, paths.qc_picture_copy(r.centre, r.patient_id))
            kept.append(r.Index)
    write_table(chosen.loc[kept], paths.qc_pictures_index)


def flag_shared_images(qc: pd.DataFrame) -> pd.DataFrame:
    """The study's ingest QC table with a warning on every case whose image file (sha256) another case also lists:
    a copy-paste slip in the sheet, or a patient registered twice."""
    if "image_sha256" not in qc or qc.empty:
        return qc
    ok = qc[(qc["status"] == "ok") & qc["image_sha256"].notna()]
    owners = ok.groupby("image_sha256")["patient_id"].agg(list)
    shared = {pid: [o for o in owners[h] if o != pid] for pid, h in zip(ok["patient_id"], ok["image_sha256"],
                                                                          strict=True) if len(owners[h]) > 1}
    if not shared:
        return qc
    qc = qc.copy()
    qc["warnings"] = qc["warnings"].astype(object)
    for i in qc.index[qc["patient_id"].isin(list(shared))]:
        note = f"the same image file as patient(s) {shared[qc.at[i, 'patient_id']]}"
        previous = qc.at[i, "warnings"]
        qc.at[i, "warnings"] = f"{previous}; {note}" if isinstance(previous, str) and previous else note
    return qc


def qc_ingest_stage(shard_files: list[Path], out: Path) -> None:
    """`mcrad qc-ingest`: the study's ingest QC table from the shard tables, with study-level warnings."""
    qc = flag_shared_images(read_tables(shard_files))
    for r in qc[qc["warnings"].astype(str).str.contains("the same image file", na=False)].itertuples():
        print(f"mcrad: warning: patient {r.patient_id}: {r.warnings}")
    write_table(qc, out)
