"""Output formats. Each module renders the same Samples for one kind of consumer."""
