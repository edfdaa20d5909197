"""Unit tests need nothing: no database, no network, and no files written into the repository."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis keeps its example database and Unicode cache outside the work tree, which does not ignore them.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "charge-service-hypothesis")
