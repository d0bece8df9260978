"""Reading Keel's YAML files (variants, venue models, environments, sweep spaces, gate thresholds) into typed structs."""

from pathlib import Path
from typing import TypeVar

import msgspec
import yaml

StructT = TypeVar("StructT", bound=msgspec.Struct)


def load_struct(path: Path, struct_type: type[StructT], error_type: type[Exception], what: str) -> StructT:
    """
    Read the YAML (or JSON) file ``path`` into ``struct_type``.

    Raises
    ------
    error_type
        If the file is missing, is not YAML, is not a mapping, or a field is missing, unknown or of the wrong
        type. The message names the file, and msgspec's names the field (``$.strategy.config``).
    """
    if not path.is_file():
        raise error_type(f"{path}: {what} file not found")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise error_type(f"{path}: not valid YAML: {error}") from error
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise error_type(f"{path}: expected a mapping of {what} fields, got {type(document).__name__}")
    try:
        return msgspec.convert(document, struct_type)
    except msgspec.ValidationError as error:
        raise error_type(f"{path}: {error}") from error
