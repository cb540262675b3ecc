"""Opens N idle TCP connections to HOST:PORT (sending nothing), prints `ready <N>` and holds them until stdin
closes. Used by crates/ckp/tests/it/connections.rs to open more connections than one process may hold."""

import resource
import socket
import sys


def main() -> None:
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held = [socket.create_connection((host, port), timeout=60) for _ in range(count)]
    print(f"ready {len(held)}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
