"""Vetting interviews and checks (filled in by the vetting feature)."""
