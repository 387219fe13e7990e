"""Small data files bundled with csn (priors, an example pattern); see SOURCES.md."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
EXAMPLE_PATTERN = DATA_DIR / "example_TiO2.xy"
SPACE_GROUP_COUNTS = DATA_DIR / "space_group_counts.csv"
