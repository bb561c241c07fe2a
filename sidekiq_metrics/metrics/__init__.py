"""From readings to what we report: the labelled samples of a poll, their increases, and the names an output
gives them. Imports: sidekiq/ and below."""
