"""Composition root: read config, build engine + store, build UI, mount API, launch.

    python app.py [--config PATH] [--demo] [--share] [--host H] [--port P]
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

from engine.config import AppConfig, ConfigError, load_config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Local multimodal chat over Mistral-7B-Instruct.")
    p.add_argument("--config", default="config.json", help="config file (default: config.json)")
    p.add_argument("--demo", action="store_true", help="load the tiny demo model (random weights, no download)")
    p.add_argument("--share", action="store_true", help="open a Gradio share link (needs auth, see README)")
    p.add_argument("--host", help="address to listen on (else GRADIO_SERVER_NAME, else server.host)")
    p.add_argument("--port", type=int, help="port (else GRADIO_SERVER_PORT, else server.port)")
    return p.parse_args(argv)


def server_address(args: argparse.Namespace, cfg: AppConfig) -> tuple[str, int]:
    """Flags win, then Gradio's environment variables, then config.json."""
    host = args.host or os.environ.get("GRADIO_SERVER_NAME") or cfg.server.host
    port_text = args.port or os.environ.get("GRADIO_SERVER_PORT") or cfg.server.port
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"GRADIO_SERVER_PORT: {port_text!r} is not a port number") from None
    return host, port


def read_config(args: argparse.Namespace) -> AppConfig:
    cfg = load_config(args.config)
    if args.share:
        cfg = replace(cfg, server=replace(cfg.server, share=True))
    return cfg


def build_app(cfg: AppConfig, *, demo: bool):
    """Everything the server serves: the engine, the session store, the Gradio UI and the HTTP API."""
    import gradio as gr

    from api import build_api
    from engine.chat import ChatEngine
    from sessions import SessionStore
    from ui import build_ui

    engine = ChatEngine.load(cfg.engine, demo=demo)
    print(f"[model] {engine.report.summary()}", flush=True)
    if engine.report.notice:
        print(f"[model] {engine.report.notice}", flush=True)
    store = SessionStore(cfg.sessions.path)
    blocks = build_ui(cfg, engine, store)
    blocks.queue(default_concurrency_limit=cfg.engine.max_concurrent, max_size=cfg.server.queue_size)
    api = build_api(cfg, engine)
    return gr.mount_gradio_app(api, blocks, path="/", max_file_size=f"{cfg.server.max_upload_mb}mb")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = read_config(args)
        host, port = server_address(args, cfg)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    app = build_app(cfg, demo=args.demo)
    print(f"[server] http://{host}:{port}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
