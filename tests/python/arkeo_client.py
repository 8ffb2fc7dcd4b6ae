"""A plain Python 3 ARKEO client, written the way the vendor's example talks to the API:
a 4-byte big-endian length, then UTF-8 JSON, over one persistent socket.

Usage: python3 arkeo_client.py HOST PORT
Prints one line per step; exits non-zero on any unexpected answer.

The first step is the vendor's own example, step for step: connect, send StartRoutine with
its parameters under "params" and request_id 1001, read the 4-byte header and then the payload
with one recv each, print the answer, close. The rest is a longer session in the same style:
errors, the routines' custom commands with the vendor's parameter names, TMPCTL, MUX and LED
shapes, and a measurement waited for the way the project's protocol reference says (first see
it leave Ready, then wait for Ready).
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


def vendor_example(host, port):
    """The vendor's example: one StartRoutine over a fresh connection, read the way the
    example reads it (one recv for the header, one for the payload)."""
    with socket.create_connection((host, port), timeout=10) as sock:
        command = {
            "target": "MAIN",
            "command": "StartRoutine",
            "params": {"routine": "Luminescence"},
            "request_id": 1001,
        }
        data = json.dumps(command).encode("utf-8")
        sock.sendall(struct.pack(">I", len(data)) + data)
        header = sock.recv(4)
        if len(header) < 4:
            raise ConnectionError("Incomplete header received.")
        msg_len = struct.unpack(">I", header)[0]
        payload = sock.recv(msg_len)
        response = json.loads(payload.decode("utf-8"))
        print("vendor example", json.dumps(response, sort_keys=True))


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


def ok(reply):
    if reply.get("status") != "OK" or "error" in reply:
        raise RuntimeError(f"refused: {reply}")
    return reply["data"]


def status(sock, request_id):
    return ok(call(sock, "ROUTINE", "GetTestStatus", {}, request_id))


def wait_for(sock, state, request_id):
    for _ in range(400):
        if status(sock, request_id)["routine_status"] == state:
            return
        time.sleep(0.01)
    raise RuntimeError(f"routine never reached {state}")


def wait_for_measurement(sock, request_id):
    """After StartMeasurement the application may still say Ready for a moment: first see the
    routine leave Ready (Starting, Running or a progress value), then wait for Ready."""
    for _ in range(400):
        data = status(sock, request_id)
        if data["routine_status"] != "Ready" or data["progress"] is not None:
            break
        time.sleep(0.005)
    else:
        raise RuntimeError("the measurement never left Ready")
    wait_for(sock, "Ready", request_id)


def start(sock, routine, request_id):
    ok(call(sock, "MAIN", "StartRoutine", {"routine": routine}, request_id))
    wait_for(sock, "Ready", request_id + 1)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    vendor_example(host, port)
    with socket.create_connection((host, port), timeout=10) as sock:
        print(f"connected {host}:{port}")
        reply = call(sock, "MAIN", "GetActiveRoutine", request_id=1002, key="parameter")
        print("active", reply["data"]["routine"])
        wait_for(sock, "Ready", 1010)
        print("ready")
        reply = call(sock, "ROUTINE", "SetLaser", {"channel": 0, "duty_cycle": 150}, 1003)
        print("SetLaser error", reply["error"]["code"])
        reply = call(sock, "LED", "SetValues", {"address": 1, "values": [0.5] * 3}, 1004)
        print("SetValues error", reply["error"]["code"])
        ok(call(sock, "LED", "SetValues", {"address": 1, "values": [1.5] + [0.25] * 11}, 1005))
        board = ok(call(sock, "LED", "GetStatus", {}, 1006))["boards"][0]
        print("LED coerced", board["values"][0], board["values"][1])
        print("CloseRoutine", call(sock, "ROUTINE", "CloseRoutine", {}, 1007)["status"])

        # TCSPC, as the vendor's example sequence: laser on, then check the rates.
        start(sock, "TCSPC", 1100)
        ok(call(sock, "ROUTINE", "SetLaser", {"laser": True}, 1102))
        rates = ok(call(sock, "ROUTINE", "GetRates", {}, 1103))
        print("rates", " ".join(sorted(rates)), 0.01 <= rates["ratio"] <= 0.05)
        ok(call(sock, "ROUTINE", "CloseRoutine", {}, 1104))

        start(sock, "IPCE", 1200)
        ok(call(sock, "ROUTINE", "SetShutter", {"shutter_status": True}, 1202))
        mono = ok(call(sock, "ROUTINE", "GetMonochromatorStatus", {}, 1203))
        print("shutter", mono["shutter"], math.isinf(mono["config"]["fltrwave"][-1]))
        ok(call(sock, "ROUTINE", "CloseRoutine", {}, 1204))

        controllers = ok(call(sock, "TMPCTL", "GetStatus", {}, 1300))
        measured = controllers[0]["LatestMeasurement"]["Temp. Measurement"]
        print("controllers", len(controllers), "object", isinstance(measured["Object Temperature"], (int, float)))
        ok(call(sock, "MUX", "Connect", {}, 1301))
        mux = ok(call(sock, "MUX", "GetStatus", {}, 1302))
        print("mux", mux["firmware"], mux["nrRelays"])
        ok(call(sock, "MUX", "SetStatus", {"channels": [True, False, False, True]}, 1303))
        print("relays", ok(call(sock, "MUX", "GetStatus", {}, 1304))["status"])

        # A whole Dark JV measurement: its parameters carry bare NaN and Infinity.
        start(sock, "Dark JV", 2001)
        reply = call(sock, "ROUTINE", "StartMeasurement", {}, 2003)
        print("StartMeasurement", reply["status"])
        wait_for_measurement(sock, 2004)
        data = ok(call(sock, "ROUTINE", "GetTestData", {}, 2005))
        params = data["scans"][0]["parameters"]
        print("voc is nan", math.isnan(params["voc"]["value"]))
        print("r_shunt is inf", math.isinf(params["r_shunt"]["value"]))
        print("points", len(data["scans"][0]["data"]))
        call(sock, "ROUTINE", "CloseRoutine", {}, 2006)


if __name__ == "__main__":
    main()
