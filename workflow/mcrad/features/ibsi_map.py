"""pyradiomics feature names -> IBSI 1 feature tags (without aggregation suffix), and the value transforms the
mapping needs. Where IBSI defines two names for one quantity (sum variance = cluster tendency, dissimilarity =
difference average) both tags are mapped."""
from __future__ import annotations

from collections.abc import Callable

# Not mapped (no IBSI counterpart): shape Maximum2DDiameter*, Compactness*/SphericalDisproportion (deprecated),
# for one quantity (sum variance = cluster tendency, dissimilarity = difference average) both tags are checked.
# Not mapped (no IBSI counterpart): shape Maximum2DDiameter*, Compactness*/SphericalDisproportion (deprecated),
# firstorder TotalEnergy, glcm MCC.
IBSI_TAGS: dict[str, tuple[str, ...]] = {
    "shape_MeshVolume": ("morph_volume",), "shape_VoxelVolume": ("morph_vol_approx",),
    "shape_SurfaceArea": ("morph_area_mesh",), "shape_SurfaceVolumeRatio": ("morph_av",),
    "shape_Sphericity": ("morph_sphericity",), "shape_Maximum3DDiameter": ("morph_diam",),
    "shape_MajorAxisLength": ("morph_pca_maj_axis",), "shape_MinorAxisLength": ("morph_pca_min_axis",),
    "shape_LeastAxisLength": ("morph_pca_least_axis",), "shape_Elongation": ("morph_pca_elongation",),
    "shape_Flatness": ("morph_pca_flatness",),
    "firstorder_Mean": ("stat_mean",), "firstorder_Variance": ("stat_var",), "firstorder_Skewness": ("stat_skew",),
    "firstorder_Kurtosis": ("stat_kurt",), "firstorder_Median": ("stat_median",), "firstorder_Minimum": ("stat_min",),
    "firstorder_10Percentile": ("stat_p10",), "firstorder_90Percentile": ("stat_p90",),
    "firstorder_Maximum": ("stat_max",), "firstorder_InterquartileRange": ("stat_iqr",),
    "firstorder_Range": ("stat_range",), "firstorder_MeanAbsoluteDeviation": ("stat_mad",),
    "firstorder_RobustMeanAbsoluteDeviation": ("stat_rmad",), "firstorder_Energy": ("stat_energy",),
    "firstorder_RootMeanSquared": ("stat_rms",), "firstorder_Entropy": ("ih_entropy",),
    "firstorder_Uniformity": ("ih_uniformity",),
    "glcm_MaximumProbability": ("cm_joint_max",), "glcm_JointAverage": ("cm_joint_avg",),
    "glcm_SumSquares": ("cm_joint_var",), "glcm_JointEntropy": ("cm_joint_entr",),
    "glcm_DifferenceAverage": ("cm_diff_avg", "cm_dissimilarity"), "glcm_DifferenceVariance": ("cm_diff_var",),
    "glcm_DifferenceEntropy": ("cm_diff_entr",), "glcm_SumAverage": ("cm_sum_avg",),
    "glcm_SumEntropy": ("cm_sum_entr",), "glcm_JointEnergy": ("cm_energy",), "glcm_Contrast": ("cm_contrast",),
    "glcm_Id": ("cm_inv_diff",), "glcm_Idn": ("cm_inv_diff_norm",), "glcm_Idm": ("cm_inv_diff_mom",),
    "glcm_Idmn": ("cm_inv_diff_mom_norm",), "glcm_InverseVariance": ("cm_inv_var",),
    "glcm_Correlation": ("cm_corr",), "glcm_Autocorrelation": ("cm_auto_corr",),
    "glcm_ClusterTendency": ("cm_clust_tend", "cm_sum_var"), "glcm_ClusterShade": ("cm_clust_shade",),
    "glcm_ClusterProminence": ("cm_clust_prom",), "glcm_Imc1": ("cm_info_corr1",), "glcm_Imc2": ("cm_info_corr2",),
    "glrlm_ShortRunEmphasis": ("rlm_sre",), "glrlm_LongRunEmphasis": ("rlm_lre",),
    "glrlm_LowGrayLevelRunEmphasis": ("rlm_lgre",), "glrlm_HighGrayLevelRunEmphasis": ("rlm_hgre",),
    "glrlm_ShortRunLowGrayLevelEmphasis": ("rlm_srlge",), "glrlm_ShortRunHighGrayLevelEmphasis": ("rlm_srhge",),
    "glrlm_LongRunLowGrayLevelEmphasis": ("rlm_lrlge",), "glrlm_LongRunHighGrayLevelEmphasis": ("rlm_lrhge",),
    "glrlm_GrayLevelNonUniformity": ("rlm_glnu",), "glrlm_GrayLevelNonUniformityNormalized": ("rlm_glnu_norm",),
    "glrlm_RunLengthNonUniformity": ("rlm_rlnu",), "glrlm_RunLengthNonUniformityNormalized": ("rlm_rlnu_norm",),
    "glrlm_RunPercentage": ("rlm_r_perc",), "glrlm_GrayLevelVariance": ("rlm_gl_var",),
    "glrlm_RunVariance": ("rlm_rl_var",), "glrlm_RunEntropy": ("rlm_rl_entr",),
    "glszm_SmallAreaEmphasis": ("szm_sze",), "glszm_LargeAreaEmphasis": ("szm_lze",),
    "glszm_LowGrayLevelZoneEmphasis": ("szm_lgze",), "glszm_HighGrayLevelZoneEmphasis": ("szm_hgze",),
    "glszm_SmallAreaLowGrayLevelEmphasis": ("szm_szlge",), "glszm_SmallAreaHighGrayLevelEmphasis": ("szm_szhge",),
    "glszm_LargeAreaLowGrayLevelEmphasis": ("szm_lzlge",), "glszm_LargeAreaHighGrayLevelEmphasis": ("szm_lzhge",),
    "glszm_GrayLevelNonUniformity": ("szm_glnu",), "glszm_GrayLevelNonUniformityNormalized": ("szm_glnu_norm",),
    "glszm_SizeZoneNonUniformity": ("szm_zsnu",), "glszm_SizeZoneNonUniformityNormalized": ("szm_zsnu_norm",),
    "glszm_ZonePercentage": ("szm_z_perc",), "glszm_GrayLevelVariance": ("szm_gl_var",),
    "glszm_ZoneVariance": ("szm_zs_var",), "glszm_ZoneEntropy": ("szm_zs_entr",),
    # pyradiomics GLDM with gldm_a = 0 is IBSI's NGLDM (Chebyshev distance 1, coarseness 0)
    "gldm_SmallDependenceEmphasis": ("ngl_lde",), "gldm_LargeDependenceEmphasis": ("ngl_hde",),
    "gldm_LowGrayLevelEmphasis": ("ngl_lgce",), "gldm_HighGrayLevelEmphasis": ("ngl_hgce",),
    "gldm_SmallDependenceLowGrayLevelEmphasis": ("ngl_ldlge",),
    "gldm_SmallDependenceHighGrayLevelEmphasis": ("ngl_ldhge",),
    "gldm_LargeDependenceLowGrayLevelEmphasis": ("ngl_hdlge",),
    "gldm_LargeDependenceHighGrayLevelEmphasis": ("ngl_hdhge",),
    "gldm_GrayLevelNonUniformity": ("ngl_glnu",), "gldm_DependenceNonUniformity": ("ngl_dcnu",),
    "gldm_DependenceNonUniformityNormalized": ("ngl_dcnu_norm",), "gldm_GrayLevelVariance": ("ngl_gl_var",),
    "gldm_DependenceVariance": ("ngl_dc_var",), "gldm_DependenceEntropy": ("ngl_dc_entr",),
    "ngtdm_Coarseness": ("ngt_coarseness",), "ngtdm_Contrast": ("ngt_contrast",), "ngtdm_Busyness": ("ngt_busyness",),
    "ngtdm_Complexity": ("ngt_complexity",), "ngtdm_Strength": ("ngt_strength",),
}


# IBSI reports excess kurtosis (0 for a normal distribution), pyradiomics kurtosis: the mapping subtracts 3.
VALUE_TRANSFORMS: dict[str, Callable[[float], float]] = {"firstorder_Kurtosis": lambda v: v - 3.0}
