"""Village returns pipeline: unit monthly returns in, street totals and error reports out."""

__version__ = "0.1.0"
