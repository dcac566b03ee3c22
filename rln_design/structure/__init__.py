"""Stage 1 of the pipeline: two-phase microstructures (:mod:`.generator`: Gaussian-filtered noise
thresholded at a volume fraction; :mod:`.twopoint`: their two-point statistics)."""
