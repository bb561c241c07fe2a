"""The commands beside `run`: doctor, watch, demo and autoscale simulate. Part of the top: they may know the
assembled settings, and import anything below."""
