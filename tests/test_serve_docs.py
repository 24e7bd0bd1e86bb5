"""`/docs` and `/redoc` of `cxr serve` work offline: every script, style and icon is ours."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from cxrkit.serve import ServeSettings, create_app  # noqa: E402
from serve_helpers import save_random_model  # noqa: E402


class _Assets(HTMLParser):
    """The URLs a page loads: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (tag, name) in {("script", "src"), ("link", "href"), ("img", "src")}:
                self.urls.append(value)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    model = save_random_model(tmp_path_factory.mktemp("docs-model") / "model.safetensors")
    with TestClient(create_app(model, settings=ServeSettings(token=None))) as c:
        yield c


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_the_network(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200
    assert not re.search(r"https?://", r.text), re.findall(r"https?://\S+", r.text)
    parser = _Assets()
    parser.feed(r.text)
    assert any(u.endswith(".js") for u in parser.urls), parser.urls
    for url in parser.urls:  # the JS, CSS and icon come from this server
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert client.get("/openapi.json").json()["openapi"].startswith("3.")


def test_swagger_ui_reads_openapi_3_1(client: TestClient) -> None:
    """FastAPI writes OpenAPI 3.1, which Swagger UI renders from version 5 on."""
    parser = _Assets()
    parser.feed(client.get("/docs").text)
    js = next(u for u in parser.urls if u.endswith("swagger-ui-bundle.js"))
    version = re.search(r'version="(\d+)\.', client.get(js).text)
    assert version and int(version.group(1)) >= 5
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")


def test_the_docs_build_from_the_readme_and_docstrings() -> None:
    """`make docs` (mkdocs --strict) pulls the README's Python section in by markers."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert readme.count("--8<-- [start:python]") == 1 and readme.count("--8<-- [end:python]") == 1


def test_swagger_ui_renders_in_chromium_with_the_network_cut(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Headless Chromium may reach only the server: /docs still lists the endpoints."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from serve_helpers import serve_in_thread
    from test_web_page import CHROMIUM_ARGS, chromium_path

    exe = chromium_path()
    model = save_random_model(tmp_path_factory.mktemp("docs-web") / "model.safetensors")
    app = create_app(model, settings=ServeSettings(token=None))
    with serve_in_thread(app) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            outside: list[str] = []

            def only_local(route) -> None:
                if route.request.url.startswith(base):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_local)
            page.goto(f"{base}/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
        finally:
            browser.close()
    assert {"/v1/predict", "/v1/model", "/healthz"} <= {p.strip() for p in paths}
    assert outside == []
