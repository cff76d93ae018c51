"""The application object for ``uvicorn scheduler_app.main:app``, configured from the environment."""

from .app import create_app

app = create_app()
