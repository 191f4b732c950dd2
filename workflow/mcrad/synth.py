"""A synthetic multicentre HNSCC cohort with known ground truth, made deterministically from a seed.

Each patient has latent tumour properties (size, intensity heterogeneity, necrosis, irregularity, and the spatial
grain of its texture) that drive the imaging and, with independent clinical factors, the endpoints. The grain is
the part of the signal that only spatial texture carries: it sets the texture's correlation length while the
intensity histogram after the scanner's blur stays the same, so a control that keeps each ROI's histogram and
shape (shuffled or resampled voxels, a relocated ROI) cannot see it. The endpoints weigh it most, as a study whose
radiomic signal is real texture rather than size would. Centres differ as scanners do (voxel
spacing, slice thickness, reconstruction blur, noise, HU offset). Every centre and patient has its own
random stream, so adding or removing a centre never changes the others.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage, stats
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from mcrad.cohort import centre_sizes, patient_id

GENERATOR_VERSION = 3
SMOKING = ("never", "former", "current")
LATENTS = ("z_size", "z_het", "z_nec", "z_irr", "z_grain")

# Endpoint model (log-odds of nodal metastasis) on standardised latents. Clinical factors are independent
# of the imaging latents, so ranking by the imaging part is the best any image-only model can do.
NODAL_INTERCEPT = -0.4
NODAL_IMAGING = {"z_grain": 2.4, "z_size": 0.3, "z_het": 0.3}
NODAL_CLINICAL = {"hpv_positive": 0.8, "smoking_current": 0.5, "age_per_decade": 0.2}
# Histological grade (G1/G2/G3), ordinal: a latent driven by texture grain and necrosis plus noise, cut at fixed
# points (about 34% / 36% / 30% of patients).
GRADE_CLASSES = ("G1", "G2", "G3")
GRADE_IMAGING = {"z_grain": 1.5, "z_nec": 0.3}
GRADE_NOISE = 0.8
GRADE_CUTS = (-0.70, 0.90)


@dataclass(frozen=True)
class Scanner:
    spacing_xy: float
    slice_mm: float
    blur_mm: float
    noise_hu: float
    hu_offset: float


def scanner_for(seed: int, k: int) -> Scanner:
    rng = np.random.default_rng([seed, 1, k])
    return Scanner(
        spacing_xy=round(float(rng.uniform(0.7, 1.2)), 3),
        slice_mm=round(float(rng.choice([1.5, 2.0, 2.5, 3.0])), 3),
        blur_mm=round(float(rng.uniform(0.4, 1.3)), 3),
        noise_hu=round(float(rng.uniform(6.0, 22.0)), 2),
        hu_offset=round(float(rng.uniform(-15.0, 15.0)), 2),
    )


def draw_patient(rng: np.random.Generator) -> dict:
    """Latent tumour properties and clinical factors of one patient (no image)."""
    z = {k: float(rng.standard_normal()) for k in LATENTS}
    age = float(np.clip(rng.normal(61.0, 9.0), 30, 90))
    hpv = bool(rng.random() < 0.45)
    smoking = SMOKING[int(rng.choice(3, p=[0.35, 0.35, 0.30]))]
    sex = "M" if rng.random() < 0.78 else "F"
    # T stage follows size with noise; it carries no information beyond the image and the noise.
    t_stage = int(np.clip(np.round(2.5 + 1.1 * z["z_size"] + 0.5 * rng.standard_normal()), 1, 4))
    eta_img = sum(w * z[k] for k, w in NODAL_IMAGING.items())
    eta_clin = (NODAL_CLINICAL["hpv_positive"] * hpv + NODAL_CLINICAL["smoking_current"] * (smoking == "current")
                + NODAL_CLINICAL["age_per_decade"] * (age - 60.0) / 10.0)
    eta = NODAL_INTERCEPT + eta_img + eta_clin
    p = float(expit(eta))
    nodal = int(rng.random() < p)
    # Overall survival: Weibull proportional hazards, uniform administrative censoring.
    lp = 1.1 * z["z_grain"] + 0.15 * z["z_size"] - 0.7 * hpv + 0.4 * (smoking == "current") \
        + 0.3 * (age - 60.0) / 10.0 + 0.5 * nodal
    t_event = (-np.log(rng.random()) / (0.012 * np.exp(lp))) ** (1 / 1.2)
    t_censor = rng.uniform(24.0, 84.0)
    return {
        **z, "age": round(age, 1), "sex": sex, "t_stage": t_stage, "hpv": "positive" if hpv else "negative",
        "smoking": smoking, "eta": eta, "eta_imaging": eta_img, "p_nodal": p, "nodal_metastasis": nodal,
        "os_months": round(float(min(t_event, t_censor)), 2), "os_event": int(t_event <= t_censor),
    }


def draw_grade(latent: dict, rng: np.random.Generator) -> str:
    """Grade of a patient from its latents, with noise from its own stream (so images and other outcomes do not
    move when the grade model changes)."""
    g = sum(w * latent[k] for k, w in GRADE_IMAGING.items()) + GRADE_NOISE * float(rng.standard_normal())
    return GRADE_CLASSES[int(np.searchsorted(GRADE_CUTS, g))]


def grade_probabilities(eta: np.ndarray) -> np.ndarray:
    """True class probabilities of G1, G2, G3 given the imaging part of the grade latent."""
    cdf = stats.norm.cdf((np.asarray(GRADE_CUTS)[None, :] - np.asarray(eta)[:, None]) / GRADE_NOISE)
    return np.column_stack([cdf[:, 0], cdf[:, 1] - cdf[:, 0], 1 - cdf[:, 1]])


def bayes_grade_auc(seed: int, n: int = 100_000) -> float:
    """Population macro one-vs-rest AUC of the true grade probabilities (no model can beat it on average)."""
    rng = np.random.default_rng([seed, 6])
    z = rng.standard_normal((n, len(GRADE_IMAGING)))
    eta = z @ np.array(list(GRADE_IMAGING.values()))
    y = np.searchsorted(GRADE_CUTS, eta + GRADE_NOISE * rng.standard_normal(n))
    return float(roc_auc_score(y, grade_probabilities(eta), multi_class="ovr"))


def bayes_aucs(seed: int, n: int = 200_000) -> dict[str, float]:
    """Population AUC of the true risk (all factors) and of its imaging part (best image-only model)."""
    rng = np.random.default_rng([seed, 3])
    z = rng.standard_normal((n, len(NODAL_IMAGING)))
    eta_img = z @ np.array(list(NODAL_IMAGING.values()))
    age = np.clip(rng.normal(61.0, 9.0, n), 30, 90)
    hpv = rng.random(n) < 0.45
    current = rng.choice(3, size=n, p=[0.35, 0.35, 0.30]) == 2
    eta = NODAL_INTERCEPT + eta_img + NODAL_CLINICAL["hpv_positive"] * hpv \
        + NODAL_CLINICAL["smoking_current"] * current + NODAL_CLINICAL["age_per_decade"] * (age - 60) / 10
    y = rng.random(n) < expit(eta)
    return {"bayes_auc": float(roc_auc_score(y, eta)), "bayes_auc_imaging": float(roc_auc_score(y, eta_img))}


def _unit_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: tuple[float, ...]) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox, mode="wrap")
    return field / field.std()


def render_case(latent: dict, scanner: Scanner, fov_mm: float, rng: np.random.Generator
                ) -> tuple[sitk.Image, sitk.Image]:
    """CT-like volume (HU, int16) and tumour mask on the centre's grid; arrays are indexed z, y, x."""
    sp = np.array([scanner.slice_mm, scanner.spacing_xy, scanner.spacing_xy])  # z, y, x
    shape = tuple(int(np.ceil(fov_mm / s)) for s in sp)
    shift = rng.uniform(-4.0, 4.0, 3)  # tumour position within the field of view (mm)
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, sp, strict=True)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    tz, ty, tx = zz - shift[0], yy - shift[1], xx - shift[2]

    # Neck anatomy around the tumour: fat background, muscle bands, airway, vertebral body, skin edge.
    img = np.full(shape, -90.0)
    img[((xx + 6) / 30) ** 2 + ((yy - 2) / 12) ** 2 < 1] = 45.0
    img[((xx - 20) / 10) ** 2 + ((yy + 18) / 18) ** 2 < 1] = 50.0
    img[(xx + 22) ** 2 + (yy - 14) ** 2 < 7.0 ** 2] = -1000.0
    vert = (xx - 2) ** 2 + (yy - 30) ** 2
    img[vert < 12.0 ** 2] = 700.0
    img[vert < 9.0 ** 2] = 250.0
    img[(xx / 70) ** 2 + ((yy + 8) / 44) ** 2 > 1] = -1000.0

    # Tumour: an irregular ellipsoid whose radius follows size, with a necrotic core and textured rim.
    radius = 11.0 * np.exp(0.25 * latent["z_size"])
    r = np.sqrt(tx ** 2 + ty ** 2 + tz ** 2) + 1e-9
    theta, phi = np.arccos(tz / r), np.arctan2(ty, tx)
    phases = rng.uniform(0, 2 * np.pi, 3)
    bumps = (np.sin(3 * phi + phases[0]) * np.sin(2 * theta + phases[1]) + 0.6 * np.cos(5 * phi + phases[2]))
    amplitude = 0.09 * np.exp(0.5 * latent["z_irr"])
    rel = r / (radius * (1 + amplitude * bumps) * np.array([1.0, 0.9, 1.15]).mean())
    tumour = rel < 1.0
    # The scanner's reconstruction blur, applied to the anatomy here and to the tumour's texture before it is placed.
    blur = tuple(scanner.blur_mm / s for s in sp)
    het_sd = 32.0 * np.exp(0.25 * latent["z_het"])
    core_frac = 0.65 * expit(1.4 * latent["z_nec"] - 0.3)
    necrotic = rel < core_frac
    img[tumour] = 60.0
    img[necrotic] = 18.0
    img = ndimage.gaussian_filter(img, blur)
    # Texture grain: the in-plane correlation length follows the grain latent (through-plane it is fixed, so slice
    # thickness and interpolation cannot turn grain into histogram). The blurred texture is then mapped, by rank,
    # onto fixed normal quantiles within the viable rim and within the necrotic core, so each region's histogram
    # is the same for every grain: only the spatial arrangement of the values carries it.
    grain_mm = 2.4 * np.exp(0.6 * latent["z_grain"])
    texture = ndimage.gaussian_filter(_unit_noise(rng, shape, (3.0 / sp[0], grain_mm / sp[1], grain_mm / sp[2])), blur)
    for region, scale in ((tumour & ~necrotic, 1.0), (necrotic, 0.5)):
        if region.any():
            ranks = stats.rankdata(texture[region], method="ordinal")
            img[region] += scale * het_sd * stats.norm.ppf((ranks - 0.5) / ranks.size)

    # Scanner: correlated noise, calibration offset.
    img += scanner.noise_hu * _unit_noise(rng, shape, (0.35 / sp[0] * sp[2], 0.6, 0.6))
    img += scanner.hu_offset

    def to_image(arr: np.ndarray, pixel_type: int) -> sitk.Image:
        im = sitk.GetImageFromArray(arr)
        im = sitk.Cast(im, pixel_type)
        im.SetSpacing(tuple(float(s) for s in sp[::-1]))
        im.SetOrigin(tuple(float(a[0]) for a in axes[::-1]))
        return im

    ct = to_image(np.clip(np.round(img), -1024, 3071).astype(np.int16), sitk.sitkInt16)
    mask = to_image(tumour.astype(np.uint8), sitk.sitkUInt8)
    return ct, mask


