"""harness.py: a real osvid, the stand-in model server and headless Chromium for the console's browser tests.

Reusable by every test under tests/browser/ (run with Debian's /usr/bin/python3, which has python3-selenium):

    from harness import Box, browser, console_errors, sign_in

    with Box(agents=[voice_agent("agent_a")], lines=[sim_line("sim0")]) as box:   # osvid + model server
        call_id = box.place_call("agent_a", "9876543210")                           # POST /v1/call
        box.wait_call_done(call_id)                                                 # final record + recording
        with browser(width=1280) as driver:                                         # headless chromium
            sign_in(driver, box)                                                    # token into the sign-in form
            driver.get(box.url("/#/calls"))
            assert console_errors(driver) == []

A test call from the agent page needs chromium's fake microphone: pass
    browser(extra_args=["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                        "--use-file-for-fake-audio-capture=/path/speech.wav"])
and go to f"#/agents/{agent_uuid}", then click the button with id "testcall-start" (states in
#testcall-state, turns in #testcall-transcript, the call record's link in #testcall-result).

Everything listens on 127.0.0.1 only; the state folder is a temporary directory removed at the end. Paths come
from the environment ctest sets (OSVID, OSVI_MODEL_SERVER, OSVI_SCREENSHOT_DIR) or the default build folder.
A missing chromium, chromedriver or selenium raises (the test fails): nothing here skips.
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
BUILD_DIR = os.environ.get("OSVI_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
OSVID = os.environ.get("OSVID", os.path.join(BUILD_DIR, "daemon", "osvid"))
MODEL_SERVER = os.environ.get("OSVI_MODEL_SERVER", os.path.join(BUILD_DIR, "daemon", "osvi-model-server"))
SCREENSHOT_DIR = os.environ.get("OSVI_SCREENSHOT_DIR", os.path.join(BUILD_DIR, "browser-screenshots"))
TOKEN = "ConsoleTestTok01"   # 16 characters of A-Z a-z 0-9 _ - (docs/configuration.md#api)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, predicate, timeout=30.0, interval=0.1):
    """Calls predicate() until it returns something truthy; raises AssertionError naming `what` at the timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def voice_agent(agent_uuid, name=None, greeting="Hello, front desk."):
    """A voice agent's configuration; the model server's address is filled in by Box."""
    return {"agent_uuid": agent_uuid, "name": name or agent_uuid, "active": True, "greeting": {"text": greeting}}


def chat_agent(agent_uuid, name=None):
    return {"agent_uuid": agent_uuid, "name": name or agent_uuid, "mode": "chat", "active": True,
            "prompt": {"system_prompt": "Be brief."}}


def sim_line(line_id="sim0", steps=None):
    """A simulated line that answers after one ring and plays `steps` (docs/lines.md#simulated-line-type-sim)."""
    return {"id": line_id, "type": "sim", "sim": {
        "outcome": "answer", "rings": 1, "ring_interval_ms": 200,
        "steps": steps or [{"say": "Hello?", "ms": 800}, {"silence_ms": 300, "after_agent": True}, {"hangup": True}]}}


