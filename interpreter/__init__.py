"""interpreter subpackage of poletti."""
