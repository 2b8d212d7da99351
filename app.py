"""Composition root: read config, build engine + store + model manager, build UI, mount API, serve.

    python app.py [--config PATH] [--demo] [--share] [--public-share-i-understand] [--host H] [--port P]
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import time
from dataclasses import replace

from config import AppConfig, ConfigError, load_config


def phase(text: str) -> None:
    """A start or stop step on the terminal, with the seconds since the process began: a start that talks."""
    import psutil

    print(f"[{time.time() - psutil.Process().create_time():5.1f} s] {text}", flush=True)


# gradio/component_meta.py: ComponentMeta calls this for every component class gradio defines, and it parses the
# class's whole source file to (re)write a .pyi stub beside it: a tool for people writing components, run on every
# `import gradio`. The wheel ships the stubs.
GRADIO_STUB_WRITER = ("gradio.component_meta", "create_or_modify_pyi")


class _SkipGradioStubWriter:
    """An import hook that loads gradio.component_meta as usual, then makes its stub writer do nothing: `import
    gradio` took 2.95 s of CPU instead of 4.98 s (median of 5 A/B pairs of fresh processes: `python -m bench start`,
    docs/benchmarks.md), paid by every start. tests/test_start_stop.py checks that gradio still has the name and
    still calls it."""

    def find_spec(self, name: str, path, target=None):
        if name != GRADIO_STUB_WRITER[0]:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module) -> None:
            load(module)
            if hasattr(module, GRADIO_STUB_WRITER[1]):
                setattr(module, GRADIO_STUB_WRITER[1], lambda *args, **kwargs: None)

        spec.loader.exec_module = exec_module
        return spec


def skip_gradio_stub_writer() -> None:
    """Install _SkipGradioStubWriter, before anything imports gradio (a no-op once gradio is imported)."""
    if GRADIO_STUB_WRITER[0] not in sys.modules and not any(isinstance(f, _SkipGradioStubWriter)
                                                             for f in sys.meta_path):
        sys.meta_path.insert(0, _SkipGradioStubWriter())


PUBLIC_SHARE_FLAG = "--public-share-i-understand"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Local multimodal chat over Mistral-7B-Instruct.")
    p.add_argument("--config", default="config.json", help="config file (default: config.json)")
    p.add_argument("--demo", action="store_true", help="load the tiny demo model (random weights, no download)")
    p.add_argument("--share", action="store_true", help="open a Gradio share link (needs auth, see README)")
    p.add_argument(PUBLIC_SHARE_FLAG, dest="public_share", action="store_true",
                   help="allow --share without login: anyone with the link may use this machine and its GPU")
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
    return read_config_from(load_config(args.config), args)


def read_config_from(cfg: AppConfig, args: argparse.Namespace) -> AppConfig:
    """Flags override config.json: --share, --public-share-i-understand."""
    server = cfg.server
    if args.share:
        server = replace(server, share=True)
    if args.public_share:
        server = replace(server, allow_public_share=True)
    return replace(cfg, server=server)


def check_share(cfg: AppConfig, users: list | None) -> None:
    """A share link without login would hand the GPU to anyone who finds the link: refuse unless told."""
    if cfg.server.share and not users and not cfg.server.allow_public_share:
        raise ConfigError("server.share: a share link needs login (server.auth_file or APP_USERS=user:pw), or "
                          f"server.allow_public_share=true / {PUBLIC_SHARE_FLAG} to let anyone with the link "
                          "use this machine and its GPU")


def want_demo(args: argparse.Namespace) -> bool:
    """--demo or APP_DEMO=1. (On a Space, space_profile picks a model that fits the hardware.)"""
    return bool(args.demo or os.environ.get("APP_DEMO", "").lower() in ("1", "true", "yes"))


def start_zerogpu() -> None:
    """ZeroGPU only. `spaces` (0.51.3) runs its start-up (pack the weights moved to "cuda", report the
    spaces.GPU functions) from a hook on gr.Blocks.launch; this app mounts Gradio on its own FastAPI app
    and never calls launch, so run that hook's task here, once, after the models and the decorated
    functions exist."""
    from ui.gradio_bridge import take_zerogpu_startup

    take_zerogpu_startup()()


def build_manager(cfg: AppConfig, engine, *, demo: bool):
    """One memory budget for all models: the chat engine (already loaded, never evicted) plus the image
    and speech models, registered now and loaded on first use, so startup stays fast."""
    from engine.manager import ModelManager, register_media_models

    manager = ModelManager.from_config(cfg.engine)
    if not engine.remote:
        manager.register_loaded("chat", engine)
    register_media_models(manager, cfg.engine, demo=demo)
    return manager


def build_app(cfg: AppConfig, *, demo: bool, config_path: str | None = None, users: list | None = None,
              host: str | None = None, notices: tuple = ()):
    """Everything the server serves: the engine, the session store, the Gradio UI and the HTTP API."""
    import gradio as gr

    from api import build_api
    from api.assets import StaticAsset
    from api.auth import key_policy
    from engine.chat import ChatEngine
    from engine.serving.admission import Admission
    from engine.switching import ModelSwitch
    from sessions import SessionStore
    from ui import CSS, JS, build_ui, make_i18n
    from ui.gradio_bridge import mark_launched
    from ui.icons import FONT_FILE, font_url
    from ui.queue_limits import queue_as_engine
    from ui.quiet import quiet_queue
    from ui.owners import Owners, browser_secret
    from ui.services import Services

    policy = key_policy(cfg, host, login=bool(users))  # before the model: a refusal costs no load
    phase(f"loading the chat model ({'demo' if demo else cfg.engine.model})…")
    engine = ChatEngine.load(cfg.engine, demo=demo, admission=Admission.from_config(cfg.server))
    print(f"[model] {engine.report.summary()}", flush=True)
    if engine.report.notice:
        print(f"[model] {engine.report.notice}", flush=True)
    store = SessionStore(cfg.sessions.path)
    manager = build_manager(cfg, engine, demo=demo)
    # The one holder of the chat engine: the page, the endpoints and /v1 reach it only through this (a switch
    # in the Models tab or the switch_model endpoint replaces it, and nothing else keeps the old one).
    models = ModelSwitch(engine, cfg.engine, admission=Admission.from_config(cfg.server), manager=manager)
    del engine
    # Settings and training change this machine: beyond loopback (LAN, share, Space) they need a login (or,
    # for a script, the API key).
    services = Services(cfg, models, store, manager, config_path=config_path, public=policy.settings_locked,
                        api_key=policy.key)
    phase("building the page…")
    blocks = build_ui(services, Owners(auth=bool(users)), browser_secret(cfg.sessions.path), notices=notices)
    # engine.max_concurrent as resolved ("auto": sized from memory at load): the UI runs as many chats as the engine
    queue_as_engine(blocks, models, max_size=cfg.server.queue_size)   # and again after a model switch
    quiet_queue(blocks)  # no 1 ms polling while idle (ui/quiet.py)
    api = build_api(cfg, models, host=host, manager=manager, policy=policy, door=services.chat,
                    assets=[StaticAsset(font_url(), FONT_FILE, "font/ttf")])   # the icon font, fetched once
    app = gr.mount_gradio_app(api, blocks, path="/", max_file_size=f"{cfg.server.max_upload_mb}mb",
                              auth=users, auth_message="Local Mistral Chat · 로그인", i18n=make_i18n(), css=CSS, js=JS,
                              run_history=False, footer_links=["api", "gradio", "settings"])
    # mount_gradio_app leaves has_launched False, and with it Gradio skips its check that a file path sent
    # by a client was really uploaded (else a client could name any server file as "its" image).
    mark_launched(blocks)
    app.state.services = services
    return app


def open_share_link(server, host: str, port: int, timeout: float = 60.0) -> None:
    """After the server is up, ask Gradio's share service for a public https link; offline, warn and go on."""
    from gradio.networking import setup_tunnel

    deadline = time.time() + timeout
    while not server.started and time.time() < deadline:
        time.sleep(0.2)
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    try:
        url = setup_tunnel(local, port, secrets.token_urlsafe(32), None, None)
    except Exception as exc:  # noqa: BLE001 - no network, blocked port, missing frpc: still serving locally
        print(f"[share] could not open a share link ({type(exc).__name__}: {str(exc)[:200]}); "
              f"still serving locally at http://{local}:{port}", flush=True)
        return
    print(f"[share] public link: {url}", flush=True)


