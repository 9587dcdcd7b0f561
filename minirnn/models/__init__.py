"""Models: ``Basic`` (the rate RNN) and the shared base ``RNN``."""
from .basic import Basic
from .rnn import RNN

__all__ = ["Basic", "RNN"]
