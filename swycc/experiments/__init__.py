"""The paper's claims as resumable commands: ``swycc experiment NAME --steps N --out DIR``."""

from swycc.experiments.catalog import EXPERIMENTS
from swycc.experiments.runner import Arm, Budget, run_experiment

__all__ = ["EXPERIMENTS", "Arm", "Budget", "run_experiment"]
