"""GreenDots: live pytest results, read from a shared runs directory."""

__version__ = "0.1.0"
