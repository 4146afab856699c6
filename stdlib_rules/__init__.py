"""stdlib_rules subpackage of poletti."""
