"""REST API and dashboard server (FastAPI): see smartsla.api.app."""

from .app import ApiSettings, create_app

__all__ = ["ApiSettings", "create_app"]
