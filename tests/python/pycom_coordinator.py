"""A plain Python 3 coordinator for an LA4 node, written the way the vendor's pages talk to pycom:
one JSON object per TCP connection, sent and closed; answers come back as events on new
connections to our own listener, at the port we advertise.

Usage: python3 pycom_coordinator.py NODE_HOST NODE_PORT
Prints one line per step; exits non-zero on anything unexpected or after its deadline.
"""

import json
import socket
import sys
import time

DEADLINE = time.monotonic() + 20.0


def base(port):
    return {
        "id": "7756f193",
        "name": "Python coordinator",
        "ip": "127.0.0.1",
        "port": port,
        "version": "0.1.0",
        "coordinator": True,
    }


def send(node, payload):
    """Open a connection, write the object, close: one request."""
    with socket.create_connection(node, timeout=5) as sock:
        sock.sendall(json.dumps(payload).encode("utf-8"))


def next_event(server):
    """Accept one connection and read the JSON object it carries until the node closes."""
    while True:
        left = DEADLINE - time.monotonic()
        if left <= 0:
            raise TimeoutError("no event before the deadline")
        server.settimeout(left)
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
        if data:
            return json.loads(data.decode("utf-8"))


def wait_for(server, type_):
    while True:
        event = next_event(server)
        print(f"event {event.get('type_')}")
        if event.get("type_") == type_:
            return event


def main():
    node = (sys.argv[1], int(sys.argv[2]))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        # A heartbeat makes us a coordinator: unit_info follows once boardio has booted.
        send(node, base(port))
        info = wait_for(server, "unit_info")
        assert info["unit_type"] == "light_array", info
        print(f"unit_info {info['unit_type']} {info['mcu_type']}")

        # The documented sequence idiom: write the file, load it, run it.
        command = dict(base(port))
        command["type_"] = "cmd"
        command["command"] = (
            'echo "MODEL_LIGHT,100\\nLED_FAN,1" > /home/rigsters/la4_sequence.csv'
            " && boardiocli uSeq && boardiocli runSeq"
        )
        send(node, command)
        output = wait_for(server, "output")
        assert 'Sent: "runSeq"' in output["output"], output
        print("output ok")
        message = wait_for(server, "message")
        assert message["message"] == "BOARDIO_READY", message
        print("message BOARDIO_READY")

        # Anything outside the documented subset answers like sh, and runs nothing.
        command["command"] = "reboot"
        send(node, command)
        output = wait_for(server, "output")
        assert output["output"] == "sh: 1: reboot: not found\n", output
        print("not found ok")
    print("done")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - any failure is a failed check
        print(f"FAILED: {error!r}")
        sys.exit(1)
