"""Run the reference server from the command line until Ctrl-C.

Usage: ``python -m wsclient.server [--host H] [--port P] [--backend asyncio|trio]
[--certfile CERT [--keyfile KEY]]``

With ``--certfile`` it serves ``wss://``. The URL it prints names ``--host``,
so the certificate must be issued for that name (``127.0.0.1`` by default).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

import anyio

from ._server import serve
from ._tls import context_from_files

if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the server; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    context = _ssl_context(parser, args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        anyio.run(_run, args.host, args.port, context, backend=args.backend)
    except KeyboardInterrupt:
        return 0
    except BaseExceptionGroup as group:
        # Ctrl-C while trio ran several tasks may interrupt more than one.
        if group.split(KeyboardInterrupt)[1] is not None:
            raise
        return 0
    except OSError as exc:  # typically: the port is already in use
        print(
            f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0


async def _run(host: str, port: int, context: ssl.SSLContext | None) -> None:
    async with serve(host=host, port=port, ssl=context) as server:
        print(f"listening on {server.url} (Ctrl-C to stop)", flush=True)
        await anyio.sleep_forever()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wsclient.server",
        description="Run wsclient's reference WebSocket server (echo, ping, "
        "broadcast, stream, and channel subscribe/unsubscribe/publish "
        "commands; see `pydoc wsclient.server`).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument(
        "--port", type=_port, default=8765, help="port to bind, 0 for any free port"
    )
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument(
        "--certfile",
        help="PEM file with the certificate chain (and the key, unless --keyfile): "
        "serve wss:// instead of ws://; it must name --host",
    )
    parser.add_argument("--keyfile", help="PEM file with the private key")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every frame (DEBUG)"
    )
    return parser


def _ssl_context(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> ssl.SSLContext | None:
    # Loaded before the event loop starts, so that a bad file is a usage
    # error (exit status 2) rather than the "cannot listen" of an OSError.
    if args.certfile is None:
        if args.keyfile is not None:
            parser.error("--keyfile needs --certfile")
        return None
    try:
        return context_from_files(args.certfile, args.keyfile)
    except OSError as exc:  # ssl.SSLError included
        parser.error(f"cannot load the certificate or the key: {exc}")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be from 0 to 65535: {port}")
    return port


if __name__ == "__main__":
    sys.exit(main())
