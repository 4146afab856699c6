"""Moved to ``poletti.interpreter.simulate.generate``; kept until benchmarks/ follows."""

from poletti.interpreter.simulate.generate import *  # noqa: F401,F403
from poletti.interpreter.simulate.generate import generate_history  # noqa: F401
