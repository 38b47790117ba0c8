"""The family protocol: everything the generic layers (generate, info, verify, evaluate, score, check-solver,
leaderboard) need to know about one problem family, in one object.

A family is a subclass of :class:`Family` whose class attributes describe it and whose methods do the work.
The generic layers never test a family's name: they look the family up in the registry
(:mod:`bilevelbench.core.registry`) and call these methods. Importing a family's descriptor module must be
cheap: the heavy work (solvers, torch) is imported inside the methods.

A minimal family (see ``docs/families/adding-a-family.md`` for a complete template)::

    class Packing(Family):
        name = "packing"
        title = "0/1 packing with parametric values"
        decision = "x"
        param_fields = ("values",)
        label_fields = ("x", "objective")
        generator_version = 1
        seed_stream = 7
        options = (Option("items", int, 20, "number of items"),)

        def generate(self, request): ...
        def structure(self, data): ...
        def decision_dims(self, structure): ...
        def label_checker(self, ds): ...
        def score(self, ds, answers, progress=None): ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bilevelbench.errors import OracleUnavailableError

if TYPE_CHECKING:  # pragma: no cover
    from bilevelbench.data.hdf5 import InstanceSetData
    from bilevelbench.data.instance_set import InstanceSet
    from bilevelbench.evaluate.scoring import SplitScore

#: ``check(pos, status) -> problems``: the problems found with the label at position ``pos`` (empty: it passes).
LabelCheck = Callable[[int, str], list[str]]
Progress = Callable[[int], object]


@dataclass(frozen=True)
class Option:
    """One family-specific generation setting: a ``generate`` flag and a spec key at once.

    Attributes
    ----------
    name : str
        The spec key and the flag's name (``load_scale`` is ``--load-scale``).
    type : type
        ``str``, ``int``, ``float``, ``bool`` or ``list`` (a list is given on the command line as
        comma-separated numbers, ``--load-scale 0.6,1.0``).
    default : object
        Used when neither the command line nor the spec gives a value; ``None`` for "the family decides".
    help : str
        One line for ``bilevelbench generate FAMILY --help``.
    metavar : str, optional
    choices : tuple, optional
        The allowed values.
    required : bool
        Whether generating without a value is an error.
    length : int, optional
        For a ``list``: the number of entries expected.
    item : type
        For a ``list``: the type of its entries (``float`` or ``str``).
    run_setting : bool
        A setting of the labelling run (solver backend, time limit) rather than of the data set: it may be
        given on the command line beside a spec file, overriding the spec.
    """

    name: str
    type: type
    default: Any = None
    help: str = ""
    metavar: str | None = None
    choices: tuple | None = None
    required: bool = False
    length: int | None = None
    item: type = float
    run_setting: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Column:
    """A leaderboard column: the record's metric ``key``, its header, and whether it is numeric."""

    key: str
    header: str
    numeric: bool = True


class SplitRequest:
    """What every family's request dataclass shares: ``n_train``, ``n_valid``, ``n_test`` and ``seed``, checked
    once here (call :meth:`check_counts` from ``__post_init__``)."""

    n_train: int
    n_valid: int
    n_test: int
    seed: int

    def split_counts(self) -> dict[str, int]:
        """``{"train": n_train, "valid": n_valid, "test": n_test}``."""
        return {"train": self.n_train, "valid": self.n_valid, "test": self.n_test}

    def check_counts(self) -> None:
        """Raise UsageError for a negative count, nothing to generate, or a seed outside ``[0, 2**63)``."""
        from bilevelbench.errors import UsageError

        for name, count in (("n_train", self.n_train), ("n_valid", self.n_valid), ("n_test", self.n_test)):
            if count < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {count}")
        if self.n_train + self.n_valid + self.n_test == 0:
            raise UsageError("nothing to generate: --n-train, --n-valid and --n-test are all 0")
        if not 0 <= self.seed < 2**63:
            raise UsageError(f"--seed must be a non-negative integer below 2**63, got {self.seed}")

    @staticmethod
    def check_time_limit(seconds: float) -> None:
        """Raise UsageError unless ``seconds`` (a ``--time-limit``) is a positive finite number."""
        from bilevelbench.errors import UsageError

        if not (np.isfinite(seconds) and seconds > 0):
            raise UsageError(f"--time-limit must be a positive number of seconds, received {seconds}")


