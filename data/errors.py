"""The one error type for bad data input, so the CLI can print it cleanly and exit with code 2."""

from pathlib import Path


class DataInputError(ValueError):
    """
    Raised when an input file is malformed, discontinuous or inconsistent.

    Parameters
    ----------
    path : Path
        The input file at fault.
    problem : str
        What was found and what was expected instead.
    line : int, optional
        The 1-based line number at fault, when the problem sits on one line.

    """

    def __init__(self, path: Path, problem: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        location = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{location}: {problem}")
