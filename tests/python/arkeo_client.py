"""A plain Python 3 ARKEO client, written the way the vendor's example talks to the API:
a 4-byte big-endian length, then UTF-8 JSON, over one persistent socket.

Usage: python3 arkeo_client.py HOST PORT
Prints one line per step; exits non-zero on any unexpected answer.
"""

import json
import math
import socket
import struct
import sys
import time


def send(sock, message):
    data = json.dumps(message).encode("utf-8")
    sock.sendall(struct.pack(">I", len(data)) + data)


def recv_exact(sock, n):
    chunks = b""
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks += chunk
    return chunks


def receive(sock):
    (length,) = struct.unpack(">I", recv_exact(sock, 4))
    # Python's json accepts bare NaN / Infinity, as the vendor's data contains them.
    return json.loads(recv_exact(sock, length).decode("utf-8"))


def call(sock, target, command, params=None, request_id=None, key="params"):
    message = {"target": target, "command": command}
    if params is not None:
        message[key] = params
    if request_id is not None:
        message["request_id"] = request_id
    send(sock, message)
    reply = receive(sock)
    if request_id is not None and reply.get("request_id") != request_id:
        raise RuntimeError(f"request_id mismatch: {reply}")
    return reply


def wait_for(sock, state, request_id):
    for _ in range(400):
        reply = call(sock, "ROUTINE", "GetTestStatus", {}, request_id)
        if reply["data"]["routine_status"] == state:
            return
        time.sleep(0.01)
    raise RuntimeError(f"routine never reached {state}")


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    with socket.create_connection((host, port), timeout=10) as sock:
        print(f"connected {host}:{port}")
        reply = call(sock, "MAIN", "StartRoutine", {"routine": "Luminescence"}, 1001)
        print("StartRoutine", reply["status"])
        reply = call(sock, "MAIN", "GetActiveRoutine", request_id=1002, key="parameter")
        print("active", reply["data"]["routine"])
        wait_for(sock, "Ready", 1010)
        print("ready")
        reply = call(sock, "ROUTINE", "SetLaser", {"channel": 0, "duty_cycle": 150}, 1003)
        print("SetLaser error", reply["error"]["code"])
        reply = call(sock, "LED", "SetValues", {"address": 1, "values": [0.5] * 3}, 1004)
        print("SetValues error", reply["error"]["code"])
        reply = call(sock, "ROUTINE", "CloseRoutine", {}, 1006)
        print("CloseRoutine", reply["status"])
        # A whole Dark JV measurement: its parameters carry bare NaN and Infinity.
        call(sock, "MAIN", "StartRoutine", {"routine": "Dark JV"}, 2001)
        wait_for(sock, "Ready", 2002)
        reply = call(sock, "ROUTINE", "StartMeasurement", {}, 2003)
        print("StartMeasurement", reply["status"])
        wait_for(sock, "Ready", 2004)
        data = call(sock, "ROUTINE", "GetTestData", {}, 2005)["data"]
        params = data["scans"][0]["parameters"]
        print("voc is nan", math.isnan(params["voc"]["value"]))
        print("r_shunt is inf", math.isinf(params["r_shunt"]["value"]))
        print("points", len(data["scans"][0]["data"]))
        call(sock, "ROUTINE", "CloseRoutine", {}, 2006)


if __name__ == "__main__":
    main()
