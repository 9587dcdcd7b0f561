"""Models: ``Basic`` (the rate RNN), ``LSTM`` and the shared base ``RNN``."""
from .basic import Basic
from .lstm import LSTM
from .rnn import RNN

__all__ = ["Basic", "LSTM", "RNN"]
