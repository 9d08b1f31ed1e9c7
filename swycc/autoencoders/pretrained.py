"""The pretrained SWYCC models shipped inside the package.

- ``small-swycc-f8c4``: the ``small`` preset with SD-VAE's latent shape (4 channels per 8x8
  patch), trained on CPU on the Debian photo set (``swycc photoset``); the default once
  ``swycc ship-check`` passes it;
- ``small-swycc-f8c2`` (the default for now): the 2-channel model (K = 4 in the paper's terms),
  trained on the embedded photo set on a GPU; kept for the experiments at that latent size.

``from_pretrained("small-swycc-f8c2")`` and ``--checkpoint small-swycc-f8c2`` name them without a
path (a local path of the same name wins).
"""

from __future__ import annotations

from pathlib import Path

from swycc.autoencoders.base import CheckpointError
from swycc.autoencoders.hub import PRETRAINED_DIR, SHIPPED_NAMES, shipped_export  # noqa: F401

DEFAULT_NAME = "small-swycc-f8c2"  # f8c4 becomes the default once ship-check passes


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
