"""A plain Python 3 client for the PEKAT VISION Projects Manager's TCP server, written the way
the vendor's documentation talks to it: one socket, every request the bare UTF-8 text
`<command>:<project_path>` with no terminator, every answer taken with a single recv(64).

Usage: python3 pekat_client.py HOST PORT
Prints one line per step (`<command> <project> -> <answer>`); exits non-zero on any
unexpected answer. The simulator must hold the demo projects (its default).
"""

import socket
import sys
import time

PROJECTS = r"C:\Users\pekat\PekatVisionProjects"
FIRST = PROJECTS + r"\Test Project 1"
SECOND = PROJECTS + r"\Test Project 2"
# Set to the same port as the first project.
THIRD = PROJECTS + r"\Test Project 3"
MISSING = PROJECTS + r"\No Such Project"


def name(path):
    return path.rsplit("\\", 1)[-1]


def answer(sock):
    data = sock.recv(64)
    if not data:
        raise ConnectionError("the server closed the connection")
    return data.decode("utf-8")


def ask(sock, command, path, expected, ending="", late=None):
    """Sends `command:path` (plus `ending`), optionally `late` in a second send after a pause
    longer than the server's quiet period, then reads one answer and checks it."""
    sock.send(bytes(f"{command}:{path}{ending}", "utf-8"))
    if late is not None:
        time.sleep(0.05)
        sock.send(late)
    got = answer(sock)
    label = command + {"": "", "\r\n": " (CRLF)", "\r": " (CR, then LF late)"}[ending]
    print(f"{label} {name(path)} -> {got}", flush=True)
    if got != expected:
        raise RuntimeError(f"{command} {path}: expected {expected!r}, got {got!r}")


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    pekat_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # The vendor's example waits forever; a test must not.
    pekat_socket.settimeout(10)
    pekat_socket.connect((host, port))
    print(f"connected {host}:{port}", flush=True)

    ask(pekat_socket, "status", FIRST, "stopped")
    ask(pekat_socket, "start", FIRST, "done")
    ask(pekat_socket, "status", FIRST, "running")
    ask(pekat_socket, "start", THIRD, "error:port")
    ask(pekat_socket, "switch", SECOND, "success")
    ask(pekat_socket, "status", FIRST, "stopped")
    ask(pekat_socket, "status", SECOND, "running")
    ask(pekat_socket, "stop", SECOND, "done")
    ask(pekat_socket, "restart", SECOND, "Unknown command")
    ask(pekat_socket, "start", MISSING, "not-found")
    # Scripts that end their lines: a whole CRLF, and a CR whose LF comes in a later segment.
    # Each gets exactly one answer, so the requests after them stay in step.
    ask(pekat_socket, "status", SECOND, "stopped", ending="\r\n")
    ask(pekat_socket, "status", FIRST, "stopped", ending="\r", late=b"\n")
    ask(pekat_socket, "status", THIRD, "stopped")
    pekat_socket.close()


if __name__ == "__main__":
    main()
