"""Serve a model: REST API (FastAPI) and a web page; needs the `cxrkit[serve]` extra."""

from cxrkit.serve.app import create_app
from cxrkit.serve.engine import FilmPredictor
from cxrkit.serve.settings import TOKEN_ENV, ServeSettings

__all__ = ["TOKEN_ENV", "FilmPredictor", "ServeSettings", "create_app"]
