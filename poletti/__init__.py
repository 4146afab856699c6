"""poletti: a declarative rules engine for customer loyalty programs."""

__version__ = "0.1.0"
