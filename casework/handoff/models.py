"""Partners, consent records and hand-offs (filled in by the hand-off feature)."""
