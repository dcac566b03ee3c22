"""Stage 6 of the pipeline: trained or physics-based stand-ins for FE in the design loops --
the strain-field surrogate (:mod:`.strain`, :class:`~rln_design.surrogate.strain.Surrogate`) and
the effective-stiffness model (:mod:`.homogenization`)."""
