"""The run catalog: SQLModel tables and a store that every run and every reader goes through."""

from .schema import SCHEMA_VERSION, Artifact, LogLine, Metric, Run, Sample, SweepPointRow
from .store import Store, resolve_db_url

__all__ = ["SCHEMA_VERSION", "Artifact", "LogLine", "Metric", "Run", "Sample", "Store", "SweepPointRow", "resolve_db_url"]
