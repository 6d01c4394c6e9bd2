"""swapsim: simulate Linux memory management under swap over the network."""

__version__ = "0.1.0"
