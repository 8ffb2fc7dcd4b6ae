"""Drives the arkeo-sim program from Python with only the standard library: start it, wait
for its `listening on` and `control on` lines, talk ARKEO to it, push a fault over the control
channel and see it reach the client, clear it and see normal answers again, send a malformed
control request and see a 4xx with the simulator still serving, see its own connection listed,
stop it.

Usage: python3 control_arkeo.py PATH_TO_ARKEO_SIM
Prints one line per step; exits non-zero on anything unexpected.
"""

import json
import signal
import socket
import struct
import subprocess
import sys
import urllib.error
import urllib.request


def start(binary):
    sim = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--time-scale", "0"],
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


def call(sock, target, command, request_id, params=None):
    message = {"target": target, "command": command, "request_id": request_id}
    if params is not None:
        message["params"] = params
    data = json.dumps(message).encode()
    sock.sendall(struct.pack(">I", len(data)) + data)
    (length,) = struct.unpack(">I", recv_exact(sock, 4))
    return json.loads(recv_exact(sock, length))


def recv_exact(sock, n):
    chunks = b""
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks += chunk
    return chunks


def connect(addr):
    return socket.create_connection(addr, timeout=10)


def main():
    sim, addr, base = start(sys.argv[1])
    try:
        print("started")
        sock = connect(addr)
        reply = call(sock, "MAIN", "GetAvailableRoutines", 1)
        print("routines", len(reply["data"]["routines"]))

        # A wrong request_id on the next GetActiveRoutine: the client sees it.
        status, faults = control(base, "POST", "/faults", {
            "matching": {"command": "GetActiveRoutine"},
            "fault": {"device": "wrong_request_id"},
            "count": 1,
        })
        print("pushed", status, len(faults["queued"]))
        reply = call(sock, "MAIN", "GetActiveRoutine", 2)
        print("fault reached the client", reply["request_id"] != 2)

        # No reply until cleared: the client times out, then clearing restores answers.
        control(base, "POST", "/faults", {"fault": "no_reply", "until_cleared": True})
        sock.settimeout(0.3)
        try:
            call(sock, "MAIN", "GetActiveRoutine", 3)
            print("no_reply answered")
        except socket.timeout:
            print("no reply")
        sock.close()
        status, faults = control(base, "DELETE", "/faults")
        print("cleared", status, faults["queued"], faults["standing"])
        sock = connect(addr)
        reply = call(sock, "MAIN", "GetActiveRoutine", 4)
        print("normal again", reply["status"], reply["request_id"])

        # GET /connections lists this client's own connection (--control turns tracking on).
        own = "%s:%d" % sock.getsockname()[:2]
        status, connections = control(base, "GET", "/connections")
        peers = connections["peers"]
        print("connections", status, own in [peer["addr"] for peer in peers],
              all(isinstance(peer["since_ms"], int) for peer in peers))

        # Malformed control requests: 4xx naming the problem; the device keeps serving.
        status, error = control(base, "POST", "/faults", {"fault": "no_replyy"})
        print("bad fault", status, "no_replyy" in error["error"])
        status, error = control(base, "POST", "/faults", b"{not json")
        print("bad json", status, "error" in error)
        status, error = control(base, "GET", "/reset")
        print("wrong method", status)
        reply = call(sock, "MAIN", "GetAvailableRoutines", 5)
        print("still serving", reply["status"])

        status, state = control(base, "GET", "/state")
        print("state", status, state["active_routine"])
        status, now = control(base, "POST", "/clock/advance", {"by": "2s"})
        print("advanced", status, now["now"])
        sock.close()
    finally:
        sim.send_signal(signal.SIGTERM)
        code = sim.wait(timeout=10)
    print("exit", code)


if __name__ == "__main__":
    main()
