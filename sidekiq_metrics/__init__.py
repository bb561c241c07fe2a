"""Sidekiq queue metrics read straight from Redis, printed as Heroku log metrics."""

__version__ = "0.1.0"