def serve(app, host: str, port: int):
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, saying when it is ready and when Ctrl+C arrived."""

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                phase(f"ready at http://{host}:{port}")

        def handle_exit(self, sig, frame) -> None:
            if not self.should_exit:
                phase("stopping (Ctrl+C)…" if sig == 2 else "stopping…")
            super().handle_exit(sig, frame)

    # Open streams (SSE heartbeats) would hold a shutdown; Ctrl+C must be done in a few seconds.
    return Server(uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1))


def serve_locked(space_id: str, missing: tuple[str, ...], host: str, port: int) -> int:
    """A Space with a missing or malformed secret: a page naming it (ui/locked.py), not a crash loop."""
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from ui.locked import build_locked_page, locked_mount_options

    api = FastAPI(title="Local Mistral Chat (locked)")

    @api.get("/health")
    def health() -> JSONResponse:
        return JSONResponse({"status": "locked", "space": space_id, "missing_secrets": list(missing)},
                            status_code=503)

    app = gr.mount_gradio_app(api, build_locked_page(missing), path="/", **locked_mount_options())
    print(f"[server] http://{host}:{port} (locked until {', '.join(missing)} is set)", flush=True)
    serve(app, host, port).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    from engine.serving import zerogpu

    skip_gradio_stub_writer()
    zerogpu.import_first()  # ZeroGPU: `spaces` must patch torch before anything touches CUDA
    import space_profile

    args = parse_args(argv)
    phase("starting…")
    try:
        cfg = read_config(args)
        host, port = server_address(args, cfg)
        space = space_profile.detect(cfg)
        cfg = space_profile.apply(cfg, space)
        if space is not None:
            print(f"[space] {space_profile.describe(space)}", flush=True)
        if space is not None and space.locked:  # a page naming the missing secrets, not a crash loop
            return serve_locked(space.space_id, space.missing, host, port)
        phase("importing torch, transformers and gradio…")
        from ui.owners import load_users

        from api.auth import key_policy

        try:
            users = load_users(cfg.server.auth_file)
        except ConfigError as exc:
            if space is None:
                raise
            # The detail goes to the Space's logs (its owner) only: it may quote part of a password.
            print(f"config error: {exc}", file=sys.stderr)
            return serve_locked(space.space_id, (space_profile.USERS_SECRET,), host, port)
        check_share(cfg, users)
        policy = key_policy(cfg, host, login=bool(users))  # refuse a keyless public server before loading
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    notices = ("space.no_storage",) if space is not None and space.storage is None else ()
    try:
        app = build_app(cfg, demo=want_demo(args), config_path=args.config, users=users, host=host,
                        notices=notices)
    except ConfigError as exc:  # e.g. api.auth.ApiKeyRequired: reachable beyond loopback without a key
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if users:
        print(f"[auth] login required ({len(users)} user(s))", flush=True)
    elif policy.public and not policy.open_ui:
        print(f"[auth] reachable beyond this machine ({policy.why}) without a login: the API and every Gradio "
              f"route need {policy.env_name} (Authorization: Bearer); settings and training are read-only. "
              "Browsers elsewhere need a login: server.auth_file or APP_USERS", flush=True)
    if cfg.server.share and not users:
        print("[share] WARNING: public share without login: anyone with the link can use this machine's GPU",
              flush=True)
    if zerogpu.enabled():
        start_zerogpu()
    server = serve(app, host, port)
    if cfg.server.share:
        threading.Thread(target=open_share_link, args=(server, host, port), daemon=True, name="share").start()
    print(f"[server] http://{host}:{port}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:   # uvicorn re-raises the Ctrl+C it handled: already stopped, no traceback
        pass
    finally:
        phase("closing the model…")
        # The batching thread may take seconds to notice; the process ends right after, so wait a moment only.
        closer = threading.Thread(target=app.state.services.engine.close, daemon=True, name="close-engine")
        closer.start()
        closer.join(1.0)
        phase("stopped")
    return 0


if __name__ == "__main__":
    code = main()
    # Everything of ours is closed and saved by now; the interpreter's own teardown of a process holding
    # models takes seconds more (measured 3 s of a 5 s Ctrl+C), so run the exit hooks and leave.
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
