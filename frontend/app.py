"""The Flask application: MT-Photos routes and the status page over one worker farm."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from frontend.farm import ClientGone, Farm
from frontend.imaging import Imaging
from frontend.limits import BodyDeadline, BodyTimedOut, body_timed_out, too_large
from protocol.endpoints import front_endpoint
from protocol.settings import Settings

log = logging.getLogger("mtai.front")


def create_app(settings: Settings | None = None) -> Flask:
    """The app over the farm of ``settings`` (default: the values `mtai serve` handed down)."""
    from frontend import immich, metrics, mtphotos, status

    settings = settings or Settings.inherited()
    app = Flask(__name__)
    app.config.update(
        API_KEY=settings.api_key,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        REQUEST_TIMEOUT=settings.request_timeout,
        VERSION=_version(),
        JSON_SORT_KEYS=False,
        FACE_MODEL=settings.face_model,
        FACE_MIN_SCORE=settings.face_min_score,
    )
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.extensions["farm"] = Farm(front_endpoint(settings.runtime_dir), settings.request_timeout)
    app.extensions["imaging"] = Imaging(settings.decode_threads, settings.front_capacity)
    app.wsgi_app = BodyDeadline(app.wsgi_app, settings.read_timeout)
    app.register_blueprint(status.bp)
    app.register_blueprint(mtphotos.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(immich.bp)
    app.register_error_handler(413, too_large)
    app.register_error_handler(BodyTimedOut, body_timed_out)
    app.register_error_handler(ClientGone, _client_gone)
    app.register_error_handler(Exception, _unexpected)
    return app


def _client_gone(exc: ClientGone) -> tuple[str, int]:
    """Nobody reads this answer; 499 (as nginx logs a closed request) marks it in the log."""
    log.info("%s", exc)
    return "", 499


def _unexpected(exc: Exception) -> tuple[Response, int]:
    """Last resort for a bug: logged, answered in JSON. MT-Photos gets its documented shape
    with 503 (retry later), never Flask's HTML 500."""
    if isinstance(exc, HTTPException):
        return jsonify(detail=exc.description), exc.code or 500
    log.exception("unhandled error on %s", request.path)
    if request.path.startswith(("/ocr", "/clip", "/check", "/restart", "/represent")):
        return jsonify(result=[], msg=f"internal error: {type(exc).__name__}"), 503
    return jsonify(detail=f"internal error: {type(exc).__name__}"), 500


def _version() -> str:
    try:
        return version("mtai-rknn")
    except PackageNotFoundError:
        return "dev"
