"""Workflow state of each case and its transition history (filled in by the workflow feature)."""
