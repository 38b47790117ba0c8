"""Every exception bilevelbench raises on purpose.

Library code raises these; the command line turns them into one clear line and
a non-zero exit status. Each message says what was expected and what was
received.
"""

from __future__ import annotations


class BilevelBenchError(Exception):
    """Base class of all errors raised by bilevelbench."""


class UsageError(BilevelBenchError, ValueError):
    """An argument has the wrong form or value (a bad size string, a negative count)."""


class SchemaError(BilevelBenchError):
    """A file is not a bilevelbench instance set, is corrupt, or uses an unsupported schema."""


class CaseFormatError(SchemaError):
    """A power-system case file (MATPOWER format) is malformed or uses a feature that is not modelled."""


class OutputExistsError(BilevelBenchError, FileExistsError):
    """The output path exists and overwriting was not requested."""


class BackendUnavailableError(BilevelBenchError):
    """A requested solver backend is not installed, not licensed, or cannot take this model."""


class CertificationError(BilevelBenchError):
    """Certification could not even be attempted (for example, no valid variable bounds exist)."""


class SolverError(BilevelBenchError):
    """An underlying numerical solver failed in a way the caller did not expect."""


class MissingDataError(BilevelBenchError, FileNotFoundError):
    """A file, instance or split that was asked for does not exist."""


class SubmissionError(BilevelBenchError):
    """A submitted solver or predictions file does not follow the contract (bad shape, dtype, file, class)."""


class UnknownFamilyError(SchemaError, UsageError):
    """A family name (on the command line, in a spec or in a file) that no installed plugin provides."""


class OracleUnavailableError(BilevelBenchError):
    """``verify --oracle`` was asked of a family (or file) that has no independent exact method."""


class UnsupportedLayerError(BilevelBenchError):
    """A proxy's network holds a layer the worst-case verifier cannot encode exactly (e.g. a sigmoid)."""


class InfeasibleDomainError(BilevelBenchError):
    """No parameter in the verification domain gives a feasible instance, so no worst case exists."""
