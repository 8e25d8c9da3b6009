"""Vetting: interviews, identity and security checks, medical examination, alert reviews."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Give the workflow vetting's facts and erasure the vetting rows."""
    from casework.cases import erasure
    from casework.vetting import service
    from casework.workflow import facts

    facts.hooks(app).fact_source(service.vetting_facts, *service.VETTING_FACTS)
    erasure.on_erase(app, service.erase_vetting)
