"""grammar subpackage of poletti."""
