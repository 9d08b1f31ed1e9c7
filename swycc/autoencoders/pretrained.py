"""The small pretrained SWYCC model shipped inside the package (trained on the embedded set)."""

from __future__ import annotations

from pathlib import Path

from swycc.autoencoders.base import CheckpointError

PRETRAINED_DIR = Path(__file__).parents[1] / "pretrained"
DEFAULT_NAME = "small-swycc"


def default_checkpoint() -> Path:
    path = PRETRAINED_DIR / DEFAULT_NAME / "model.safetensors"
    if not path.exists():
        raise CheckpointError(
            "no --checkpoint given and no pretrained model is shipped in this install "
            f"({path}); train one with `swycc train` and pass --checkpoint RUN/export")
    return path


def display_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies below it (reports written into
    the repository then name the shipped model without this machine's checkout path)."""
    p = Path(path).absolute()
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
