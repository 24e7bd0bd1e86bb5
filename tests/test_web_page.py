"""The web page in headless Chromium: token, upload a film, figures equal the API's, CAM slider."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api", reason="python package playwright missing")

import httpx  # noqa: E402

from cxrkit.serve import ServeSettings, create_app  # noqa: E402
from serve_helpers import kermany_films, save_random_model, serve_in_thread  # noqa: E402
from tools import missing_tool  # noqa: E402

TOKEN = "page-token"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def chromium_path() -> str:
    """Debian's Chromium (or $CXR_CHROMIUM); skip when there is none."""
    for candidate in (
        os.environ.get("CXR_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        "/usr/bin/chromium",
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    missing_tool(
        "no Chromium found (or set CXR_CHROMIUM=/path/to/chromium)", "apt-get install chromium"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    model = save_random_model(tmp_path_factory.mktemp("web-model") / "model.safetensors")
    app = create_app(model, settings=ServeSettings(token=TOKEN))
    with serve_in_thread(app) as base:
        yield base


@pytest.fixture()
def page(server: str):
    exe = chromium_path()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1100, "height": 820})
            pg.errors = []  # type: ignore[attr-defined]
            pg.on("pageerror", lambda e: pg.errors.append(str(e)))  # type: ignore[attr-defined]
            pg.on(
                "console",
                lambda m: m.type == "error" and pg.errors.append(m.text),  # type: ignore[attr-defined]
            )
            yield pg
        finally:
            browser.close()


def _api(server: str, film: Path) -> dict:
    r = httpx.post(
        f"{server}/v1/predict?cam=true",
        files={"file": (film.name, film.read_bytes())},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()


def _upload(page, film: Path) -> None:
    page.set_input_files("#file", str(film))
    page.wait_for_function(  # a function, not a string: the page's CSP forbids eval
        """name => document.querySelector('#file-info').textContent.startsWith(name)
            && document.querySelector('#result').dataset.state === 'done'""",
        arg=film.name,
        timeout=60_000,
    )


def _screenshot(page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    if os.environ.get("CXR_SCREENSHOT_DIR"):
        Path(os.environ["CXR_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["CXR_SCREENSHOT_DIR"]) / path.name)


def test_upload_shows_the_apis_figures(
    page, server: str, kermany_dir: Path, samples_dir: Path, tmp_path: Path
) -> None:
    film = kermany_films(kermany_dir, 1)[0]
    api = _api(server, film)

    page.goto(server)
    page.wait_for_selector("#token-row:not([hidden])")  # the API said 401: ask for the token
    page.fill("#token", TOKEN)
    page.click("#token-save")
    page.wait_for_function(
        "() => document.querySelector('#model-info').textContent.includes('small_cnn')"
    )
    _upload(page, film)

    assert page.inner_text("#label") == api["label"]
    bars = page.query_selector_all("#bars .bar")
    assert [b.get_attribute("data-class") for b in bars] == list(api["probabilities"])
    for bar in bars:
        p = api["probabilities"][bar.get_attribute("data-class")]
        assert float(bar.get_attribute("data-prob")) == p
        assert bar.query_selector(".value").inner_text() == f"{p * 100:.1f}%"
    assert page.eval_on_selector("#film", "img => img.naturalWidth") == 224

    if api["cam"] is not None:
        assert page.is_visible("#cam")
        page.fill("#opacity", "25")
        assert page.eval_on_selector("#cam", "el => getComputedStyle(el).opacity") == "0.25"
        assert page.inner_text("#opacity-value") == "25%"
        page.fill("#opacity", "60")
    else:
        assert api["unavailable"]["cam"] in page.inner_text("#cam-missing")
    for key in ("polarity", "not_cxr"):
        if api[key] is None:
            assert api["unavailable"][key] in page.inner_text("#notes")
    assert page.query_selector_all(".warning") == [] or api["warnings"]
    _screenshot(page, tmp_path / "web_page.png")

    # A DICOM tagged MONOCHROME1 over already-inverted pixels: shown, and flagged negative.
    dcm = samples_dir / "Fake_MONOHR1.dcm"
    api = _api(server, dcm)
    _upload(page, dcm)
    assert page.inner_text("#label") == api["label"]
    assert "DICOM" in page.inner_text("#file-info")
    if api["polarity"] is not None and api["polarity"]["label"] == "negative":
        assert "inverted" in page.inner_text("#warnings")
    _screenshot(page, tmp_path / "web_page_dicom.png")

    bad = tmp_path / "notes.png"
    bad.write_text("this is not a film")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#result[data-state=error]")
    assert "not a PNG, JPEG or DICOM" in page.inner_text("#error")
    # 401 / 415 answers show up as "Failed to load resource"; anything else (a script error,
    # a content-security-policy refusal) is a bug.
    assert not [e for e in page.errors if "Failed to load resource" not in e], page.errors