@dataclass
class GenerateRequest(SplitRequest):
    """What ``bilevelbench generate`` asks a family to write.

    Attributes
    ----------
    out : Path
        The HDF5 file to write (atomically; nothing under this name unless the whole set is done).
    n_train, n_valid, n_test : int
        Instances per split.
    seed : int
        Seed of the structure and the parameters.
    options : dict
        The family's :class:`Option` values (defaults filled in).
    workers : int
        Local worker processes.
    scheduler : str, optional
        A Dask scheduler address (``tcp://HOST:PORT`` or ``local:K``).
    overwrite : bool
    progress : callable, optional
        ``progress(total)`` returns a bar with ``update(k)`` and ``close()``.
    name : str, optional
        The data set's name (from a spec), stored in the file.
    spec : dict, optional
        The spec file's content, stored in the file.
    """

    out: Path
    n_train: int = 0
    n_valid: int = 0
    n_test: int = 100
    seed: int = 0
    options: dict = field(default_factory=dict)
    workers: int = 1
    scheduler: str | None = None
    overwrite: bool = False
    progress: Callable[[int], Any] | None = None
    name: str | None = None
    spec: dict | None = None

    def __post_init__(self) -> None:
        self.check_counts()


@dataclass
class Answers:
    """A split's submitted answers, aligned with its instances.

    Attributes
    ----------
    params, labels : dict
        The split's parameter and label arrays (instance axis first).
    y : (n, y_dim) array
        Submitted decisions (NaN rows where nothing was answered).
    answered : (n,) bool array
    reasons : dict
        Why an instance has no answer (position -> one line).
    z : (n, z_dim) array, optional
        A submitted follower decision, for families that have one (compared, never trusted).
    """

    params: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    y: np.ndarray
    answered: np.ndarray
    reasons: dict[int, str]
    z: np.ndarray | None = None


