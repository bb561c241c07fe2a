"""Autoscaling: the policy, its settings and schedules, sizing, the jobs a scale-down would cut, which dynos it
stops, and the scaler that acts through the Platform API. Imports: outputs/ and below."""
