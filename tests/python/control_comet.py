"""Drives the comet-sim program from Python with only the standard library: start it with a
scenario, wait for its `listening on` and `control on` lines, talk COMET's socket protocol to
it as COMET's own Python client does, push a fault over the control channel and see it reach
the client, clear it and see normal answers again, send malformed control requests and see a
4xx with the simulator still serving, stop it.

Usage: python3 control_comet.py PATH_TO_COMET_SIM PATH_TO_SCENARIO
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


def start(binary, scenario):
    sim = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
         "--time-scale", "0", "--deadline", "2s", "--scenario", scenario],
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


def frame(content):
    """A COMET frame: u16 big-endian header length, the JSON header, the content."""
    header = json.dumps({
        "byteorder": sys.byteorder,
        "content-type": "text/json",
        "content-encoding": "utf-8",
        "content-length": len(content),
    }).encode()
    return struct.pack(">H", len(header)) + header + content


def send(addr, action, value, timeout=10):
    """One request on its own connection, as COMET's client does; the answer's `result`."""
    with socket.create_connection(addr, timeout=timeout) as sock:
        sock.sendall(frame(json.dumps({"action": action, "value": value}).encode()))
        (length,) = struct.unpack(">H", recv_exact(sock, 2))
        header = json.loads(recv_exact(sock, length))
        content = recv_exact(sock, header["content-length"])
        return json.loads(content.decode(header["content-encoding"]))["result"]


def recv_exact(sock, n):
    chunks = b""
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks += chunk
    return chunks


def main():
    sim, addr, base = start(sys.argv[1], sys.argv[2])
    try:
        print("started")
        print("echo", send(addr, "ECHO", {"sample": 7, "bias": -150.0}) == {"sample": 7, "bias": -150.0})
        print("status", send(addr, "Status", 1)["state"])
        print("telegram", send(addr, "Telegram", {"42": "status"})["42"])

        # A device error on the next Status request: the client sees it.
        status, faults = control(base, "POST", "/faults", {
            "matching": {"action": "Status"},
            "fault": {"device": {"error": "Error: SMU not connected"}},
            "count": 1,
        })
        print("pushed", status, len(faults["queued"]))
        print("echo unaffected", send(addr, "ECHO", 1))
        print("fault reached the client", send(addr, "Status", 1))

        # No reply until cleared: the client times out, then clearing restores answers.
        control(base, "POST", "/faults", {"fault": "no_reply", "until_cleared": True})
        try:
            send(addr, "Status", 1, timeout=0.3)
            print("no_reply answered")
        except socket.timeout:
            print("no reply")
        status, faults = control(base, "DELETE", "/faults")
        print("cleared", status, faults["queued"], faults["standing"])
        print("normal again", send(addr, "Status", 1)["state"])

        # Malformed control requests: 4xx naming the problem; the device keeps serving.
        status, error = control(base, "POST", "/faults", {"fault": {"device": {"eror": "x"}}})
        print("bad fault", status, "eror" in error["error"])
        status, error = control(base, "POST", "/faults", b"{not json")
        print("bad json", status, "error" in error)
        status, error = control(base, "GET", "/reset")
        print("wrong method", status)
        print("still serving", send(addr, "ECHO", "ok"))

        status, state = control(base, "GET", "/state")
        print("state", status, state["status"], state["received"][-1]["action"])
        status, now = control(base, "POST", "/clock/advance", {"by": "2s"})
        print("advanced", status, now["now"])
        status, state = control(base, "POST", "/reset")
        print("reset", status, state["counters"]["requests"])
    finally:
        sim.send_signal(signal.SIGTERM)
        code = sim.wait(timeout=10)
    print("exit", code)


if __name__ == "__main__":
    main()
