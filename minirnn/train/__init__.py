"""The training loop (``train``) and curriculum learning."""
from .trainer import train

__all__ = ["train"]
