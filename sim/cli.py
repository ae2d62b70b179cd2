"""The `qmailsim` command: the live mini-MTA (`mta …`), the demo, and the tools around them.

Every mistake a user can make (a wrong flag, a missing directory, a bad control file) ends in
one line `qmailsim: fatal: …` and exit status 100, as qmail's own tools report; a Python
traceback means a bug in qmailsim.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from sim import __version__
from sim.qmail.errors import BadInput

EPILOG = """\
examples:
  qmailsim demo                                   walk one message through qmail
  qmailsim run                                    the default scenario in the model
  qmailsim run scenarios/flood.toml --json        any scenario; the summary as JSON
  qmailsim mta init /tmp/q --me example.test --user alice
  qmailsim mta start /tmp/q --smtp 127.0.0.1:2525
  qmailsim mta inject /tmp/q -f bob@example.test alice@example.test < message
  qmailsim mta qstat /tmp/q
  qmailsim mta stop /tmp/q
  qmailsim graph --out arch.png                   qmail's big picture, uids as colours
  qmailsim graph --compromise qmail-smtpd         what an attacker who owns it can reach
  qmailsim tui /tmp/q --follow                    watch the live MTA's trace as mail moves
"""


class Fatal(Exception):
    """A user's mistake: printed as `qmailsim: fatal: …`, exit 100."""


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise argparse.ArgumentTypeError(
            f"only IPv4 loopback addresses (127.x.x.x, localhost) are allowed, not {host!r}"
        )
    if int(port) > 65535:
        raise argparse.ArgumentTypeError(f"no such port: {port}")
    return host, int(port)


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not name.replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"not NAME=VALUE: {text!r}")
    return name, value


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, with help for every command."""
    parser = argparse.ArgumentParser(
        prog="qmailsim",
        description="qmail's architecture made visible, runnable and measurable.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"qmailsim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the main job on the embedded default")
    demo.add_argument("--keep", metavar="DIR", type=Path, help="keep what the demo makes in DIR")
    demo.add_argument(
        "--live", action="store_true", help="one message through the real mini-MTA instead"
    )
    demo.add_argument(
        "--no-tui", dest="tui", action="store_false", default=None, help="print only, no UI"
    )

    run = commands.add_parser(
        "run", help="run a scenario in the model (virtual time) and print its summary"
    )
    from sim import run_cli

    run_cli.add_arguments(run)

    graph = commands.add_parser(
        "graph", help="draw qmail's architecture, or say what a compromised program reaches"
    )
    from sim import graph_cli

    graph_cli.add_arguments(graph)

    tui = commands.add_parser("tui", help="watch mail move through qmail, from a trace")
    from tui import cli as tui_cli

    tui_cli.add_arguments(tui)

    bench = commands.add_parser("bench", help="measure costs side by side (ratios)")
    from sim import bench as bench_module

    bench_module.add_arguments(bench)

    mta = commands.add_parser("mta", help="the live mini-MTA on loopback").add_subparsers(
        dest="mta", metavar="ACTION", required=True
    )
    init = mta.add_parser("init", help="lay out a qmail home: control/, queue/, alias/, users")
    init.add_argument("home", type=Path, metavar="QMAILDIR")
    init.add_argument("--me", required=True, metavar="DOMAIN", help="control/me")
    init.add_argument(
        "--locals", nargs="+", action="extend", metavar="D", help="default: the --me domain"
    )
    init.add_argument(
        "--rcpthosts", nargs="+", action="extend", metavar="D", help="default: the --me domain"
    )
    init.add_argument(
        "--user", nargs="+", action="extend", default=[], metavar="NAME", help="mail users"
    )

    start = mta.add_parser("start", help="start the MTA in the background")
    start.add_argument("home", type=Path, metavar="QMAILDIR")
    start.add_argument("--smtp", type=_hostport, default=("127.0.0.1", 2525), metavar="HOST:PORT")
    start.add_argument(
        "--pop3",
        type=_hostport,
        metavar="HOST:PORT",
        help="also serve POP3 there (qmail-popup, checkpassword, qmail-pop3d)",
    )
    start.add_argument(
        "--smtp-env",
        type=_assignment,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="put a variable into qmail-smtpd's environment, as tcpserver would",
    )
    start.add_argument("--foreground", action="store_true", help="stay in the foreground")
    start.add_argument(
        "--exec", dest="exec_mode", action="store_true", help="exec a fresh interpreter per step"
    )
    start.add_argument(
        "--open-relay", action="store_true", help="allow a home without control/rcpthosts"
    )
    start.add_argument(
        "--monolith",
        action="store_true",
        help="run the sendmail-like comparison MTA (one root daemon) instead of qmail",
    )

    for name, text in (
        ("stop", "stop the MTA"),
        ("status", "its processes with their uids, and queue counts"),
        ("qstat", "qmail-qstat: messages in the queue"),
        ("qread", "qmail-qread: each message's recipients"),
    ):
        mta.add_parser(name, help=text).add_argument("home", type=Path, metavar="QMAILDIR")

    inject = mta.add_parser(
        "inject",
        help="qmail-inject a message read from stdin",
        usage="qmailsim mta inject QMAILDIR [-f SENDER] [-a|-h|-H|-n] [RCPT ...] < message",
        description="Runs qmail-inject with these arguments: without RCPT, the recipients "
        "come from the header (To, Cc, Bcc).",
    )
    inject.add_argument("home", type=Path, metavar="QMAILDIR")
    inject.add_argument("args", nargs=argparse.REMAINDER, metavar="ARG")

    sendmail = mta.add_parser("sendmail", help="the sendmail front end to qmail-inject")
    sendmail.add_argument("home", type=Path, metavar="QMAILDIR")
    sendmail.add_argument("args", nargs=argparse.REMAINDER, metavar="ARG")
    return parser


def run(args: argparse.Namespace) -> int:
    """Dispatch one parsed command; returns the exit status."""
    if args.command in (None, "demo"):
        from sim.demo import demo

        return demo(
            getattr(args, "keep", None), getattr(args, "live", False), getattr(args, "tui", None)
        )
    if args.command == "run":
        from sim import run_cli

        return run_cli.run(args)
    if args.command == "graph":
        from sim import graph_cli

        return graph_cli.run(args)
    if args.command == "tui":
        from tui import cli as tui_cli

        return tui_cli.run(args)
    if args.command == "bench":
        from sim import bench

        return bench.run(args)
    from sim.mta import commands

    return commands.dispatch(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = run(args)
        sys.stdout.flush()  # here, so that a reader that went away is seen below
        return status
    except (Fatal, BadInput) as exc:
        print(f"qmailsim: fatal: {exc}", file=sys.stderr)
        return 100
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `qmailsim … | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141  # as a shell reports a death by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
