"""test_console.py: the web console in headless Chromium against a real osvid with a real call on a sim line.

Each page loads with zero browser console errors (screenshots at 360 and 1280 px go to the build folder), the
console's headers (CSP, nosniff, ETag) are present, Conversations shows the call and its recording reaches a
playable state in the page's <audio>, the Home cards match GET /v1/stats, a takeover clicked in the chat page
changes the session's mode in the API while the thread updates live, and an agent-limited token sees no write
buttons. Run: /usr/bin/python3 tests/browser/test_console.py (ctest -L browser does).
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Box, browser, chat_agent, console_errors, screenshot, sign_in, sim_line, voice_agent,  # noqa: E402
                     wait_rendered, wait_until)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
LIMITED_TOKEN = "LimitedToken0001"


class ConsoleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.box = Box(agents=[voice_agent("agent_front", "Front desk"), chat_agent("agent_chat", "Web chat")],
                      lines=[sim_line("sim0")],
                      tokens=["ConsoleTestTok01", {"token": LIMITED_TOKEN, "agents": ["agent_front"]}])
        try:
            b = cls.box
            cls.call_id = b.place_call("agent_front", "9876543210")
            cls.call = b.wait_call_done(cls.call_id)
            s = b.api_ok("POST", "/v1/chat/session", {"agent_uuid": "agent_chat", "customer_id": "cust-42"})
            cls.session_id = s["data"]["id"]
            b.api_ok("POST", "/v1/chat/inbound", {"agent_uuid": "agent_chat", "customer_id": "cust-42",
                                                  "content": "My kettle broke, I want to speak to a human"})
            b.api_ok("POST", "/v1/campaigns", {"id": 7, "name": "Renewals", "status": "inactive", "agents": ["agent_front"]})
            b.api_ok("POST", "/v1/dnd_numbers", {"agent_uuid": "agent_front", "phone": "9812345678", "reason": "asked"})
        except BaseException:
            cls.box.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.box.stop()

    def routes(self):
        return {"calls": "#/calls", "call": f"#/calls/{self.call_id}", "chat": "#/chat",
                "chat-session": f"#/chat/{self.session_id}", "campaigns": "#/campaigns", "campaign": "#/campaigns/7",
                "dnd": "#/dnd", "agents": "#/agents", "agent": "#/agents/agent_front"}

    def check_pages(self, routes):
        for width in (360, 1280):
            with browser(width=width) as driver:
                sign_in(driver, self.box)
                self.assertEqual(console_errors(driver), [])
                for name, route in routes.items():
                    with self.subTest(page=name, width=width):
                        wait_rendered(driver, route)
                        time.sleep(0.3)  # late requests of the page (recording, waveforms, event streams)
                        self.assertEqual(console_errors(driver), [], f"{name} at {width} px")
                        overflow = driver.execute_script(
                            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
                        self.assertLessEqual(overflow, 0, f"{name} at {width} px is wider than the screen")
                        screenshot(driver, f"{name}-{width}")

    def test_headers(self):
        status, headers, _ = self.box.api("GET", "/", token="")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Security-Policy"], CSP)
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        self.assertEqual(headers["Referrer-Policy"], "no-referrer")
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        etag = headers["ETag"]
        self.assertRegex(etag, r'^"[0-9a-f]{16}"$')
        self.assertEqual(headers["Cache-Control"], "no-cache")
        import urllib.request
        req = urllib.request.Request(self.box.url("/js/app.js"))
        with urllib.request.urlopen(req, timeout=5) as r:
            self.assertEqual(r.headers["Content-Type"], "text/javascript; charset=utf-8")
            self.assertEqual(r.headers["Content-Security-Policy"], CSP)
        req = urllib.request.Request(self.box.url("/"), headers={"If-None-Match": etag})
        try:
            urllib.request.urlopen(req, timeout=5)
            self.fail("a matching If-None-Match must answer 304")
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 304)
        self.assertEqual(self.box.api("GET", "/js/nothing.js", token="")[0], 404)
        self.assertEqual(self.box.api("POST", "/", body={}, token="")[0], 405)
        self.assertEqual(self.box.api("GET", "/v1/calls", token="")[0], 401)  # the API still wants its token
        self.assertEqual(self.box.api("GET", "/elsewhere", token="")[0], 401)

    def test_session_endpoint(self):
        self.assertEqual(self.box.api_ok("GET", "/v1/session")["data"], {"admin": True, "agents": None})
        status, _, body = self.box.api("GET", "/v1/session", token=LIMITED_TOKEN)
        self.assertEqual(status, 200)
        self.assertEqual(body["data"], {"admin": False, "agents": ["agent_front"]})

    def test_pages_load_without_console_errors(self):
        self.check_pages(self.routes())

    def test_home_cards_match_stats(self):
        # Needs GET /v1/stats (the stats room of issue 16).
        with browser(width=1280) as driver:
            sign_in(driver, self.box, start="#/?days=7")
            stats = self.box.api_ok("GET", "/v1/stats?days=7")["data"]["cards"]
            shown = {el.get_attribute("data-card"): el.get_attribute("data-value")
                     for el in driver.find_elements("css selector", "#stat-cards [data-card]")}
            self.assertEqual(set(shown), set(stats))
            for key, value in stats.items():
                self.assertAlmostEqual(float(shown[key]), float(value), places=6, msg=key)
            self.assertGreaterEqual(stats["total_calls"], 1)
            legend = driver.find_elements("css selector", ".legend-item")
            self.assertEqual(len(legend), 5)
            legend[0].click()
            self.assertEqual(legend[0].get_attribute("aria-pressed"), "false")
            self.assertEqual(console_errors(driver), [])
        self.check_pages({"home": "#/?days=7", "home-90": "#/?days=90"})

    def test_box_page(self):
        self.check_pages({"box": "#/box"})
        # The call placed in setUpClass contacted the model server: its breaker is listed, closed.
        from selenium.webdriver.common.by import By
        with browser(width=1280) as driver:
            sign_in(driver, self.box)
            wait_rendered(driver, "#/box")
            rows = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "table tr")]
            self.assertTrue(any(self.box.model.base + "/v1" in r and "closed" in r for r in rows), rows)

    def test_conversations_recording_playable(self):
        with browser(width=1280) as driver:
            sign_in(driver, self.box)
            wait_rendered(driver, "#/calls")
            links = driver.find_elements("css selector", "a.call-link")
            self.assertTrue(any(self.call_id in a.get_attribute("href") for a in links))
            next(a for a in links if self.call_id in a.get_attribute("href")).click()
            wait_until("the call page's audio element", lambda: driver.find_elements("id", "recording"), timeout=15)
            ready = wait_until("the recording to be playable (readyState >= 2)", lambda: driver.execute_script(
                "const a = document.getElementById('recording'); return a.readyState >= 2 && a.readyState;"), timeout=20)
            self.assertGreaterEqual(ready, 2)
            status = wait_until("the waveforms", lambda: "channels" in driver.find_element(
                "css selector", ".channels + p").text and driver.find_element("css selector", ".channels + p").text)
            self.assertIn("2 channels", status)
            turns = driver.find_elements("css selector", ".transcript .turn")
            self.assertGreaterEqual(len(turns), 1)
            self.assertIn("Hello, front desk.", driver.find_element("css selector", ".transcript").text)
            self.assertEqual(console_errors(driver), [])

    def test_chat_takeover_and_live_thread(self):
        path = f"/v1/chat/session/{self.session_id}"
        self.assertEqual(self.box.api_ok("GET", path)["data"]["mode"], "ai")
        with browser(width=1280) as driver:
            sign_in(driver, self.box)
            wait_rendered(driver, "#/chat")
            self.assertIn("cust-42", driver.find_element("id", "sessions").text)
            wait_rendered(driver, f"#/chat/{self.session_id}")
            wait_until("the live stream", lambda: "on" in driver.find_element("id", "live-state").text)
            driver.find_element("css selector", "button[data-command=takeover]").click()
            wait_until("the session's mode to be support in the API",
                       lambda: self.box.api_ok("GET", path)["data"]["mode"] == "support")
            wait_until("the page to show support mode", lambda: "support" in driver.find_element("id", "session-mode").text)
            # A customer message sent elsewhere arrives in the open thread through the event stream.
            self.box.api_ok("POST", "/v1/chat/inbound", {"agent_uuid": "agent_chat", "customer_id": "cust-42",
                                                         "content": "Is anyone there?"})
            wait_until("the live message", lambda: "Is anyone there?" in driver.find_element("id", "thread").text)
            self.assertEqual(console_errors(driver), [])

    def test_writes_from_pages(self):
        # DND add and remove, a campaign activated, a CSV of contacts uploaded: each seen through the API.
        import tempfile
        from selenium.webdriver.common.by import By
        with browser(width=1280) as driver:
            sign_in(driver, self.box)
            wait_rendered(driver, "#/dnd?agent_uuid=agent_front")
            driver.find_element(By.ID, "dnd-phone").send_keys("98123 00001")
            driver.find_element(By.ID, "dnd-reason").send_keys("browser test")
            driver.find_element(By.CSS_SELECTOR, "form[aria-label='Add a number'] button[type=submit]").click()
            listed = lambda: [e["phone"] for e in self.box.api_ok(
                "GET", "/v1/dnd_numbers?agent_uuid=agent_front&search=9812300001")["data"]]
            wait_until("the number on the DND list", lambda: listed() == ["+919812300001"])
            button = wait_until("its Remove button", lambda: driver.find_elements(
                By.CSS_SELECTOR, "button[aria-label='Remove +919812300001']"))
            button[0].click()
            wait_until("the number off the DND list", lambda: listed() == [])

            wait_rendered(driver, "#/campaigns/7")
            with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
                f.write("phone,person_name\n9876500001,Asha\n9876500002,Ravi\nnot-a-number,X\n")
            driver.find_element(By.ID, "csv-file").send_keys(f.name)
            driver.find_element(By.CSS_SELECTOR, "form[aria-label='Upload contacts'] button[type=submit]").click()
            wait_until("the upload's report", lambda: "2 of 3 contacts accepted" in driver.find_element(By.ID, "page").text)
            os.unlink(f.name)
            contacts = self.box.api_ok("GET", "/v1/campaigns/7/contacts")["meta"]["total_count"]
            self.assertEqual(contacts, 2)
            wait_until("the Activate button", lambda: driver.find_elements(By.CSS_SELECTOR, "button[data-campaign='7']"))
            driver.find_element(By.CSS_SELECTOR, "button[data-campaign='7']").click()
            wait_until("the campaign active in the API",
                       lambda: self.box.api_ok("GET", "/v1/campaigns/7")["data"]["status"] == "active")
            self.box.api_ok("PATCH", "/v1/campaigns/7", {"status": "inactive"})  # other tests expect it paused
            self.assertEqual(console_errors(driver), [])

    def test_keyboard_reaches_the_controls_with_visible_focus(self):
        from selenium.webdriver.common.keys import Keys
        with browser(width=1280) as driver:
            sign_in(driver, self.box)
            wait_rendered(driver, "#/calls")
            driver.find_element("tag name", "body").click()
            driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
            seen = []
            for _ in range(30):
                driver.switch_to.active_element.send_keys(Keys.TAB)
                el = driver.switch_to.active_element
                seen.append(driver.execute_script(
                    "const e = arguments[0], s = getComputedStyle(e);"
                    "return [e.tagName, e.id || e.getAttribute('href') || e.textContent.trim().slice(0, 40),"
                    "        s.outlineStyle, e.type || ''];", el))
            reached = {x[1] for x in seen}
            for want in ("#main", "#/calls", "#/chat", "signout", "status", "agent_uuid", "Apply",
                         f"#/calls/{self.call_id}"):
                self.assertIn(want, reached, f"Tab never reached {want}: {seen}")
            # Focus leaving the page (BODY) and the date fields' own picker parts are the browser's to draw.
            drawn = [x for x in seen if x[0] != "BODY" and x[3] != "date"]
            self.assertTrue(all(x[2] != "none" for x in drawn), f"an element has no focus outline: {drawn}")
            # Enter on a focused link navigates (real links, not click handlers on divs).
            link = driver.find_element("css selector", f"a[href='#/calls/{self.call_id}']")
            driver.execute_script("arguments[0].focus();", link)
            link.send_keys(Keys.ENTER)
            wait_until("the call page", lambda: driver.find_elements("id", "recording"), timeout=15)
            self.assertEqual(console_errors(driver), [])

    def test_limited_token_sees_no_write_buttons(self):
        # Every write control carries data-write: an admin token sees them on these pages, a limited one none.
        pages = ("#/dnd", "#/campaigns", "#/campaigns/7", "#/agents/agent_front")
        for token, admin in ((None, True), (LIMITED_TOKEN, False)):
            with browser(width=1280) as driver:
                sign_in(driver, self.box, token=token)
                self.assertEqual(driver.find_element("css selector", "#nav [data-admin]").is_displayed(), admin)
                for route in pages:
                    wait_rendered(driver, route)
                    writes = driver.find_elements("css selector", "#page [data-write]")
                    if admin:
                        self.assertNotEqual(writes, [], route)
                    else:
                        self.assertEqual(writes, [], route)
                self.assertEqual(console_errors(driver), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
