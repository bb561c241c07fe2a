"""Outputs. Each renders the same Measurements of a poll for one kind of consumer, in a module of its own imported
only when chosen (choice.py: which ones, their settings, and how each is built). Imports: metrics/ and below."""
