"""tfcomp: learned image compression and compression-artifact reduction in TensorFlow/Keras."""

__version__ = "0.1.0"
__all__ = ["__version__"]
