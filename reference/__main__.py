"""Command line of the reference deployment: ``python -m reference {train,serve,smoke,run}``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from oip.names import LOOPBACK
from reference.errors import HarnessError

EXIT_USER_ERROR = 2


def _cmd_train(args: argparse.Namespace) -> int:
    from reference.config import is_seed_dir
    from reference.train import build_models_dir, train_all

    models_dir = getattr(args, "models_dir", None)
    if models_dir is not None and not is_seed_dir(models_dir):
        built = build_models_dir(models_dir, force=args.force)
        state = "built" if built.built else "up to date"
        print(f"{models_dir}: {state} ({built.files} files recorded in .build.json)")
        return 0
    for result in train_all(force=args.force, data_dir=args.agaricus_dir):
        m = result.manifest
        state = "trained" if result.trained else "up to date"
        print(f"{result.model}: {state}; held-out accuracy {m['heldout']['accuracy']:.4f} "
              f"on {m['heldout']['rows']} rows; artifact sha256 {m['artifact']['sha256'][:12]}")
    return 0


def _server_from(args: argparse.Namespace):
    from reference.server import ReferenceServer

    if args.free_ports:
        ports = "free"
    elif args.http_port or args.grpc_port or args.metrics_port:
        ports = {"http_port": args.http_port, "grpc_port": args.grpc_port,
                 "metrics_port": args.metrics_port}
    else:
        ports = "settings"
    overrides = {}
    if args.parallel_workers is not None:
        overrides["parallel_workers"] = args.parallel_workers
    return ReferenceServer(models_dir=_models_dir(args), ports=ports, overrides=overrides,
                           startup_timeout=args.startup_timeout)


def _models_dir(args: argparse.Namespace) -> Path:
    from reference.paths import MODELS_DIR

    return Path(args.models_dir) if getattr(args, "models_dir", None) else MODELS_DIR


def _print_endpoints(server) -> None:
    e = server.endpoints
    first = server.models[0]
    example = f"/v2/models/{first.name}" + (f"/versions/{first.version}" if first.version else "") + "/infer"
    served = ", ".join(f"{m.name}:{m.version}" if m.version else f"{m.name} (unversioned)"
                       for m in server.models)
    print(f"MLServer is serving {served}")
    print(f"  REST    {e.rest_url}   (e.g. {e.rest_url}{example})")
    print(f"  gRPC    {e.grpc_target}")
    print(f"  metrics {e.metrics_url}")
    print(f"  log     {server.log_path}", flush=True)


def _cmd_serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with _server_from(args) as server:
        _print_endpoints(server)
        print("Ctrl-C or SIGTERM stops it.", flush=True)
        try:
            while not stop.is_set() and server.running:
                stop.wait(0.5)
        except KeyboardInterrupt:
            pass
        if not server.running:
            print(f"MLServer exited by itself; see {server.log_path}", file=sys.stderr)
            return 1
    print("stopped.")
    return 0


def _report_smoke(results) -> int:
    for r in results:
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.model}: {r.detail}")
    return 0 if all(r.ok for r in results) else 1


def _cmd_smoke(args: argparse.Namespace) -> int:
    from reference.smoke import run_smoke

    return _report_smoke(run_smoke(args.url, args.agaricus_dir, models_dir=_models_dir(args)))


def _cmd_run(args: argparse.Namespace) -> int:
    from reference.config import is_seed_dir
    from reference.smoke import run_smoke

    # A repository with a recipe (the seed, or a build.py) is built; one without serves what it holds.
    models_dir = args.models_dir
    if models_dir is None or is_seed_dir(models_dir) or (Path(models_dir) / "build.py").is_file():
        _cmd_train(argparse.Namespace(force=False, agaricus_dir=args.agaricus_dir, models_dir=models_dir))
    with _server_from(args) as server:
        _print_endpoints(server)
        code = _report_smoke(run_smoke(server.endpoints.rest_url, args.agaricus_dir,
                                       models_dir=_models_dir(args)))
    print("stopped the deployment.")
    return code


def _add_models_dir(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--models-dir", metavar="DIR", default=None,
                   help=f"the model repository {what} (default: models/, the two seed models)")


def _add_server_options(p: argparse.ArgumentParser) -> None:
    _add_models_dir(p, "to serve; its settings.json, if any, replaces the repository's")
    p.add_argument("--free-ports", action="store_true",
                   help="pick free ports instead of those in settings.json")
    p.add_argument("--http-port", type=int)
    p.add_argument("--grpc-port", type=int)
    p.add_argument("--metrics-port", type=int)
    p.add_argument("--parallel-workers", type=int, help="override settings.json")
    p.add_argument("--startup-timeout", type=float, default=120.0, metavar="SECONDS")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reference", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    data_help = "folder holding agaricus.txt.train/.test (default: $AGARICUS_DIR, cache, download)"

    p = sub.add_parser("train", help="train the seed models, or build --models-dir DIR (no work if current)")
    p.add_argument("--force", action="store_true", help="retrain even when up to date")
    _add_models_dir(p, "to build (another folder runs its own build.py)")
    p.add_argument("--agaricus-dir", help=data_help)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("serve", help="serve models/ (or --models-dir) on loopback until Ctrl-C")
    _add_server_options(p)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("smoke", help="send one checked request per model to a running deployment")
    p.add_argument("--url", default=None, help="REST base URL (default: the port in settings.json)")
    p.add_argument("--agaricus-dir", help=data_help)
    _add_models_dir(p, "whose models to call: one sample (or generated request) each")
    p.set_defaults(func=_cmd_smoke)

    p = sub.add_parser("run", help="train, serve, smoke, stop")
    _add_server_options(p)
    p.add_argument("--agaricus-dir", help=data_help)
    p.set_defaults(func=_cmd_run)
    return parser


def _default_url(models_dir: Path) -> str:
    from reference.config import read_server_settings, settings_file_for

    settings = read_server_settings(settings_file_for(models_dir))
    return f"http://{LOOPBACK}:{settings.get('http_port', 8080)}"


def main(argv: list[str] | None = None) -> int:
    from oip.errors import OipError

    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "url", "unset") is None:
            args.url = _default_url(_models_dir(args))
        return args.func(args)
    except (HarnessError, OipError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
