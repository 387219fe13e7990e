"""Where the benchmark scripts find things: the checkout (REPO) and the shared data folder
(``../shared/data`` beside the checkout). Scripts run from benchmarks/ import it as ``_shared``."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def shared_data(*parts) -> Path:
    """A path inside the shared data folder."""
    return SHARED.joinpath(*parts)
