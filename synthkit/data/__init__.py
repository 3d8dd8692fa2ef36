"""Data files shipped with synthkit (the demo's public NMES1988 schema)."""
