"""Bad uploads and bad callers get a clear 4xx, and the server keeps serving."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from cxrkit.serve import ServeSettings, create_app  # noqa: E402
from serve_helpers import (  # noqa: E402
    kermany_films,
    png_bomb,
    rss_bytes,
    save_random_model,
    serve_subprocess,
)

TOKEN = "s3cret-token"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_model(tmp_path_factory.mktemp("bad-model") / "model.safetensors")


@pytest.fixture(scope="module")
def film_bytes(kermany_dir: Path) -> bytes:
    return kermany_films(kermany_dir, 1)[0].read_bytes()


@pytest.fixture(scope="module")
def client(model_file: Path) -> Iterator[TestClient]:
    settings = ServeSettings(token=TOKEN, max_upload_bytes=5 * MB, max_pixels=20_000_000)
    with TestClient(create_app(model_file, settings=settings)) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


def _post(client: TestClient, data: bytes, name: str = "f.png") -> httpx.Response:
    return client.post("/v1/predict", files={"file": (name, data)})


@pytest.mark.parametrize(
    ("kind", "status", "code", "words"),
    [
        ("empty", 400, "empty_file", "empty file"),
        ("truncated", 422, "corrupt_image", "truncated"),
        ("text", 415, "unsupported_format", "plain text"),
        ("bomb", 413, "too_many_pixels", "decompression bomb"),
        ("too_big", 413, "upload_too_large", "larger than the limit"),
    ],
)
def test_bad_upload_is_refused_clearly_and_server_keeps_serving(
    client: TestClient, film_bytes: bytes, kind: str, status: int, code: str, words: str
) -> None:
    data = {
        "empty": b"",
        "truncated": film_bytes[: len(film_bytes) // 3],
        "text": b"patient,label\n001,pneumonia\n",
        "bomb": png_bomb(),
        "too_big": b"\x89PNG\r\n\x1a\n" + b"\0" * (6 * MB),
    }[kind]
    r = _post(client, data, name=f"{kind}.png")
    assert r.status_code == status, r.text
    assert r.json()["error"] == code
    assert words in r.json()["detail"]
    assert _post(client, film_bytes).status_code == 200  # still serving


def test_token_is_required_on_the_api_but_not_on_health(
    client: TestClient, film_bytes: bytes
) -> None:
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
        r = client.post("/v1/predict", files={"file": ("f.png", film_bytes)}, headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        assert client.get("/v1/model", headers=headers).status_code == 401
    assert client.get("/healthz", headers={"Authorization": ""}).status_code == 200
    assert client.get("/v1/model").status_code == 200


def test_missing_file_field_and_declared_oversize(client: TestClient) -> None:
    r = client.post("/v1/predict", data={"film": "x"})
    assert r.status_code == 422 and "field 'file'" in r.json()["detail"]
    r = client.post("/v1/predict", content=b"x" * 10, headers={"Content-Length": str(200 * MB)})
    assert r.status_code == 413 and r.json()["error"] == "upload_too_large"


def test_chunked_body_without_length_is_cut_off_at_the_limit(client: TestClient) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(50):  # 50 MB offered in 1 MB chunks, no Content-Length
            yield b"\0" * MB

    r = client.post(
        "/v1/predict",
        content=body(),
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert r.status_code == 413 and r.json()["error"] == "upload_too_large"


def test_slow_prediction_times_out_with_504(model_file: Path, film_bytes: bytes) -> None:
    app = create_app(model_file, settings=ServeSettings(token=None, timeout_s=1e-4))
    with TestClient(app) as c:
        r = _post(c, film_bytes)
        assert r.status_code == 504 and r.json()["error"] == "timeout"
        assert c.get("/healthz").status_code == 200


def _read_response(s: socket.socket) -> str:
    """One HTTP response (head plus Content-Length body) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE).group(1))
    while len(body) < length:
        body += s.recv(65536)
    return (head + b"\r\n\r\n" + body).decode("latin-1")


def test_real_server_refuses_200mb_before_reading_it(model_file: Path, film_bytes: bytes):
    """uvicorn on loopback: a declared 200 MB upload gets 413 before its first body byte."""
    with serve_subprocess(model_file) as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        rss_before = rss_bytes(proc.pid)
        head = (
            "POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {200 * MB}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(head)  # headers only: the answer must not wait for the body
            reply = _read_response(s)
            assert reply.startswith("HTTP/1.1 413"), reply[:200]
            assert "upload_too_large" in reply
            sent = 0
            with pytest.raises(OSError):  # the server closed: the rest cannot be sent
                while sent < 200 * MB:
                    s.sendall(b"\0" * MB)
                    sent += MB
            assert sent < 50 * MB
        time.sleep(0.2)
        assert rss_bytes(proc.pid) - rss_before < 50 * MB
        r = httpx.post(f"{base}/v1/predict", files={"file": ("f.png", film_bytes)}, timeout=60)
        assert r.status_code == 200, r.text
