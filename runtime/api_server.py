"""The temporary Prefect API server process: `python -m runtime.api_server --fd N --parent PID`.

It serves Prefect's API app (`prefect.server.api.server:create_app`, the app Prefect's own temporary
server runs) with uvicorn on a listening socket its parent bound to port 0 and handed over (so the
parent knows the port before the server starts, and no other process can take it in between), and it
dies with its parent (runtime.tether) before it imports anything heavy.
"""

from __future__ import annotations

import argparse
import socket

from runtime.tether import die_with_parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="runtime.api_server")
    parser.add_argument("--fd", type=int, required=True, help="file descriptor of a bound TCP socket")
    parser.add_argument("--parent", type=int, required=True, help="pid of the process that started this one")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    sock = socket.socket(fileno=args.fd)  # family and type as the parent created it (AF_INET, TCP)

    import uvicorn

    config = uvicorn.Config("prefect.server.api.server:create_app", factory=True, log_level="error",
                            lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
