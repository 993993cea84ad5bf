#!/usr/bin/python3
"""The browser test call in a real browser: headless chromium (selenium) places a test call with
daemon/console/assets/js/testcall.js, its fake microphone fed by an espeak-ng sentence, against a real osvid and
osvi-model-server; the page must see the caller's words and the agent's in the transcript and the end of the
call, with no console error, and the call's record must say execution_mode "test".

Standalone until the console serves its own pages: this script serves a tiny page and the two modules itself,
and forwards /v1 (requests and the WebSocket upgrade) to osvid, so the page, the API and the WebSocket share
one origin — osvid's Origin check stays strict. Loopback only; bounded in time (exit 1 on any failure).
"""
import argparse
import http.client
import http.server
import json
import os
import select
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import wave

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

TOKEN = "BrowserToken0123"
SENTENCE = "I would like to book a table for two"

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>test call</title>
<link rel="icon" href="data:,"><script type="module" src="/page.js"></script></head><body><p id="state">idle</p></body></html>"""

PAGE_JS = """import { startTestCall } from './js/testcall.js';
window.events = [];
const token = decodeURIComponent(location.hash.slice(1));
startTestCall({
  token, agentUuid: 'agent_a',
  onState: (s) => { window.events.push({ state: s }); document.getElementById('state').textContent = s; },
  onTranscript: (t) => window.events.push({ role: t.role, text: t.text }),
  onEnd: (e) => { window.ended = e; },
}).then((c) => { window.callId = c.callId; }, (e) => { window.failed = String(e); });
"""


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_wav(path, work):
    """The sentence (espeak-ng), then 4 s of silence: chromium loops the file as the microphone."""
    raw = os.path.join(work, "sentence.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", raw, SENTENCE], check=True)
    with wave.open(raw, "rb") as r:
        params = r.getparams()
        frames = r.readframes(r.getnframes())
    with wave.open(path, "wb") as w:
        w.setparams(params)
        w.writeframes(frames + b"\x00" * (params.sampwidth * params.framerate * 4))


class Front(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def handler_for(osvid_port, js_dir):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def static(self, body, ctype):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.startswith("/v1/web_calls/ws"):
                return self.tunnel()
            if self.path.startswith("/v1/"):
                return self.forward()
            if self.path == "/call.html":
                return self.static(PAGE, "text/html; charset=utf-8")
            if self.path == "/page.js":
                return self.static(PAGE_JS, "text/javascript")
            if self.path in ("/js/testcall.js", "/js/testcall-worklet.js"):
                with open(os.path.join(js_dir, os.path.basename(self.path)), "rb") as f:
                    return self.static(f.read(), "text/javascript")
            self.send_error(404)

        def do_POST(self):
            self.forward()

        def forward(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else None
            c = http.client.HTTPConnection("127.0.0.1", osvid_port, timeout=10)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            c.request(self.command, self.path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def tunnel(self):
            # The upgrade goes to osvid as the browser sent it (its Host and Origin: this origin), then bytes flow
            # both ways until either side closes.
            up = socket.create_connection(("127.0.0.1", osvid_port), timeout=10)
            head = "%s %s %s\r\n" % (self.command, self.path, self.request_version)
            head += "".join("%s: %s\r\n" % (k, v) for k, v in self.headers.items()) + "\r\n"
            up.sendall(head.encode())
            # A WebSocket client sends nothing before the 101 (RFC 6455 section 4.1), so nothing of it waits in
            # self.rfile's buffer: the raw sockets carry everything from here.
            down = self.connection
            up.setblocking(False)
            down.setblocking(False)
            try:
                while True:
                    r, _, _ = select.select([up, down], [], [], 60)
                    if not r:
                        break
                    done = False
                    for s in r:
                        try:
                            data = s.recv(65536)
                        except BlockingIOError:
                            continue
                        if not data:
                            done = True
                            break
                        (down if s is up else up).setblocking(True)
                        (down if s is up else up).sendall(data)
                        (down if s is up else up).setblocking(False)
                    if done:
                        break
            finally:
                up.close()
                self.close_connection = True

    return H


def api(port, path, body=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), headers={"API-Token": TOKEN})
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--osvid", required=True)
    ap.add_argument("--model-server", required=True)
    ap.add_argument("--js", required=True, help="daemon/console/assets/js")
    ap.add_argument("--out", required=True, help="folder for the screenshot and logs")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="osvi-browser-")
    procs = []
    driver = None
    try:
        scenario = os.path.join(work, "scenario.json")
        with open(scenario, "w") as f:
            json.dump({"stt": {"transcripts": [SENTENCE]},
                       "llm": {"rules": [{"match": "table", "reply": "Booked. Goodbye!",
                                          "tool_calls": [{"name": "end_call", "arguments": {}}]}]}}, f)
        model = subprocess.Popen([a.model_server, "--port", "0", "--scenario", scenario, "--quiet"],
                                 stdout=subprocess.PIPE, text=True)
        procs.append(model)
        line = model.stdout.readline()
        if "listening on" not in line:
            fail("model server did not start: " + line)
        model_url = "http://" + line.split("listening on")[1].strip() + "/v1"
        port = free_port()
        agent = {"agent_uuid": "agent_a", "name": "Front desk", "active": True,
                 "greeting": {"text": "Hello, front desk."},
                 "stt": {"base_url": model_url}, "llm": {"base_url": model_url}, "voice": {"base_url": model_url}}
        cfg = {"state_dir": os.path.join(work, "state"),
               "api": {"listen": "127.0.0.1:%d" % port, "tokens": [TOKEN]},
               "audio": {"rt_priority": 0}, "agents": [agent]}
        cfg_path = os.path.join(work, "osvid.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        log = open(os.path.join(a.out, "osvid.log"), "w")
        procs.append(subprocess.Popen([a.osvid, "--config", cfg_path], stdout=log, stderr=log))
        for _ in range(100):
            try:
                api(port, "/v1/health")
                break
            except Exception:
                time.sleep(0.1)
        else:
            fail("osvid did not answer")

        front = Front(("127.0.0.1", 0), handler_for(port, a.js))
        threading.Thread(target=front.serve_forever, daemon=True).start()
        origin = "http://127.0.0.1:%d" % front.server_address[1]

        wav = os.path.join(work, "caller.wav")
        make_wav(wav, work)
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream", "--use-file-for-fake-audio-capture=" + wav,
                    "--autoplay-policy=no-user-gesture-required", "--window-size=1280,800"]:
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        driver.set_script_timeout(10)
        driver.get(origin + "/call.html#" + TOKEN)

        deadline = time.time() + 60
        ended = None
        while time.time() < deadline:
            state = driver.execute_script("return {ended: window.ended || null, failed: window.failed || null};")
            if state["failed"]:
                fail("startTestCall failed: " + state["failed"])
            if state["ended"]:
                ended = state["ended"]
                break
            time.sleep(0.25)
        events = driver.execute_script("return window.events;")
        call_id = driver.execute_script("return window.callId || null;")
        driver.save_screenshot(os.path.join(a.out, "web_call.png"))
        with open(os.path.join(a.out, "web_call_events.json"), "w") as f:
            json.dump({"events": events, "ended": ended, "call_id": call_id}, f, indent=1)
        if not ended:
            fail("the call did not end within 60 s; events: %s" % events)
        if not call_id or ended.get("callId") != call_id:
            fail("call id %r, onEnd %r" % (call_id, ended))
        if ended.get("status") != "picked":
            fail("onEnd status %r" % ended)
        states = [e["state"] for e in events if "state" in e]
        if states[:2] != ["connecting", "connected"] or states[-1] != "ended":
            fail("states %s" % states)
        said = [(e["role"], e["text"]) for e in events if "role" in e]
        if ("caller", SENTENCE) not in said or ("agent", "Booked. Goodbye!") not in said:
            fail("transcript seen by the page: %s" % said)
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        if errors:
            fail("console errors: %s" % errors)

        rec = None
        for _ in range(50):
            rec = api(port, "/v1/call/" + call_id)["data"]
            if rec["status"] != "in_progress":
                break
            time.sleep(0.1)
        if rec["execution_mode"] != "test" or rec["status"] != "picked" or rec["call_type"] != "inbound":
            fail("call record %s" % rec)
        turns = api(port, "/v1/call/%s/transcript" % call_id)["data"]["transcript"]
        if not any(t["role"] == "user" and t["text"] == SENTENCE for t in turns):
            fail("stored transcript %s" % turns)
        print("PASS: test call %s from headless chromium: %s" % (call_id, said), flush=True)
    finally:
        if driver:
            driver.quit()
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
