"""`cxr serve` and `cxr export`: the REST API / web page, and ONNX export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cxrkit.classifier.runtimes import runtime_help
from cxrkit.errors import CxrkitError

console = Console(stderr=True)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def register(app: typer.Typer) -> None:
    """Attach `serve` and `export` to the top-level app."""
    app.command("serve")(serve_cmd)
    app.command("export")(export_cmd)


def serve_cmd(
    model: Annotated[Path, typer.Argument(help="model file, run directory or exported .onnx")],
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    runtime: Annotated[str, typer.Option(help=runtime_help())] = "torch",
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="largest accepted upload")] = 50,
    timeout: Annotated[
        float, typer.Option(min=0.01, help="seconds before a prediction gets 504")
    ] = 60,
    rate_limit: Annotated[
        str, typer.Option(help="requests per client (IP, or the token): N/s, N/min or 'off'")
    ] = "50/s",
    rate_burst: Annotated[
        int, typer.Option(min=1, help="requests a client may send at once above the rate")
    ] = 100,
    decode_workers: Annotated[
        int, typer.Option(min=0, help="processes decoding uploads (0: in-process, debug only)")
    ] = 2,
    decode_memory_mb: Annotated[
        int, typer.Option(min=64, help="memory cap of each decode worker")
    ] = 2048,
    decode_timeout: Annotated[
        float, typer.Option(help="seconds before one decode is given up (422)")
    ] = 20,
    shutdown_grace: Annotated[
        float, typer.Option(help="on SIGTERM/SIGINT, seconds in-flight requests may take")
    ] = 90,
    max_batch: Annotated[
        int, typer.Option(min=1, help="films per model forward (micro-batching; 1: one by one)")
    ] = 16,
    batch_wait_ms: Annotated[
        float, typer.Option(min=0, help="ms a film waits for others to share its forward")
    ] = 5,
    max_queue: Annotated[
        int, typer.Option(min=1, help="predictions in the server before 503 + Retry-After")
    ] = 64,
) -> None:
    """Serve MODEL: REST API (/v1/predict, /v1/model, /healthz, /docs) and a web page at /.

    Set CXR_API_TOKEN to require 'Authorization: Bearer <token>' on /v1/*. SIGTERM or
    Ctrl+C stops accepting, finishes the requests in flight, then exits 0.
    """
    from cxrkit.cli.threads import passive_openmp_waits

    passive_openmp_waits()  # before torch loads
    try:
        from cxrkit.serve import ServeSettings, create_app
        from cxrkit.serve.ratelimit import parse_rate
        from cxrkit.serve.server import run_server
    except ImportError as exc:
        raise CxrkitError(f"serving needs the extra: pip install 'cxrkit[serve]' ({exc})") from exc
    try:
        rate = parse_rate(rate_limit)
    except ValueError as exc:
        raise CxrkitError(f"--rate-limit: {exc}") from exc
    if decode_timeout <= 0 or shutdown_grace < 0:
        raise CxrkitError("--decode-timeout must be > 0 and --shutdown-grace >= 0")
    settings = ServeSettings(
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        timeout_s=timeout,
        rate_limit=rate,
        rate_burst=rate_burst,
        decode_workers=decode_workers,
        decode_memory_mb=decode_memory_mb,
        decode_timeout_s=decode_timeout,
        shutdown_grace_s=shutdown_grace,
        max_batch=max_batch,
        batch_wait_ms=batch_wait_ms,
        max_queue=max_queue,
    )
    if host not in LOOPBACK and settings.token is None:
        console.print(
            f"[bold yellow]warning:[/] listening on {host} without CXR_API_TOKEN: "
            "anyone who reaches this port can use the model",
            highlight=False,
        )
    app = create_app(model, settings=settings, runtime=runtime)
    console.print(f"serving {model} ({runtime}) on http://{host}:{port}/", highlight=False)
    if run_server(app, host, port, settings):
        console.print("server stopped: in-flight requests finished", highlight=False)


def export_cmd(
    model: Annotated[Path, typer.Argument(help="model file or run directory")],
    out: Annotated[Path, typer.Option(help="where the .onnx file goes")],
    format: Annotated[
        str, typer.Option("--format", help="onnx | onnx-int8 (static int8, needs --calibration)")
    ] = "onnx",
    opset: Annotated[int, typer.Option(help="ONNX opset")] = 17,
    check: Annotated[
        bool, typer.Option(help="compare ONNX runtime and torch on random films")
    ] = True,
    calibration: Annotated[
        Path | None,
        typer.Option(help="onnx-int8: the training data; films of the run's train split"),
    ] = None,
    calibration_films: Annotated[
        int, typer.Option(min=1, help="onnx-int8: calibration films drawn")
    ] = 256,
    check_data: Annotated[
        Path | None,
        typer.Option(help="onnx-int8: labelled set for the accuracy change (default: test split)"),
    ] = None,
) -> None:
    """Export MODEL to ONNX (dynamic batch; the model card rides along as metadata).

    `--format onnx-int8` writes a statically quantized graph calibrated on training films
    (`--calibration`), with its calibration set and measured accuracy change in the card.
    """
    if format.lower() == "onnx-int8":
        _export_int8(model, out, calibration, calibration_films, check_data)
        return
    if format.lower() != "onnx":
        raise CxrkitError(f"--format {format}: use 'onnx' or 'onnx-int8'")
    try:
        import onnx  # noqa: F401

        from cxrkit.classifier import Classifier
        from cxrkit.classifier.onnx_runtime import torch_onnx_max_diff
    except ImportError as exc:  # pragma: no cover - onnx missing
        raise CxrkitError(f"ONNX export needs: pip install 'cxrkit[serve]' ({exc})") from exc
    clf = Classifier.load(model, device="cpu")
    path, card = clf.export_onnx(out, opset=opset)
    size_mb = path.stat().st_size / 1e6
    msg = f"wrote {path} ({size_mb:.1f} MB, {card.architecture}, classes {list(card.class_names)})"
    if check:
        import torch

        s = card.size
        films = torch.rand(3, 1, s, s, generator=torch.Generator().manual_seed(0))
        diff = torch_onnx_max_diff(clf.net, path, films)
        msg += f"; max |logit difference| vs torch = {diff:.2e}"
        if diff > 1e-4:
            raise CxrkitError(f"{path}: ONNX differs from torch by {diff:.2e} (> 1e-4)")
    console.print(msg, highlight=False)


def _export_int8(
    model: Path, out: Path, calibration: Path | None, n_films: int, check_data: Path | None
) -> None:
    """`cxr export --format onnx-int8`: quantize, print the accuracy change it measured."""
    if calibration is None:
        raise CxrkitError("--format onnx-int8 needs --calibration (the model's training data)")
    from cxrkit.classifier.runtimes import check_runtime
    from cxrkit.export.quantize import quantize_model

    check_runtime("onnx-int8")
    path, card = quantize_model(model, out, calibration, n_films=n_films, check=check_data)
    change = (card.provenance.quantization or {})["accuracy_change"]

    def fig(key: str) -> str:
        return "n/a" if change[key] is None else f"{change[key]:.4f}"

    console.print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, int8); on {change['name']} "
        f"({change['films']} films): AUC {fig('auc_fp32')} -> {fig('auc_int8')}, "
        f"accuracy {fig('accuracy_fp32')} -> {fig('accuracy_int8')}",
        highlight=False,
    )
    if not change["within_tolerance"]:
        console.print(
            "[bold yellow]warning:[/] int8 loses more than 0.002 AUC or 0.5 points of "
            "accuracy against fp32: prefer --runtime onnx",
            highlight=False,
        )
