"""Which CPU kernels compute this machine's floating-point results, for tests that pin bit-exact content.

Labels are certified to a tolerance, but content digests hash the stored arrays bit for bit, and the last bits
depend on the kernels the libraries pick at run time: OpenBLAS's core type (numpy and scipy) and PyTorch's CPU
capability. The pinned digests of ``tests/`` were computed on the Intel Xeon machines of earlier sessions (their
kernels were not recorded); on an AMD EPYC with AVX2 (``openblas=Haswell;torch=AVX2``) seven of the ten tiny
golden sets hash differently while every objective agrees to 1e-9 (a best-known one, a search result, to
1.4e-8). Tests look up the digests pinned for :func:`numerics_profile` and fall back to the reference ones.
"""

from __future__ import annotations


def numerics_profile() -> str:
    """``"openblas=<core>;torch=<capability>"`` of this process (``none`` where a library is absent)."""
    import numpy  # noqa: F401  (loads OpenBLAS, so that threadpoolctl sees it)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:             # not installed (it comes with the test extra): the reference pins apply
        cores = ["unknown"]
    else:
        cores = sorted({str(info.get("architecture")) for info in threadpool_info()
                        if info.get("internal_api") == "openblas"})
    try:
        import torch

        capability = str(torch.backends.cpu.get_cpu_capability())
    except ImportError:
        capability = "none"
    return f"openblas={'+'.join(cores) or 'none'};torch={capability}"


def pinned(reference: dict[str, str], by_profile: dict[str, dict[str, str]]) -> dict[str, str]:
    """The digests pinned for this machine's profile: ``by_profile[numerics_profile()]`` over ``reference``."""
    return {**reference, **by_profile.get(numerics_profile(), {})}
