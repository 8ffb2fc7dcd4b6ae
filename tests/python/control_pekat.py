"""Drives the pekat-sim program from Python with only the standard library: start it, wait
for its `listening on` and `control on` lines, talk to it as the vendor's example does (a bare
`command:path`, one recv(64) for the answer), push a fault over the control channel and see it
reach the client, clear it and see normal answers again, reset the device, send malformed
control requests and see a 4xx with the simulator still serving, stop it.

Usage: python3 control_pekat.py PATH_TO_PEKAT_SIM
Prints one line per step; exits non-zero on anything unexpected.
"""

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

PROJECT = r"C:\Users\pekat\PekatVisionProjects\Test Project 1"


def start(binary):
    sim = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
         "--start-delay", "0s", "--stop-delay", "0s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    listening = sim.stdout.readline().strip()
    control = sim.stdout.readline().strip()
    if not listening.startswith("listening on ") or not control.startswith("control on "):
        sim.kill()
        raise RuntimeError(f"unexpected first lines: {listening!r} {control!r}")
    host, port = listening[len("listening on "):].rsplit(":", 1)
    return sim, (host, int(port)), "http://" + control[len("control on "):]


def control(base, method, path, body=None):
    """One control request: (status, JSON answer)."""
    data = None if body is None else json.dumps(body).encode() if not isinstance(body, bytes) else body
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def ask(sock, command, path=PROJECT):
    """The vendor's way: the bare request, no terminator, one recv(64) for the answer."""
    sock.send(bytes(f"{command}:{path}", "utf-8"))
    data = sock.recv(64)
    if not data:
        raise ConnectionError("the server closed the connection")
    return data.decode("utf-8")


def connect(addr):
    return socket.create_connection(addr, timeout=10)


def project_state(base):
    status, state = control(base, "GET", "/state")
    [project] = [p for p in state["projects"] if p["path"] == PROJECT]
    return status, project["state"]


def main():
    sim, addr, base = start(sys.argv[1])
    try:
        print("started")
        sock = connect(addr)
        print("status", ask(sock, "status"))

        # A device answer the state would not give, on the next status: the client sees it.
        status, faults = control(base, "POST", "/faults", {
            "matching": {"command": "status"},
            "fault": {"device": {"answer": "license expired"}},
            "count": 1,
        })
        print("pushed", status, len(faults["queued"]))
        print("fault reached the client", ask(sock, "status"))

        # No reply until cleared: the client times out, then clearing restores answers.
        control(base, "POST", "/faults", {"fault": "no_reply", "until_cleared": True})
        sock.settimeout(0.3)
        try:
            ask(sock, "status")
            print("no_reply answered")
        except socket.timeout:
            print("no reply")
        sock.close()
        status, faults = control(base, "DELETE", "/faults")
        print("cleared", status, faults["queued"], faults["standing"])
        sock = connect(addr)
        print("normal again", ask(sock, "status"))

        # What the client did shows in the state; a reset puts the device back.
        print("start", ask(sock, "start"))
        print("state", *project_state(base))
        status, _ = control(base, "POST", "/reset")
        print("reset", status, project_state(base)[1])

        # Malformed control requests: 4xx naming the problem; the device keeps serving.
        status, error = control(base, "POST", "/faults", {"fault": {"device": {"wrong_idd": 1}}})
        print("bad fault", status, "wrong_idd" in error["error"])
        status, error = control(base, "POST", "/faults", b"{not json")
        print("bad json", status, "error" in error)
        status, error = control(base, "GET", "/reset")
        print("wrong method", status)
        print("still serving", ask(sock, "status"))
        sock.close()
    finally:
        sim.send_signal(signal.SIGTERM)
        code = sim.wait(timeout=10)
    print("exit", code)


if __name__ == "__main__":
    main()
