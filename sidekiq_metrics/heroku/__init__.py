"""Heroku itself: dyno names on Cedar and Fir, and the Platform API. Imports: http/ and below."""