def make_cohort(opts: dict, seed: int, out_dir: str | Path) -> pd.DataFrame:
    """Write images, masks, cohort.tsv, ground_truth.tsv and ground_truth.json; return the cohort sheet."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    sheet, truth, scanners = [], [], {}
    for k, (centre, n_patients) in enumerate(centre_sizes(opts).items()):
        scanner = scanner_for(seed, k)
        scanners[centre] = asdict(scanner)
        for i in range(n_patients):
            pid = patient_id(centre, i)
            rng = np.random.default_rng([seed, 2, k, i])
            latent = draw_patient(rng)
            grade = draw_grade(latent, np.random.default_rng([seed, 5, k, i]))
            ct, mask = render_case(latent, scanner, opts["field_of_view_mm"], rng)
            image_rel, mask_rel = f"images/{pid}_ct.nii.gz", f"images/{pid}_gtv.nii.gz"
            sitk.WriteImage(ct, str(out / image_rel), useCompression=True)
            sitk.WriteImage(mask, str(out / mask_rel), useCompression=True)
            sheet.append({"patient_id": pid, "centre": centre, "image": image_rel, "mask": mask_rel,
                          **{c: latent[c] for c in ("age", "sex", "t_stage", "hpv", "smoking",
                                                    "nodal_metastasis", "os_months", "os_event")}, "grade": grade})
            truth.append({"patient_id": pid, "centre": centre,
                          **{c: round(latent[c], 6) for c in (*LATENTS, "eta", "eta_imaging", "p_nodal")}})
    sheet_df, truth_df = pd.DataFrame(sheet), pd.DataFrame(truth)
    sheet_df.to_csv(out / "cohort.tsv", sep="\t", index=False)
    truth_df.to_csv(out / "ground_truth.tsv", sep="\t", index=False)
    summary = {
        "generator_version": GENERATOR_VERSION, "seed": seed, "options": opts, "scanners": scanners,
        "endpoint_model": {"intercept": NODAL_INTERCEPT, "imaging": NODAL_IMAGING, "clinical": NODAL_CLINICAL},
        **bayes_aucs(seed), "bayes_grade_macro_auc": bayes_grade_auc(seed),
        "sample_oracle_auc": {c: float(roc_auc_score(g["nodal_metastasis"], truth_df.loc[g.index, "eta"]))
                              for c, g in sheet_df.groupby("centre") if g["nodal_metastasis"].nunique() == 2},
    }
    (out / "ground_truth.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return sheet_df
