"""bilevelbench: certified instance sets and one evaluator for learning to optimize.

The data flow shows in the sub-packages::

    families (problem definition) -> certify (exact labels + checks) -> data (HDF5)
"""

from __future__ import annotations

__version__ = "0.1.0"

from bilevelbench.data.instance_set import InstanceSet

__all__ = ["InstanceSet", "__version__"]