class ModelServer:
    """osvi-model-server on an ephemeral loopback port (docs/model-server.md)."""

    def __init__(self, workdir, scenario):
        if not os.access(MODEL_SERVER, os.X_OK):
            raise AssertionError(f"osvi-model-server not found at {MODEL_SERVER} (build it, or set OSVI_MODEL_SERVER)")
        path = os.path.join(workdir, "scenario.json")
        with open(path, "w") as f:
            json.dump(scenario, f)
        self.proc = subprocess.Popen([MODEL_SERVER, "--listen", "127.0.0.1:0", "--scenario", path,
                                      "--log", os.path.join(workdir, "model.log"), "--quiet"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.stop()
            raise AssertionError(f"the model server did not start: {line!r}")
        self.base = "http://" + line.split("listening on ", 1)[1].strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


class Box:
    """osvid with its own configuration in a temporary state folder, its API on a free loopback port, and the
    stand-in model server its agents use. A context manager: stops both and removes the folder on exit."""

    def __init__(self, agents, lines=(), scenario=None, extra_config=None, tokens=None):
        self.dir = tempfile.mkdtemp(prefix="osvi-browser-")
        self.token = TOKEN
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.model = None
        self.proc = None
        try:
            self.model = ModelServer(self.dir, scenario or {
                "stt": {"transcripts": ["hello"]}, "llm": {"rules": [{"match": "hello", "reply": "Goodbye."}]}})
            url = self.model.base + "/v1"
            agents = [dict(a) for a in agents]
            for a in agents:
                a.setdefault("llm", {})["base_url"] = url
                if a.get("mode") != "chat":
                    a.setdefault("stt", {})["base_url"] = url
                    a.setdefault("voice", {})["base_url"] = url
            config = {"state_dir": os.path.join(self.dir, "state"),
                      "api": {"listen": f"127.0.0.1:{self.port}", "tokens": tokens or [TOKEN]},
                      "audio": {"rt_priority": 0}, "agents": agents, "lines": list(lines)}
            config.update(extra_config or {})
            self.config_path = os.path.join(self.dir, "osvid.json")
            with open(self.config_path, "w") as f:
                json.dump(config, f)
            self.start()
        except BaseException:
            self.stop()
            raise

    def start(self):
        if not os.access(OSVID, os.X_OK):
            raise AssertionError(f"osvid not found at {OSVID} (build it, or set OSVID)")
        self.stderr = open(os.path.join(self.dir, "osvid.stderr"), "w")
        self.proc = subprocess.Popen([OSVID, "--config", self.config_path], stdout=subprocess.DEVNULL,
                                     stderr=self.stderr)
        wait_until("osvid's API", lambda: self._health_ok(), timeout=30)

    def _health_ok(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"osvid exited with {self.proc.returncode}: {self.log()}")
        try:
            return self.api("GET", "/v1/health")[0] == 200
        except OSError:
            return False

    def log(self):
        try:
            with open(os.path.join(self.dir, "osvid.stderr")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.model:
            self.model.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def url(self, path):
        return self.base + path

    def api(self, method, path, body=None, token=None, content_type="application/json"):
        """(status, headers, parsed JSON or None) of one request to the API."""
        data = None
        headers = {"API-Token": self.token if token is None else token}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                status, hdrs = r.status, r.headers
        except urllib.error.HTTPError as e:
            raw, status, hdrs = e.read(), e.code, e.headers
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return status, hdrs, parsed

    def api_ok(self, method, path, body=None):
        status, _, parsed = self.api(method, path, body)
        if status not in (200, 201):
            raise AssertionError(f"{method} {path}: HTTP {status}: {parsed}")
        return parsed

    def place_call(self, agent_uuid, phone="9876543210", country="IN"):
        """POST /v1/call; returns the call id."""
        res = self.api_ok("POST", "/v1/call", {"agent_uuid": agent_uuid, "phone_number": phone,
                                               "country_code": country})
        return res["data"]["call_id"]

    def wait_call_done(self, call_id, timeout=60):
        """Waits for the call's final record and its recording link; returns the record."""
        def done():
            rec = self.api_ok("GET", f"/v1/call/{call_id}")["data"]
            if rec["status"] == "in_progress":
                return None
            return rec if self.api("GET", f"/v1/call/{call_id}/recording")[0] == 200 else None
        return wait_until(f"call {call_id} to end with a recording", done, timeout=timeout, interval=0.25)


@contextlib.contextmanager
def browser(width=1280, height=900, extra_args=()):
    """Headless Debian chromium through chromedriver, browser console captured (goog:loggingPrefs)."""
    from selenium import webdriver            # python3-selenium: a missing package fails the test here
    from selenium.webdriver.chrome.service import Service
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    for p, pkg in ((chromium, "chromium"), (driver_path, "chromium-driver")):
        if not os.access(p, os.X_OK):
            raise AssertionError(f"{p} not found: apt-get install {pkg}")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--window-size={width},{height}", "--autoplay-policy=no-user-gesture-required", *extra_args):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "OFF"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.set_window_size(width, height)
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def console_errors(driver):
    """The browser console entries at level SEVERE (errors, failed loads, CSP violations) since the last call."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def sign_in(driver, box, token=None, start="#/agents"):
    """Loads the console at route `start` and signs in with the box's token (or `token`); returns once that page
    has rendered. The default start is a page every build has (Home needs GET /v1/stats)."""
    from selenium.webdriver.common.by import By
    driver.get(box.url("/" + start))
    field = wait_until("the sign-in form", lambda: _visible(driver, By.ID, "token"), timeout=10)
    field.send_keys(token or box.token)
    driver.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    wait_until("the console's navigation", lambda: _visible(driver, By.ID, "nav"), timeout=10)
    want = start.lstrip("#").split("?")[0] or "/"
    wait_until(f"page {start} after sign-in", lambda: _rendered(driver, want, "__osviLastRendered"), timeout=15)


def _rendered(driver, want, flag="__osviRendered"):
    """True once the console has rendered route `want`; raises at once with the page's error when it failed."""
    done, error = driver.execute_script(f"return [window.{flag}, window.__osviRenderError];")
    if error:
        raise AssertionError(f"the console could not render {error}")
    return done == want


def _visible(driver, by, what):
    els = driver.find_elements(by, what)
    return els[0] if els and els[0].is_displayed() else None


def wait_rendered(driver, hash_path, timeout=15):
    """Goes to a console route (e.g. '#/calls') and waits for the page to finish rendering."""
    driver.execute_script("window.__osviRendered = null;"
                          "document.addEventListener('osvi:rendered', e => { window.__osviRendered = e.detail; }, {once: true});")
    if driver.execute_script("return location.hash;") == hash_path:
        driver.execute_script("location.hash = '#/__away';")  # so that going back fires hashchange
        time.sleep(0.05)
        driver.execute_script("window.__osviRendered = null;"
                              "document.addEventListener('osvi:rendered', e => { window.__osviRendered = e.detail; }, {once: true});")
    driver.execute_script("location.hash = arguments[0];", hash_path)
    want = hash_path.lstrip("#").split("?")[0] or "/"
    wait_until(f"page {hash_path} to render", lambda: _rendered(driver, want), timeout=timeout)


def screenshot(driver, name):
    """Writes a full-page PNG to SCREENSHOT_DIR/<name>.png (the build folder); returns its path."""
    os.makedirs(SCREENSHOT_DIR, exist_ok=True)
    path = os.path.join(SCREENSHOT_DIR, name + ".png")
    size = driver.get_window_size()
    h = driver.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight);")
    driver.set_window_size(size["width"], max(600, min(int(h) + 150, 6000)))
    driver.save_screenshot(path)
    driver.set_window_size(size["width"], size["height"])
    return path
