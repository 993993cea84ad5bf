"""test_web_call.py: the browser test call through the real console page, in headless Chromium.

A real osvid and osvi-model-server (harness.Box); chromium's fake microphone plays an espeak-ng sentence rendered
at test time. The test signs in on the console, opens the agent's page and presses "Test call" (agent.js loads
testcall.js): the page must show the caller's words (the model server's scenario STT transcript) and the agent's
reply in its transcript and the end of the call, with no browser console error (so the console's CSP lets the
page open its same-origin WebSocket). The call then appears in Conversations, its page shows mode "test" and its
recording becomes playable in the page's <audio>; the record through the API says execution_mode "test".
Run: /usr/bin/python3 tests/browser/test_web_call.py (ctest -L browser does).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Box, browser, console_errors, screenshot, sign_in, voice_agent,  # noqa: E402
                     wait_rendered, wait_until)

SENTENCE = "I would like to book a table for two"
REPLY = "Booked. Goodbye!"
AGENT = "agent_front"


def speech_wav(path, workdir):
    """The sentence (espeak-ng), then 4 s of silence: chromium loops the file as the microphone, and the pause lets
    the box's end-of-turn detection close the caller's turn."""
    raw = os.path.join(workdir, "sentence.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", raw, SENTENCE], check=True, timeout=30)
    with wave.open(raw, "rb") as r:
        params = r.getparams()
        frames = r.readframes(r.getnframes())
    with wave.open(path, "wb") as w:
        w.setparams(params)
        w.writeframes(frames + b"\x00" * (params.sampwidth * params.framerate * 4))


class WebCallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # What the caller says reaches the agent as the scenario's transcript (the stand-in STT does not listen);
        # the reply ends the call with the end_call tool after its goodbye has played.
        cls.box = Box(agents=[voice_agent(AGENT, "Front desk")], scenario={
            "stt": {"transcripts": [SENTENCE]},
            "llm": {"rules": [{"match": "table", "reply": REPLY,
                               "tool_calls": [{"name": "end_call", "arguments": {}}]}]}})
        cls.workdir = tempfile.mkdtemp(prefix="osvi-webcall-")
        try:
            cls.wav = os.path.join(cls.workdir, "caller.wav")
            speech_wav(cls.wav, cls.workdir)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.box.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def test_call_from_the_agent_page(self):
        from selenium.webdriver.common.by import By
        args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                "--use-file-for-fake-audio-capture=" + self.wav]
        with browser(width=1280, extra_args=args) as driver:
            sign_in(driver, self.box)
            wait_rendered(driver, f"#/agents/{AGENT}")
            self.assertEqual(console_errors(driver), [])
            self.assertEqual(self.box.api_ok("GET", "/v1/calls?agent_uuid=" + AGENT)["data"], [])
            driver.find_element(By.ID, "testcall-start").click()

            state = lambda: driver.find_element(By.ID, "testcall-state").text
            wait_until("the call to connect", lambda: state() == "connected" or state().startswith("Ended"), timeout=20)
            ended = wait_until("the call to end", lambda: state().startswith("Ended") and state(), timeout=60)
            screenshot(driver, "web-call-agent-page")
            self.assertEqual(ended, "Ended: picked")

            turns = [(li.get_attribute("class"), li.find_element(By.CSS_SELECTOR, ".turn-text").text)
                     for li in driver.find_elements(By.CSS_SELECTOR, "#testcall-transcript li")]
            self.assertIn(("turn turn-user", SENTENCE), turns)
            self.assertIn(("turn turn-agent", REPLY), turns)
            self.assertFalse(driver.find_element(By.ID, "testcall-start").get_property("disabled"))
            self.assertTrue(driver.find_element(By.ID, "testcall-stop").get_property("disabled"))
            # A CSP refusing the WebSocket, a failed module load or an uncaught error all log at SEVERE.
            self.assertEqual(console_errors(driver), [])

            link = driver.find_element(By.CSS_SELECTOR, "#testcall-result a")
            call_id = link.get_attribute("href").rsplit("/", 1)[1]
            # The agent page's recent calls list the call just made, without a reload.
            wait_until("the agent page to list the test call", lambda: driver.find_elements(
                By.CSS_SELECTOR, f"#agent-recent-calls a[href$='#/calls/{call_id}']"), timeout=10)
            rec = self.box.wait_call_done(call_id, timeout=30)
            self.assertEqual(rec["execution_mode"], "test")
            self.assertEqual(rec["status"], "picked")
            self.assertEqual(rec["call_type"], "inbound")
            self.assertEqual(rec["agent_uuid"], AGENT)
            stored = self.box.api_ok("GET", f"/v1/call/{call_id}/transcript")["data"]["transcript"]
            self.assertTrue(any(t["role"] == "user" and t["text"] == SENTENCE for t in stored), stored)

            # Conversations lists it; its page says mode "test" and plays the recording.
            wait_rendered(driver, "#/calls")
            links = [a for a in driver.find_elements(By.CSS_SELECTOR, "a.call-link")
                     if a.get_attribute("href").endswith(f"#/calls/{call_id}")]
            self.assertEqual(len(links), 1)
            links[0].click()
            wait_until("the call page's audio element", lambda: driver.find_elements(By.ID, "recording"), timeout=15)
            facts = {dt.text: dd.text for dt, dd in zip(driver.find_elements(By.CSS_SELECTOR, "dl.facts > dt"),
                                                        driver.find_elements(By.CSS_SELECTOR, "dl.facts > dd"))}
            self.assertEqual(facts.get("mode"), "test", facts)
            self.assertEqual(driver.find_element(By.CSS_SELECTOR, ".page-head h1").text, "Test call from the browser")
            self.assertEqual(facts.get("call id"), call_id, facts)
            ready = wait_until("the recording to be playable (readyState >= 2)", lambda: driver.execute_script(
                "const a = document.getElementById('recording'); return a.readyState >= 2 && a.readyState;"),
                timeout=20)
            self.assertGreaterEqual(ready, 2)
            self.assertIn(SENTENCE, driver.find_element(By.CSS_SELECTOR, ".transcript").text)
            screenshot(driver, "web-call-record")
            self.assertEqual(console_errors(driver), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
