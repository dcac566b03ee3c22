"""Stage 5 of the pipeline: training strain models on FE data (:mod:`.loop`), the one checkpoint
schema (:mod:`.checkpoint`), test-split accuracy against FE (:mod:`.evaluate`) and the reference
predictors a model must beat (:mod:`.baselines`)."""
