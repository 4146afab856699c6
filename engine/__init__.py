"""engine subpackage of poletti."""
