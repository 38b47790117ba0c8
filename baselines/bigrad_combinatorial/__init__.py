"""BiGrad's discrete gradient estimators (BB, PT) and the single-level and supervised baselines, on the
combinatorial bilevel families (``spi-grid``, ``tsp-interdiction``)."""
