"""Drives the la4-sim program from Python with only the standard library: start it, wait for
its `listening on` and `control on` lines, talk pycom to it like the vendor's coordinator (one
JSON object per connection; answers come back as events on new connections to our own
listener), push faults over the control channel and see them reach the coordinator, clear them
and see normal answers again, send malformed control requests and see a 4xx with the simulator
still serving, reset it, stop it.

Usage: python3 control_la4.py PATH_TO_LA4_SIM
Prints one line per step; exits non-zero on anything unexpected or after its deadline.
"""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

DEADLINE = time.monotonic() + 30.0

IDIOM = (
    'echo "MODEL_LIGHT,100\\nLED_FAN,1" > /home/rigsters/la4_sequence.csv'
    " && boardiocli uSeq && boardiocli runSeq"
)


def start(binary):
    sim = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--time-scale", "0",
         "--boot-ms", "0", "--no-discovery", "--name", "py-node"],
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


class Coordinator:
    """The vendor's way: a listener for the node's events, one request per connection."""

    def __init__(self, node):
        self.node = node
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        port = self.server.getsockname()[1]
        self.base = {"id": "7756f193", "name": "Python coordinator", "ip": "127.0.0.1",
                     "port": port, "version": "0.1.0", "coordinator": True}

    def send(self, **fields):
        payload = dict(self.base, **fields)
        with socket.create_connection(self.node, timeout=5) as sock:
            sock.sendall(json.dumps(payload).encode("utf-8"))

    def command(self, command):
        self.send(type_="cmd", command=command)

    def next_event(self):
        """Accept one connection and read the JSON object it carries until the node closes."""
        while True:
            left = DEADLINE - time.monotonic()
            if left <= 0:
                raise TimeoutError("no event before the deadline")
            self.server.settimeout(left)
            conn, _ = self.server.accept()
            with conn:
                conn.settimeout(5)
                data = b""
                while chunk := conn.recv(4096):
                    data += chunk
            if data:
                return json.loads(data.decode("utf-8"))

    def close(self):
        self.server.close()


def main():
    sim, node, base = start(sys.argv[1])
    coordinator = Coordinator(node)
    try:
        print("started")
        # A heartbeat makes us a coordinator: unit_info follows (boardio has booted).
        coordinator.send()
        info = coordinator.next_event()
        print("unit_info", info["type_"], info["unit_type"])
        coordinator.command("echo hello")
        print("normal", repr(coordinator.next_event()["output"]))

        # The next runSeq fails: the coordinator sees boardio's error verdict.
        status, faults = control(base, "POST", "/faults", {
            "matching": {"contains": "runSeq"},
            "fault": {"device": {"run_seq_error": "LED driver overheated"}},
            "count": 1,
        })
        print("pushed", status, len(faults["queued"]))
        coordinator.command(IDIOM)
        output, verdict = coordinator.next_event(), coordinator.next_event()
        print("fault reached the client", output["type_"], verdict["message"])

        # Every output dropped until cleared: the verdict comes, the output does not.
        status, faults = control(base, "POST", "/faults", {
            "matching": {"first_word": "echo"},
            "fault": {"device": "drop_output"},
            "until_cleared": True,
        })
        print("pushed", status, len(faults["standing"]))
        coordinator.command(IDIOM)
        event = coordinator.next_event()
        print("output dropped", event["type_"], event.get("message"))

        status, faults = control(base, "DELETE", "/faults")
        print("cleared", status, faults["queued"], faults["standing"])
        coordinator.command(IDIOM)
        output, verdict = coordinator.next_event(), coordinator.next_event()
        print("normal again", output["type_"], verdict["message"])

        # Malformed control requests: 4xx naming the problem; the node keeps serving.
        status, error = control(base, "POST", "/faults", {"fault": {"device": "drop_outputt"}})
        print("bad fault", status, "drop_outputt" in error["error"])
        status, error = control(base, "POST", "/faults", b"{not json")
        print("bad json", status, "error" in error)
        status, error = control(base, "GET", "/reset")
        print("wrong method", status)
        coordinator.command("echo still")
        print("still serving", repr(coordinator.next_event()["output"]))

        status, state = control(base, "GET", "/state")
        print("state", status, state["identity"]["name"], state["lights"]["fans"],
              len(state["coordinators"]))
        status, state = control(base, "POST", "/reset")
        print("reset", status, state["lights"]["fans"], len(state["coordinators"]))
    finally:
        coordinator.close()
        sim.send_signal(signal.SIGTERM)
        code = sim.wait(timeout=10)
    print("exit", code)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - any failure is a failed check
        print(f"FAILED: {error!r}")
        sys.exit(1)
