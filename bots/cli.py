"""The ``switchboard`` command line (also ``python -m bots``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence

from bots.settings import Settings
from observability.logging import configure_logging
from observability.tracing import configure_tracing, shutdown_tracing

log = logging.getLogger("switchboard")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 1 and 65535")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the web process (Slack, widget, admin API)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=os.environ.get("PORT") or "8000",
                       help="TCP port (default: $PORT or 8000)")
    serve.add_argument("--no-scheduler", action="store_true",
                       help="on the embedded defaults serve also runs the scheduler's "
                            "jobs; this turns them off")
    serve.add_argument("--no-discord", action="store_true",
                       help="on the embedded defaults serve also runs the Discord gateway "
                            "when a bot token is set; this turns it off")
    serve.add_argument("--workers", type=int, default=1,
                       help="web processes sharing the port (needs REDIS_URL, MONGODB_URI "
                            "and QDRANT_URL)")

    discord = sub.add_parser("discord", help="run the Discord gateway process")
    discord.add_argument("--shard-ids", default="",
                         help="the shared bot's shards this process runs, e.g. 0,1 "
                              "(with --shard-count; run the others elsewhere)")
    discord.add_argument("--shard-count", type=int, default=0,
                         help="how many shards the shared bot has in all")
    sub.add_parser("scheduler", help="run the scheduled-jobs process")

    chat = sub.add_parser("chat", help="talk to the engine from this terminal")
    chat.add_argument("--tenant", required=True)
    chat.add_argument("--message", help="send one message, print the answer, exit")
    chat.add_argument("--thread", default="terminal",
                      help="conversation to continue (default: %(default)s)")
    chat.add_argument("--user", default="operator", help="who you are in the conversation")

    ingest = sub.add_parser("ingest", help="load documents into a tenant's knowledge base")
    ingest.add_argument("--tenant", required=True)
    ingest.add_argument("--kb", default="default")
    ingest.add_argument("--reindex", action="store_true",
                        help="rebuild the knowledge base in a new collection, then switch")
    ingest.add_argument("sources", nargs="*", metavar="SOURCE")

    tenants = sub.add_parser("tenants", help="tenant files")
    tenants_sub = tenants.add_subparsers(dest="tenants_command", required=True)
    tenants_sub.add_parser("check", help="validate every tenant file")
    tenants_sub.add_parser("schema", help="print the tenant file JSON Schema")

    commands = sub.add_parser("commands", help="the command registry")
    commands_sub = commands.add_subparsers(dest="commands_command", required=True)
    commands_sub.add_parser("schema", help="print every command's argument JSON Schema")

    deploy = sub.add_parser("deploy", help="compare the tenant files with the deployment, "
                                           "and repair the drift")
    deploy.add_argument("action", choices=["plan", "apply"])
    deploy.add_argument("--env", default="", help="overlay tenants/ENV/<id>.toml on the files")
    deploy.add_argument("tenants", nargs="*", metavar="TENANT")
    deploy.add_argument("--all", action="store_true", help="every tenant (the default)")
    deploy.add_argument("--continue", dest="keep_going", action="store_true",
                        help="apply: go on with the other tenants after one fails")

    ev = sub.add_parser("eval", help="quality evaluations")
    ev_sub = ev.add_subparsers(dest="eval_command", required=True)
    retrieval = ev_sub.add_parser("retrieval", help="retrieval quality on a BEIR folder")
    retrieval.add_argument("--dataset", required=True)
    retrieval.add_argument("--json", dest="json_out")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    quiet = args.command in ("chat", "tenants", "commands", "ingest", "eval", "deploy")
    configure_logging("WARNING" if quiet and settings.log_level == "INFO"
                      else settings.log_level,
                      "console" if quiet else settings.log_format)
    configure_tracing(args.command)
    try:
        return _dispatch(args, settings)
    except KeyboardInterrupt:
        return 130
    finally:
        shutdown_tracing()  # what is batched goes out before the process ends


def _serve_does_it(settings: Settings, command: str) -> bool:
    """On the embedded defaults a running ``serve`` already does this process's work
    (and holds the local index it would need); say so instead of starting a second."""
    from bots import local_control
    control = None if settings.qdrant_url else local_control.running(settings.data_dir)
    if control is None:
        return False
    work = "the scheduler's jobs" if command == "scheduler" else "the Discord gateway"
    print(f"switchboard {command}: the running serve ({control.url}) holds the local stores "
          f"and runs {work} itself (unless started with --no-{command}). To run "
          f"{command} as a process of its own, set QDRANT_URL, MONGODB_URI and REDIS_URL "
          "to shared servers (docs/operations.md).", file=sys.stderr)
    return True


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        if args.workers > 1:
            from bots.workers import run_workers
            return run_workers(settings, args.host, args.port, args.workers)
        from bots.serve import run_serve
        return run_serve(settings, args.host, args.port,
                         scheduler=not args.no_scheduler, discord=not args.no_discord)
    if args.command == "chat":
        from bots.chat import run_chat
        return asyncio.run(run_chat(settings, args.tenant, args.message, args.thread,
                                    args.user))
    if args.command == "tenants":
        from bots.tenants_cli import check, schema
        return check(settings) if args.tenants_command == "check" else schema()
    if args.command == "commands":
        from core.commands.builtins import builtin_commands
        print(json.dumps(builtin_commands().json_schemas(), indent=2))
        return 0
    if args.command == "ingest":
        from bots.ingest_cli import run_ingest
        if not args.sources and not args.reindex:
            print("switchboard ingest: name at least one SOURCE (file, folder, URL, .urls "
                  "list), or --reindex", file=sys.stderr)
            return 2
        return asyncio.run(run_ingest(settings, args.tenant, args.kb, args.sources,
                                      args.reindex))
    if args.command == "deploy":
        from bots.deploy import run_deploy
        return asyncio.run(run_deploy(settings, args.action, args.env,
                                      [] if args.all else args.tenants, args.keep_going))
    if args.command == "eval":
        from bots.eval_cli import run_eval
        return asyncio.run(run_eval(args.dataset, args.json_out))
    if args.command in ("scheduler", "discord") and _serve_does_it(settings, args.command):
        return 2
    if args.command == "scheduler":
        from bots.scheduler import run_scheduler
        return asyncio.run(run_scheduler(settings))
    if args.command == "discord":
        from bots.discord_main import Shards, run_discord
        try:
            shards = Shards.parse(args.shard_ids, args.shard_count)
        except ValueError as exc:
            print(f"switchboard discord: {exc}", file=sys.stderr)
            return 2
        return asyncio.run(run_discord(settings, shards))
    print(f"switchboard {args.command}: not available in this version yet "
          "(see CHANGELOG.md for what has landed).", file=sys.stderr)
    return 2
