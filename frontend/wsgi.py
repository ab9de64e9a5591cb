"""gunicorn entry point: `frontend.wsgi:app`."""

from frontend.app import create_app

app = create_app()
