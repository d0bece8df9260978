"""The gate's one error type, shared by every module of ``keel.validation``."""


class GateInputError(ValueError):
    """A session folder, variant, thresholds file or decision log is missing, altered or malformed: a refusal (exit 2)."""
