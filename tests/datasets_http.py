"""A local HTTP server for downloader tests: scripted answers per path, recorded requests.

Each path has a body and a list of behaviours used one per request (the last one repeats):
`ok`, `500`, `truncate:N` (send N bytes of the answer, then close), `stall` (headers,
then silence), `slow:SECONDS` (the answer in 4 KiB chunks, pausing between them) and
`norange` (ignore Range, answer 200 with the whole body). Range requests get a 206.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Script:
    """Bodies and behaviours by path, and the (path, Range header, bytes sent) log."""

    bodies: dict[str, bytes] = field(default_factory=dict)
    behaviours: dict[str, list[str]] = field(default_factory=dict)
    log: list[tuple[str, str | None, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def next_behaviour(self, path: str) -> str:
        todo = self.behaviours.get(path, ["ok"])
        return todo.pop(0) if len(todo) > 1 else todo[0]


def _handler(script: Script):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):  # noqa: N802 (http.server's name)
            path = self.path if self.path in script.bodies else self.path.split("?")[0]
            if path not in script.bodies:
                self.send_error(404)
                return
            body = script.bodies[path]
            how = script.next_behaviour(path)
            rng = self.headers.get("Range")
            if how == "500":
                script.log.append((path, rng, 0))
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            if rng and how != "norange":
                start = int(rng.removeprefix("bytes=").split("-")[0])
            part = body[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            sent = 0
            try:
                if how == "stall":
                    script.stop.wait(30)
                elif how.startswith("truncate:"):
                    sent = int(how.split(":")[1])
                    self.wfile.write(part[:sent])
                    self.wfile.flush()
                    self.close_connection = True
                elif how.startswith("slow:"):
                    pause = float(how.split(":")[1])
                    for i in range(0, len(part), 4096):
                        if script.stop.is_set():
                            break
                        self.wfile.write(part[i : i + 4096])
                        self.wfile.flush()
                        sent += len(part[i : i + 4096])
                        time.sleep(pause)
                else:
                    self.wfile.write(part)
                    sent = len(part)
            except (BrokenPipeError, ConnectionResetError):
                pass
            script.log.append((path, rng, sent))

    return Handler


class LocalServer:
    """`with LocalServer(script) as url:` serves `script` on 127.0.0.1 in a thread."""

    def __init__(self, script: Script):
        self.script = script
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
        self.httpd.daemon_threads = True

    def __enter__(self) -> str:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self.script.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
