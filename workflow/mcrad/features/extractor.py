"""pyradiomics' extractor with the IBSI 1 steps it does its own way, as options of the features stage:
re-segmentation by range and outliers combined in IBSI's order (features.resegment), IBSI's bin edges
(features.discretisation ibsi) and the IBSI features pyradiomics lacks (features.ibsi_extra). With the defaults
it is pyradiomics' extractor unchanged. Imported only where features are extracted (pyradiomics is heavy)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from radiomics import featureextractor, getFeatureClasses, imageoperations

from mcrad.errors import McradError
from mcrad.features.discretise import discretise, resegment_thresholds

DEFAULT_OPTIONS: dict[str, Any] = {"resegment": {"range": None, "outlier_sd": None},
                                   "discretisation": "pyradiomics", "ibsi_extra": {"activate": False}}


def _ibsi_binned(cls: type) -> type:
    """A pyradiomics feature class whose grey levels are IBSI 1's bin numbers (discretise) instead of pyradiomics'
    (fixed bin size from a multiple of the bin width below the ROI minimum)."""

    class IbsiBinned(cls):
        def _applyBinning(self, matrix):  # noqa: N802 (pyradiomics' name)
            binned = np.zeros(matrix.shape, dtype=int)
            binned[self.maskArray] = discretise(matrix[self.maskArray], self.settings)
            self.coefficients["grayLevels"] = np.unique(binned[self.maskArray])
            self.coefficients["Ng"] = int(np.max(self.coefficients["grayLevels"]))
            return binned

    IbsiBinned.__name__ = cls.__name__
    return IbsiBinned


class McradExtractor(featureextractor.RadiomicsFeatureExtractor):
    """`options`: the features section's resegment, discretisation and ibsi_extra (DEFAULT_OPTIONS if absent)."""

    def __init__(self, params_file: str | Path, options: dict[str, Any] | None = None):
        super().__init__(str(params_file))
        opts = {**DEFAULT_OPTIONS, **(options or {})}
        self.resegment = {**DEFAULT_OPTIONS["resegment"], **opts["resegment"]}
        self.discretisation = opts["discretisation"]
        self.ibsi_extra = bool(opts["ibsi_extra"]["activate"])
        if self.resegments and self.settings.get("resegmentRange") is not None:
            raise McradError(f"{params_file} sets resegmentRange and features.resegment is set too. Fix: "
                             "re-segment in one place (features.resegment combines range and outliers as IBSI).")
        self._classes = {name: _ibsi_binned(cls) for name, cls in getFeatureClasses().items()}

    @property
    def resegments(self) -> bool:
        return self.resegment["range"] is not None or self.resegment["outlier_sd"] is not None

    def case_settings(self, image: sitk.Image, mask: sitk.Image, label: int) -> dict[str, Any]:
        """Settings of this case: the absolute re-segmentation range (range, then mean +- outlier_sd SD of what
        remains: IBSI's order) and the lower bound IBSI's fixed bin size counts from."""
        out: dict[str, Any] = {}
        if self.resegments:
            values = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(mask) == label]
            out["resegmentRange"] = list(resegment_thresholds(values, self.resegment["range"],
                                                              self.resegment["outlier_sd"]))
            out["resegmentMode"] = "absolute"
        if self.resegment["range"] is not None:
            out["mcradBinLow"] = float(self.resegment["range"][0])
        return out

    def execute(self, imageFilepath, maskFilepath, label=None, label_channel=None, voxelBased=False):  # noqa: N803
        imageFilepath, maskFilepath = (x if isinstance(x, sitk.Image) else sitk.ReadImage(str(x))
                                       for x in (imageFilepath, maskFilepath))
        saved = self.settings
        label = saved.get("label", 1) if label is None else label
        self.settings = {**saved, **self.case_settings(imageFilepath, maskFilepath, label)}
        try:
            result = super().execute(imageFilepath, maskFilepath, label, label_channel, voxelBased)
            if self.ibsi_extra:
                from mcrad.features.ibsi_extra import ibsi_extra_features

                result.update({f"original_ibsi_{k}": v for k, v in ibsi_extra_features(
                    imageFilepath, maskFilepath, label, self.settings, self.discretisation, result).items()})
        finally:
            self.settings = saved
        return result

    def computeShape(self, image, mask, boundingBox, **kwargs):  # noqa: N802, N803 (pyradiomics' names)
        """pyradiomics' computeShape on the whole ROI's bounding box. With re-segmentation pyradiomics passes the
        re-segmented ROI's box with the whole ROI, so shape silently loses the voxels outside it (IBSI: morphology
        uses the whole, not re-segmented, ROI)."""
        if kwargs.get("resegmentRange") is not None and not kwargs.get("resegmentShape", False):
            boundingBox, _ = imageoperations.checkMask(image, mask, **kwargs)
        return super().computeShape(image, mask, boundingBox, **kwargs)

    def computeFeatures(self, image, mask, imageTypeName, **kwargs):  # noqa: N802, N803 (pyradiomics' names)
        """pyradiomics' computeFeatures with the IBSI-binned classes (features.discretisation ibsi)."""
        if self.discretisation == "pyradiomics":
            return super().computeFeatures(image, mask, imageTypeName, **kwargs)
        out = {}
        for name, features in self.enabledFeatures.items():
            if name.startswith("shape") or name not in self._classes:
                continue
            calc = self._classes[name](image, mask, **kwargs)
            for feature in features or ():
                calc.enableFeatureByName(feature)
            out.update({f"{imageTypeName}_{name}_{k}": v for k, v in calc.execute().items()})
        return out
