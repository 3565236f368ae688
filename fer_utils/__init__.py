"""Helpers of the FER-2013 study: data, model, training, evaluation, plots and the notebook runner.

Modules are imported on use (``from fer_utils.data import load_fer2013``) so that
loading the data does not start TensorFlow.
"""

__version__ = "0.1.0"
