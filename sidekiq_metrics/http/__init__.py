"""HTTP helpers our clients share: one deadline over a whole request, and Retry-After. Imports: the base modules."""
