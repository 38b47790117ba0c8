"""The contract a submission implements, and loading one.

A submission is a class with a timed ``solve`` and optional untimed ``setup``
and ``skip``::

    import numpy as np
    from bilevelbench.solvers import Prediction, Solver

    class MySolver(Solver):
        name, version = "my-method", "1.0"

        def setup(self, spec, train_set):      # untimed: load weights, train, compile
            self.Q = spec.structure.Q

        def solve(self, params):                # timed: params["c"] is (batch, m), params["d"] is (batch, n)
            y = -np.linalg.solve(self.Q, params["c"].T).T
            return Prediction(y=y)              # optionally z=(batch, n); the evaluator never trusts it

``solve`` may also return a dict with ``"y"`` (and ``"z"``) or a bare ``y``
array. The evaluator computes the follower's response ``z(y)`` itself.

Load a solver from a folder (``baselines/exact`` -> ``baselines/exact/solver.py``,
class ``Solver``), a file (``path/to/file.py:ClassName``) or an installed module
(``package.module:ClassName``) with :func:`load_solver`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bilevelbench.errors import SubmissionError, UsageError


@dataclass(frozen=True)
class TaskSpec:
    """What a solver is told about the task before it sees any instance.

    Attributes
    ----------
    family : str
        Problem family (a registered family's name, :mod:`bilevelbench.core.registry`).
    dataset : str
        Data set name.
    split : str
        Split that will be solved (``"test"``).
    n_instances : int
        Number of instances in that split.
    structure : object
        Data shared by every instance, as the family builds it (``Family.structure``).
    param_names : tuple of str
        Keys of the ``params`` mapping given to ``solve`` (``("c", "d")``).
    y_dim, z_dim : int
        Sizes of the upper- and lower-level decisions.
    paper_convention : dict or None
        Where the data set reproduces a paper, its gap convention.
    """

    family: str
    dataset: str
    split: str
    n_instances: int
    structure: Any
    param_names: tuple[str, ...]
    y_dim: int
    z_dim: int
    paper_convention: dict | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Prediction:
    """A solver's answer for a batch: ``y`` (batch, y_dim) and optionally ``z`` (batch, z_dim)."""

    y: Any
    z: Any = None


class Solver:
    """Base class of submissions (subclassing it is optional; the methods are the contract)."""

    #: Shown on leaderboards; chosen by the submitter.
    name: str = "unnamed-solver"
    version: str = "0"
    description: str = ""

    def skip(self, spec: TaskSpec) -> tuple[bool, str | None]:
        """Return ``(True, reason)`` to decline a task (e.g. a family the method does not handle)."""
        return False, None

    def setup(self, spec: TaskSpec, train_set) -> None:
        """Untimed preparation. ``train_set`` is the ``train`` split (an ``InstanceSet``) or None."""

    def solve(self, params: Mapping[str, np.ndarray]) -> Prediction:
        """Timed: return a :class:`Prediction` for a batch of parameters (instance axis first)."""
        raise NotImplementedError


SPEC_FORMS = ("a folder holding solver.py with a class Solver (baselines/exact)",
              "a file and class (path/to/file.py:ClassName)",
              "an importable module and class (package.module:ClassName)")


def _load_from_file(path: Path, class_name: str) -> type:
    if not path.is_file():
        raise SubmissionError(f"solver file {str(path)!r} does not exist")
    folder = str(path.resolve().parent)
    module_name = "bilevelbench_submission_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SubmissionError(f"cannot import {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, folder)  # lets a submission import modules that sit beside it
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise SubmissionError(f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(module, class_name):
        raise SubmissionError(f"{str(path)!r} defines no class {class_name!r}")
    return getattr(module, class_name)


def _load_from_module(module_name: str, class_name: str) -> type:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise SubmissionError(f"no module named {exc.name!r} (from solver spec {module_name}:{class_name})") from None
    except Exception as exc:
        raise SubmissionError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(module, class_name):
        raise SubmissionError(f"module {module_name!r} defines no class {class_name!r}")
    return getattr(module, class_name)


def check_spec_form(spec: str) -> None:
    """Validate the form of ``spec`` without importing anything (the parent process never imports submissions).

    Raises
    ------
    UsageError
        If ``spec`` has none of the accepted forms.
    SubmissionError
        If it names a folder without ``solver.py`` or a file that does not exist.
    """
    if not spec or not spec.strip():
        raise UsageError("empty solver spec; expected " + "; or ".join(SPEC_FORMS))
    path = Path(spec)
    if path.is_dir():
        if not (path / "solver.py").is_file():
            raise SubmissionError(f"folder {spec!r} has no solver.py; expected " + SPEC_FORMS[0])
        return
    if ":" in spec:
        target, class_name = spec.rsplit(":", 1)
        if not class_name.isidentifier():
            raise UsageError(f"{class_name!r} in solver spec {spec!r} is not a class name")
        if (target.endswith(".py") or "/" in target or "\\" in target) and not Path(target).is_file():
            raise SubmissionError(f"solver file {target!r} does not exist")
        return
    if spec.endswith(".py"):
        if not path.is_file():
            raise SubmissionError(f"solver file {spec!r} does not exist")
        return
    raise UsageError(f"solver spec {spec!r} is not a folder, and names no class; expected " + "; or ".join(SPEC_FORMS))


def resolve_solver_class(spec: str) -> type:
    """The solver class named by ``spec`` (see the module docstring), not yet instantiated.

    Raises
    ------
    UsageError
        If ``spec`` has none of the accepted forms.
    SubmissionError
        If importing fails or the class does not exist or lacks ``solve``.
    """
    if not spec or not spec.strip():
        raise UsageError("empty solver spec; expected " + "; or ".join(SPEC_FORMS))
    path = Path(spec)
    if path.is_dir():
        cls = _load_from_file(path / "solver.py", "Solver")
    elif ":" in spec:
        target, class_name = spec.rsplit(":", 1)
        if not class_name.isidentifier():
            raise UsageError(f"{class_name!r} in solver spec {spec!r} is not a class name")
        if target.endswith(".py") or "/" in target or "\\" in target:
            cls = _load_from_file(Path(target), class_name)
        else:
            cls = _load_from_module(target, class_name)
    elif spec.endswith(".py"):
        cls = _load_from_file(path, "Solver")
    else:
        raise UsageError(f"solver spec {spec!r} is not a folder, and names no class; expected "
                         + "; or ".join(SPEC_FORMS))
    if not isinstance(cls, type):
        raise SubmissionError(f"{spec!r} names a {type(cls).__name__}, expected a class")
    if not callable(getattr(cls, "solve", None)):
        raise SubmissionError(f"class {cls.__name__} from {spec!r} has no solve(params) method")
    return cls


def load_solver(spec: str) -> Any:
    """Import and instantiate the solver named by ``spec`` (its constructor takes no arguments).

    Raises
    ------
    SubmissionError
        If the class cannot be imported or its constructor raises.
    """
    cls = resolve_solver_class(spec)
    try:
        return cls()
    except Exception as exc:
        raise SubmissionError(f"{cls.__name__}() raised {type(exc).__name__}: {exc}") from None


def solver_identity(solver: Any) -> dict[str, str]:
    """Name, version and description a solver reports (strings, length-capped)."""
    def text(attr: str, default: str) -> str:
        value = getattr(solver, attr, default)
        return str(value)[:200] if value is not None else default
    return {"name": text("name", type(solver).__name__), "version": text("version", "0"),
            "description": text("description", "")}


def coerce_prediction(out: Any, batch_size: int, y_dim: int, z_dim: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Turn what ``solve`` returned into float64 arrays ``y`` (batch, y_dim) and ``z`` or None.

    Non-finite values are kept (the evaluator records them per instance);
    anything else that breaks the contract raises.

    Raises
    ------
    SubmissionError
        If the output has the wrong type, dtype, or shape.
    """
    if isinstance(out, Prediction):
        y, z = out.y, out.z
    elif isinstance(out, Mapping):
        if "y" not in out:
            raise SubmissionError(f"solve returned a mapping without 'y' (keys: {sorted(map(str, out))[:8]})")
        y, z = out["y"], out.get("z")
    else:
        y, z = out, None
    y = _as_float_array(y, "y", (batch_size, y_dim))
    z = None if z is None else _as_float_array(z, "z", (batch_size, z_dim))
    return y, z


def _as_float_array(value: Any, what: str, shape: tuple[int, int]) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    if value is None:
        raise SubmissionError(f"solve returned no {what}; expected an array of shape {shape}")
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise SubmissionError(f"{what} could not be read as an array: {type(exc).__name__}: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise SubmissionError(f"{what} has dtype {arr.dtype}; expected real numbers (float or int)")
    if arr.ndim == 1 and shape[0] == 1 and arr.shape[0] == shape[1]:
        arr = arr.reshape(shape)
    if arr.shape != shape:
        raise SubmissionError(f"{what} has shape {arr.shape}; expected {shape} (batch, {what}_dim)")
    return np.array(arr, dtype=np.float64)