class Family:
    """Base class of a problem family's descriptor (see the module docstring).

    Class attributes describe the family; override the methods that do the work. Methods marked optional
    have a default that tells the user clearly that the family does not offer the capability.
    """

    #: The name in files, specs and on the command line (``my-family``; see ``bilevelbench families``).
    name: str = ""
    #: One line: what the family is and where it comes from.
    title: str = ""
    #: The family's documentation page (relative to the repository).
    docs: str = ""
    #: Arguments of a small ``bilevelbench generate NAME ...`` run (shown in ``--help``).
    example: str = ""
    #: ``generate`` arguments (without ``--out``) of a tiny set that labels in seconds, with at least one labelled
    #: test instance: the contract suite (:mod:`bilevelbench.testing.contract`) runs every family on it.
    tiny_args: tuple[str, ...] = ()
    #: The name of a submission's decision (``y``, ``x``, ``pg``, ``design``).
    decision: str = "y"
    #: The name of a follower decision a submission may return beside it (never trusted), or None.
    follower: str | None = None
    #: Parameter arrays of every instance (keys of ``/params`` and of ``solve(params)``).
    param_fields: tuple[str, ...] = ()
    #: Label fields given by default by ``InstanceSet.batches`` and ``to_torch``.
    label_fields: tuple[str, ...] = ("objective",)
    #: Further label fields that measure time (left out of the content digest besides ``solve_time``).
    timing_fields: tuple[str, ...] = ()
    #: Version of the generator's output; bump when the same request would give different data.
    generator_version: int | str = 1
    #: The first spawn-key entry of the family's parameter streams (``SeedSequence(seed, spawn_key=(k, split))``).
    seed_stream: int = 0
    #: Family-specific generation settings (flags and spec keys).
    options: tuple[Option, ...] = ()
    #: Columns that replace the leaderboard's "coupling violation" column for this family.
    leaderboard_columns: tuple[Column, ...] = ()
    #: The metric ranked on after the feasible rate (smaller is better).
    rank_metric: str = "gap_mean"
    #: The exact reference solver as ``module:Class`` (run by ``evaluate`` for ``speedup_vs_exact``).
    exact_solver: str = ""
    #: Whether ``evaluate --closed-loop`` applies (shown by ``bilevelbench families``).
    closed_loop: bool = False
    #: Extra splits the family may write besides train, valid and test (for example ``infeasible``; shown by
    #: ``bilevelbench families``).
    extra_splits: tuple[str, ...] = ()
    #: What ``verify --oracle`` re-solves the labels with (empty: the family has no oracle).
    oracle_method: str = ""
    #: The license of generated instance sets (a URL; dataset cards print it), and what it owes to third parties.
    data_license: str = "https://opensource.org/licenses/MIT"
    data_license_note: str = ""

    # -- generation ---------------------------------------------------------------------------------------
    def generate(self, request: GenerateRequest) -> Path:
        """Sample, label and write an instance set; return the written path."""
        raise NotImplementedError(f"family {self.name!r} does not implement generate()")

    def option(self, name: str) -> Option | None:
        """The :class:`Option` called ``name``, or None."""
        return next((o for o in self.options if o.name == name), None)

    def sample(self, ds: InstanceSet, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` fresh parameter draws from the distribution ``ds`` was sampled from (its structure and recorded
        sampling settings): unlabeled instances for self-supervised training or for probing a proxy."""
        raise NotImplementedError(f"family {self.name!r} does not implement sample()")

    # -- reading ------------------------------------------------------------------------------------------
    def structure(self, data: InstanceSetData):
        """Rebuild the structure shared by every instance from a file's content.

        It must have ``size`` (a short string) and ``digest()`` (the hash recorded as ``structure_hash``).
        """
        raise NotImplementedError(f"family {self.name!r} does not implement structure()")

    def decision_dims(self, structure) -> tuple[int, int]:
        """``(y_dim, z_dim)``: the width of a submission's decision and of its optional follower decision."""
        raise NotImplementedError(f"family {self.name!r} does not implement decision_dims()")

    def info_lines(self, ds: InstanceSet) -> list[str]:
        """Lines for ``bilevelbench info`` after the family line (by default the size)."""
        return [f"size            {ds.structure.size}"]

    # -- verification -------------------------------------------------------------------------------------
    def label_checker(self, ds: InstanceSet) -> LabelCheck:
        """The independent re-check of one label, run by ``bilevelbench verify`` on every instance."""
        raise NotImplementedError(f"family {self.name!r} does not implement label_checker()")

    def oracle_checker(self, ds: InstanceSet) -> LabelCheck:
        """A re-solve of one certified instance by an independent exact method (``verify --oracle``).

        Raises
        ------
        OracleUnavailableError
            When the family (or this file) has no independent exact method; the message says why.
        """
        raise OracleUnavailableError(f"family {self.name!r} has no independent exact method to re-solve its "
                                     "labels with; 'bilevelbench verify' without --oracle re-checks every label")

    # -- scoring ------------------------------------------------------------------------------------------
    def score(self, ds: InstanceSet, answers: Answers, progress: Progress | None = None) -> SplitScore:
        """Score a split's answers against its labels (the evaluator's one entry point per family)."""
        raise NotImplementedError(f"family {self.name!r} does not implement score()")

    def headline_metrics(self, score: SplitScore, aggregates: dict[str, dict]) -> dict:
        """Family metrics added to a record's ``metrics`` block (beside the common ones)."""
        return {}

    def summary_lines(self, metrics: dict) -> list[str]:
        """Lines of the evaluator's summary for a scored record (after the gap and feasibility lines)."""
        return []

    def closed_loop_summary_lines(self, metrics: dict) -> list[str]:
        """Lines of the evaluator's summary for a closed-loop record (families with :attr:`closed_loop`)."""
        return []

    # -- worst-case verification of proxies (optional) ---------------------------------------------------
    def verification_problem(self, ds: InstanceSet):
        """The family's problem for ``bilevelbench verify-proxy``: a
        :class:`bilevelbench.verification.problem.VerificationProblem` (parametric program, how an answer is
        priced, nominal parameters, exact re-solve).

        Raises
        ------
        UsageError
            When the family (or this file) does not support worst-case verification; the message says why.
        """
        from bilevelbench.errors import UsageError

        raise UsageError(f"family {self.name!r} does not support worst-case verification of proxies "
                         "(its descriptor has no verification_problem)")

    @property
    def supports_verification(self) -> bool:
        """Whether :meth:`verification_problem` is implemented (the leaderboard shows worst-case columns)."""
        return type(self).verification_problem is not Family.verification_problem

    # -- closed loop (optional) ---------------------------------------------------------------------------
    def closed_loop_plan(self, ds: InstanceSet, steps: int, episodes: int | None):
        """``(plan, reference)`` of ``evaluate --closed-loop``; see :mod:`bilevelbench.evaluate.evaluator`."""
        from bilevelbench.errors import UsageError

        raise UsageError(f"--closed-loop applies to families with a closed-loop simulation; {self.name!r} has none")

    def score_closed_loop(self, ds: InstanceSet, plan: dict, reference: dict, decisions: list, latencies: list):
        """``(scored, headline)`` of re-simulated episodes (families with :attr:`closed_loop`)."""
        raise NotImplementedError(f"family {self.name!r} has no closed-loop simulation")

    def run_episode(self, ds: InstanceSet, theta0, steps: int, policy, disturbances):
        """Simulate one closed-loop episode (families with :attr:`closed_loop`)."""
        raise NotImplementedError(f"family {self.name!r} has no closed-loop simulation")

    def __repr__(self) -> str:
        return f"<Family {self.name}>"


def check_options(family: Family, values: dict, where: str) -> dict:
    """Validate ``values`` against ``family.options`` and fill in defaults; return the full option dict.

    Raises
    ------
    UsageError
        For an unknown option, a value of the wrong type, a value outside ``choices`` or a missing
        required option; the message names ``where`` the value came from.
    """
    from bilevelbench.errors import UsageError

    known = {o.name: o for o in family.options}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(f"{where}: {', '.join(unknown)} not an option of {family.name}; its options: "
                         f"{', '.join(known) or 'none'}")
    out = {}
    for option in family.options:
        value = values.get(option.name, option.default)
        if value is None:
            if option.required:
                raise UsageError(f"{where}: {option.flag} is required for {family.name} (spec key {option.name}: "
                                 f"{option.help})")
            out[option.name] = None
            continue
        out[option.name] = coerce_option(option, value, where)
    return out


def coerce_option(option: Option, value, where: str):
    """``value`` (from a spec or parsed from a flag) as ``option.type``; raises UsageError on a mismatch."""
    from bilevelbench.errors import UsageError

    kind = option.type
    if kind is list:
        what = "numbers" if option.item is float else "strings"
        if isinstance(value, str):
            try:
                value = [option.item(v.strip()) for v in value.split(",")]
            except ValueError:
                raise UsageError(f"{where}: {option.name} takes comma-separated {what}, got {value!r}") from None
        is_item = ((lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)) if option.item is float
                   else (lambda v: isinstance(v, str)))
        if not isinstance(value, (list, tuple)) or not all(is_item(v) for v in value):
            raise UsageError(f"{where}: {option.name} = {value!r}; expected a list of {what}")
        if option.length is not None and len(value) != option.length:
            shape = f" ({option.flag} {option.metavar})" if option.metavar else ""
            raise UsageError(f"{where}: {option.name} = {list(value)!r}; expected {option.length} {what}{shape}")
        value = [option.item(v) for v in value]
        if option.choices is not None:
            bad = [v for v in value if v not in option.choices]
            if bad:
                raise UsageError(f"{where}: {option.name} holds {bad}; expected entries among "
                                 f"{', '.join(map(str, option.choices))}")
        return value
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{where}: {option.name} = {value!r}; expected a number")
        value = float(value)
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{where}: {option.name} = {value!r}; expected an integer")
    elif kind is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{where}: {option.name} = {value!r}; expected true or false")
    elif kind is str:
        if not isinstance(value, str):
            raise UsageError(f"{where}: {option.name} = {value!r}; expected a string")
    if option.choices is not None and value not in option.choices:
        raise UsageError(f"{where}: {option.name} = {value!r}; expected one of {', '.join(map(str, option.choices))}")
    return value


def split_counts(request: GenerateRequest) -> dict[str, int]:
    """``{"train": n_train, "valid": n_valid, "test": n_test}``."""
    return {"train": request.n_train, "valid": request.n_valid, "test": request.n_test}


def option_names(families: Sequence[Family]) -> set[str]:
    """Every option name any of ``families`` declares."""
    return {o.name for f in families for o in f.options}
