"""Features: pyradiomics on each ROI (extract), contour-robustness ICCs (robustness), and the IBSI checks
(ibsi). Names follow <sequence>_<roi>_<imagetype>_<class>_<feature>."""
