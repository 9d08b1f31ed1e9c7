"""TensorBoard logging for a training run (``swycc train --log tensorboard``), beside
``metrics.jsonl``: every numeric field of a logged record as a scalar, every preview grid as an
image, in ``<out>/tb`` (``tensorboard --logdir <out>/tb``).

On resume, events past the restored step (written by the interrupted run after its last
checkpoint) are purged, as ``MetricsLog.truncate_after`` does for the JSONL log.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

TB_DIR = "tb"


def require_tensorboard() -> None:
    """A ValueError (bad input: exit 2, nothing written) when tensorboard is not installed."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ValueError("--log tensorboard needs the tensorboard package: "
                         "pip install 'swycc[tensorboard]'") from None


class TensorBoardLog:
    """Scalars and images of one run, written with ``torch.utils.tensorboard``."""

    def __init__(self, out: Path, resume_step: int = 0):
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(out) / TB_DIR
        # purge_step: a resumed run drops the events it is about to write again
        self.writer = SummaryWriter(str(self.log_dir),
                                    purge_step=resume_step + 1 if resume_step else None)

    def scalars(self, record: dict) -> None:
        """A metrics record: ``step`` plus named numbers (None, bools and text are skipped)."""
        step = int(record["step"])
        for key, value in record.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def image_file(self, tag: str, path: Path, step: int) -> None:
        """A PNG written by the run (a preview grid), as an image at ``step``."""
        from PIL import Image

        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        self.writer.add_image(tag, pixels, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
