"""`create_app(model_path)`: the FastAPI app: /v1/predict, /v1/model, /healthz and the page."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from cxrkit.io.pool import DecodePool
from cxrkit.serve.batcher import MicroBatcher, QueueFull
from cxrkit.serve.engine import FilmPredictor
from cxrkit.serve.limits import (
    ApiError,
    BodyLimitMiddleware,
    SecurityHeadersMiddleware,
    too_large,
)
from cxrkit.serve.ratelimit import RateLimitMiddleware
from cxrkit.serve.settings import ServeSettings
from cxrkit.version import __version__

log = logging.getLogger("cxrkit.serve")
STATIC = Path(str(resources.files("cxrkit.serve") / "static"))
RETRY_AFTER_S = 1  # a full queue drains in well under a second on a CPU box
_bearer = HTTPBearer(auto_error=False, description="Set when the server has CXR_API_TOKEN")


class Gate:
    """Admission and deadlines: at most `max_queue` predictions in the server at once (more
    get 503 + Retry-After), each within `timeout_s` (else 504). Decoding and preparation
    run in `intake` threads (the decode pool's processes do the decoding), the model in
    the `MicroBatcher`, CAM and previews in `max_concurrent` threads."""

    def __init__(self, settings: ServeSettings, predictor: FilmPredictor) -> None:
        self.settings, self.predictor = settings, predictor
        self.pool = ThreadPoolExecutor(settings.max_concurrent, thread_name_prefix="cxr-predict")
        self.intake = ThreadPoolExecutor(
            max(2, settings.decode_workers + 2), thread_name_prefix="cxr-intake"
        )
        self.batcher = MicroBatcher(
            predictor.assess_batch,
            max_batch=settings.max_batch,
            max_wait_ms=settings.batch_wait_ms,
            max_queue=settings.max_queue,
        )
        self.pending = 0

    def busy(self) -> ApiError:
        """The 503 of a full server, with a Retry-After in seconds."""
        return ApiError(
            503,
            "busy",
            "server busy: too many predictions queued, retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    async def predict(self, data: bytes, name: str, *, cam: bool, preview: bool) -> Any:
        """One upload through intake, the batched model and the answer; 503 when full,
        504 when late."""
        if self.pending >= self.settings.max_queue:
            raise self.busy()
        self.pending += 1
        try:
            return await asyncio.wait_for(
                self._predict(data, name, cam=cam, preview=preview), self.settings.timeout_s
            )
        except asyncio.TimeoutError as exc:
            raise ApiError(
                504, "timeout", f"prediction took longer than {self.settings.timeout_s:g} s"
            ) from exc
        finally:
            self.pending -= 1

    async def _predict(self, data: bytes, name: str, *, cam: bool, preview: bool) -> Any:
        loop = asyncio.get_running_loop()
        upload = await loop.run_in_executor(self.intake, self.predictor.intake, data, name)
        try:
            future = self.batcher.submit(upload)
        except QueueFull:
            raise self.busy() from None
        row, screening = await asyncio.wrap_future(future)
        answer = self.predictor.answer
        if not (cam or preview):  # a dict to fill: no need to leave the event loop
            return answer(upload, row, screening)
        return await loop.run_in_executor(
            self.pool, lambda: answer(upload, row, screening, cam=cam, preview=preview)
        )

    def close(self) -> None:
        """Stop the batcher and the thread pools (queued work is dropped)."""
        self.batcher.close()
        self.intake.shutdown(wait=False, cancel_futures=True)
        self.pool.shutdown(wait=False, cancel_futures=True)


def create_app(
    model_path: str | Path,
    *,
    settings: ServeSettings | None = None,
    runtime: str = "torch",
    threads: int | None = None,
) -> FastAPI:
    """Build the app serving `model_path` (model file, run directory or `.onnx` file).

    Spooled uploads stay in temporary storage; a model file's ONNX graph is the graph
    cache's (`cxrkit.classifier.graph_cache`: exported once per model sha256); the model is
    loaded once here, before the first request. Uploads are decoded
    in a `DecodePool` of `settings.decode_workers` processes (started on first use).
    """
    settings = settings or ServeSettings()
    decode_pool = (
        DecodePool(
            settings.decode_workers,
            memory_mb=settings.decode_memory_mb,
            timeout_s=settings.decode_timeout_s,
            max_pixels=settings.max_pixels,
        )
        if settings.decode_workers > 0
        else None
    )
    predictor = FilmPredictor(
        model_path,
        runtime=runtime,
        max_pixels=settings.max_pixels,
        preview_size=settings.preview_size,
        threads=threads,
        decode_pool=decode_pool,
    )
    gate = Gate(settings, predictor)
    started = time.time()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        gate.close()
        if decode_pool is not None:
            decode_pool.close()
            log.info("decode pool closed")

    # /docs and /redoc with Swagger UI / ReDoc served from the package, no CDN: hospital
    # servers often have no internet.
    app = FastAPIOffline(
        title="cxrkit",
        version=__version__,
        description="Chest X-ray classification: upload a PNG, JPEG or DICOM film.",
        lifespan=lifespan,
    )
    app.state.predictor, app.state.settings, app.state.gate = predictor, settings, gate

    async def require_token(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if settings.token is None:
            return
        given = creds.credentials if creds else ""
        if not hmac.compare_digest(given.encode(), settings.token.encode()):
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong bearer token (send 'Authorization: Bearer <CXR_API_TOKEN>')",
            )

    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        return JSONResponse(
            {
                "detail": f"bad request ({where or 'input'}): send the film as multipart "
                "form field 'file' (PNG, JPEG or DICOM)",
                "error": "bad_request",
            },
            status_code=422,
        )

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        """Liveness: always open, no token needed."""
        return {"status": "ok", "uptime_s": round(time.time() - started, 1)}

    @app.get("/v1/model", tags=["model"], dependencies=[Depends(require_token)])
    def model_card() -> dict[str, Any]:
        """The model card: classes, task, preprocessing, thresholds, metrics, runtime."""
        return predictor.model_card()

    @app.post("/v1/predict", tags=["model"], dependencies=[Depends(require_token)])
    async def predict(
        file: Annotated[UploadFile, File(description="the film: PNG, JPEG or DICOM")],
        cam: Annotated[bool, Query(description="add a CAM heat map and overlay")] = False,
        preview: Annotated[bool, Query(description="add the decoded film as PNG")] = False,
    ) -> dict[str, Any]:
        """Class probabilities (keyed by class name), label, polarity, not-a-CXR, CAM."""
        data = await file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise too_large(settings.max_upload_bytes)
        name = Path(file.filename or "upload").name[:200] or "upload"
        return await gate.predict(data, name, cam=cam, preview=preview)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The web page: drop a film, see probabilities, CAM and warnings."""
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.rate_limit > 0:  # outermost: a client over its rate costs no body read
        app.add_middleware(
            RateLimitMiddleware,
            rate=settings.rate_limit,
            burst=settings.rate_burst,
            token=settings.token,
        )
    return app
