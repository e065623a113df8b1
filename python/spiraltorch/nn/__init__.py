"""Neural-network building blocks: Module, Parameter, layers, and the functional ops."""

from . import functional  # noqa: F401
