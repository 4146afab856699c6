"""dsl subpackage of poletti."""
