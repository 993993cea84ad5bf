#!/usr/bin/python3
"""console_load_bench.py: the web console's first load in headless Chromium on loopback.

For each scenario, RUNS loads in one browser with the HTTP cache cleared (cold) or kept (warm, the console's
files revalidated with If-None-Match), each read from the Navigation and Resource Timing APIs: requests,
bytes transferred (headers + body as the network saw them: transferSize), and the time from navigation start
to interactive = the User Timing mark the console sets once the page has rendered with its data
(`osvi:rendered:<route>`; `osvi:rendered:signin` for the sign-in form); requests and bytes once the page has
started no new request for 0.5 s (a call's page fetches its recording after it is interactive). A real osvid with one real call on a
sim line, as the browser tests start it (tests/browser/harness.py).

    /usr/bin/python3 bench/console_load_bench.py [--runs 20]      (after building osvid and osvi-model-server)
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "browser"))
from harness import Box, browser, sign_in, sim_line, voice_agent, wait_until  # noqa: E402

MEASURE = """
const nav = performance.getEntriesByType('navigation')[0];
const res = performance.getEntriesByType('resource');
const mark = performance.getEntriesByName(arguments[0])[0];
const api = res.filter(r => new URL(r.name).pathname.startsWith('/v1/'));
const files = res.filter(r => !new URL(r.name).pathname.startsWith('/v1/'));
const sum = (xs) => xs.reduce((a, r) => a + r.transferSize, 0);
return {tti: mark ? mark.startTime : null, dcl: nav.domContentLoadedEventEnd,
        requests: 1 + res.length, file_requests: 1 + files.length, api_requests: api.length,
        bytes: nav.transferSize + sum(res), file_bytes: nav.transferSize + sum(files), api_bytes: sum(api),
        body_bytes: nav.decodedBodySize + files.reduce((a, r) => a + r.decodedBodySize, 0)};
"""


def run(driver, box, route, mark, cold):
    if cold:
        driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get("about:blank")  # a full navigation each time, also when only the hash would differ
    driver.get(box.url("/" + route))
    first = wait_until(f"{mark}", lambda: (lambda m: m if m["tti"] is not None else None)(
        driver.execute_script(MEASURE, mark)), timeout=20, interval=0.02)
    # The requests a page makes after it is interactive (a call's recording and waveforms) count too: the
    # figures are read once no new request has started for 0.5 s.
    last, stable_since = first, time.monotonic()
    while time.monotonic() - stable_since < 0.5:
        time.sleep(0.05)
        now = driver.execute_script(MEASURE, mark)
        if now["requests"] != last["requests"] or now["bytes"] != last["bytes"]:
            last, stable_since = now, time.monotonic()
    return {**last, "tti": first["tti"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    with Box(agents=[voice_agent("agent_front", "Front desk")], lines=[sim_line("sim0")]) as box:
        call_id = box.place_call("agent_front")
        box.wait_call_done(call_id)
        with browser(width=1280) as driver:
            driver.execute_cdp_cmd("Network.enable", {})
            sign_in(driver, box)  # the token into this tab's session storage
            scenarios = [("sign-in page, cold", "", "osvi:rendered:signin", True, True),
                         ("Conversations, signed in, cold", "#/calls", "osvi:rendered:/calls", True, False),
                         ("Conversations, signed in, warm", "#/calls", "osvi:rendered:/calls", False, False),
                         ("a call's page, signed in, cold", f"#/calls/{call_id}", f"osvi:rendered:/calls/{call_id}",
                          True, False)]
            print(f"| scenario ({args.runs} loads each) | requests (files + API) | bytes transferred (files + API) "
                  f"| files decoded | interactive p50 / p90 / max | DOMContentLoaded p50 |")
            print("|---|---|---|---|---|---|")
            for name, route, mark, cold, signed_out in scenarios:
                results = []
                for _ in range(args.runs):
                    if signed_out:
                        driver.get(box.url("/"))
                        driver.execute_script("sessionStorage.clear();")
                    results.append(run(driver, box, route, mark, cold))
                    if signed_out:
                        driver.execute_script("sessionStorage.setItem('osvi.token', arguments[0]);", box.token)
                ttis = sorted(r["tti"] for r in results)
                last = results[-1]
                p90 = ttis[min(len(ttis) - 1, int(len(ttis) * 0.9))]
                print(f"| {name} | {last['requests']} ({last['file_requests']} + {last['api_requests']}) "
                      f"| {last['bytes']:,} ({last['file_bytes']:,} + {last['api_bytes']:,}) | {last['body_bytes']:,} "
                      f"| {statistics.median(ttis):.0f} / {p90:.0f} / {ttis[-1]:.0f} ms "
                      f"| {statistics.median(r['dcl'] for r in results):.0f} ms |")


if __name__ == "__main__":
    main()
