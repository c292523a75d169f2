"""Take the README's picture of the playground: a finished ReAct run in a thread, in headless
Chromium at 1280x900, against a real server and the scripted model (nothing leaves the machine).

    .venv/bin/python -m tests.service.playground_screenshot [--out docs/playground.png]

Needs what the browser tests need (Debian's chromium and chromium-driver).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from selenium.webdriver.common.by import By

from tests.service.live import QUESTION, ROOT, FakeLLM, serve
from tests.service.test_playground_browser import ask, by_id, chromium, open_playground, until

WIDTH, HEIGHT = 1280, 900


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "playground.png")
    out: Path = parser.parse_args().out
    with (
        tempfile.TemporaryDirectory() as workdir,
        FakeLLM() as llm,
        serve(Path(workdir), llm_url=llm.url) as service,
    ):
        browser = chromium(WIDTH, HEIGHT)
        try:
            open_playground(browser, service.base_url)
            by_id(browser, "thread-name").send_keys("Arithmetic")
            browser.find_element(By.CSS_SELECTOR, '#thread-form button[type="submit"]').click()
            until(browser, "the new thread", lambda b: "No turns yet" in by_id(b, "turns").text)
            ask(browser, QUESTION)
            until(browser, "the thread's turn", lambda b: "7006652" in by_id(b, "turns").text)
            # The viewport itself is WIDTH x HEIGHT (a window's size includes its frame).
            browser.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
            )
            # Down to the answer and the feedback buttons, as far as the top shows the question.
            browser.execute_script(
                "document.activeElement.blur();"
                "document.getElementById('thumb-up').scrollIntoView({block: 'end'});"
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            assert browser.save_screenshot(str(out)), "the screenshot failed"
        finally:
            browser.quit()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
