"""Test helpers shipped with bilevelbench: the family contract suite (:mod:`bilevelbench.testing.contract`)."""
