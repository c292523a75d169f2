"""The web playground in a real browser: headless Chromium (Debian's, driven by Selenium)
against a real uvicorn with ``AGENT_API_KEYS`` set and a scripted model server (``FakeLLM``).

A user's session, piece by piece: the page asks for the key, then a ReAct run unfolds as cards,
a PAL run shows its program as code, Stop cancels a run, threads keep their turns, a run reads
the documents chosen and lists its sources, feedback and the stored run reach the server.
After each, the page must have asked nothing of any other origin, and the browser must have
reported no policy violation or script error.

Chromium and its driver come from Debian (``apt-get install chromium chromium-driver``;
``make test-servers`` installs them). Without them these tests fail rather than skip: the
playground would be unchecked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as Driver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from tests.service.live import ANSWER, PAL_TAG, QUESTION, FakeLLM, Service, serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
KEY = "playground-browser-key-0123"
TIMEOUT_S = 20


def chromium(width: int = 1280, height: int = 900) -> webdriver.Chrome:
    """Headless Chromium with its console log kept (``get_log("browser")``)."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is needed: apt-get install chromium"
    assert CHROMEDRIVER.exists(), f"{CHROMEDRIVER} is needed: apt-get install chromium-driver"
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Driver(str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
def service(llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    workdir = tmp_path_factory.mktemp("playground")
    allowed = "python,search,retrieve,finish"
    with serve(workdir, llm_url=llm.url, AGENT_API_KEYS=KEY, ALLOWED_ACTIONS=allowed) as running:
        running.client.headers["authorization"] = f"Bearer {KEY}"
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: webdriver.Chrome, service: Service) -> Iterator[webdriver.Chrome]:
    """The playground, opened with the key (typed when asked); checked when the test ends."""
    open_playground(browser, service.base_url)
    yield browser
    assert_stayed_home(browser, service.base_url)


# -- helpers ---------------------------------------------------------------------------------


def until(
    browser: webdriver.Chrome, what: str, check: Callable[[webdriver.Chrome], object]
) -> None:
    """Wait (polling) until ``check`` is true: what a test would otherwise sleep for. The page
    re-renders its lists (threads, cards) as data arrives: an element found just before it was
    replaced is stale, and the check is simply tried again (a flake in CI otherwise)."""
    retried = (NoSuchElementException, StaleElementReferenceException)
    wait = WebDriverWait(browser, TIMEOUT_S, ignored_exceptions=retried)
    wait.until(check, f"waited {TIMEOUT_S} s for {what}")


def first(browser: webdriver.Chrome, selector: str) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, selector)


def by_id(browser: webdriver.Chrome, element_id: str) -> WebElement:
    return browser.find_element(By.ID, element_id)


def shown(browser: webdriver.Chrome, element_id: str) -> bool:
    found = browser.find_elements(By.ID, element_id)
    return bool(found) and found[0].is_displayed()


def text(browser: webdriver.Chrome, element_id: str) -> str:
    return str(by_id(browser, element_id).get_attribute("textContent") or "")


def enter_key(browser: webdriver.Chrome, key: str) -> None:
    until(browser, "the key form", lambda b: shown(b, "key-input"))
    field = by_id(browser, "key-input")
    field.clear()
    field.send_keys(key, Keys.ENTER)


def actions_listed(browser: webdriver.Chrome) -> bool:
    return bool(browser.find_elements(By.CSS_SELECTOR, '#actions input[value="python"]'))


def open_playground(browser: webdriver.Chrome, base_url: str) -> None:
    browser.get(f"{base_url}/ui")
    until(browser, "the page", lambda b: actions_listed(b) or shown(b, "key-form"))
    if shown(browser, "key-form"):
        enter_key(browser, KEY)
    until(browser, "the actions", actions_listed)


def choose_mode(browser: webdriver.Chrome, mode: str) -> None:
    first(browser, f'input[name="mode"][value="{mode}"]').click()


def start(browser: webdriver.Chrome, question: str) -> str:
    """Types the question and runs it with Ctrl+Enter; returns the previous run's id."""
    before = text(browser, "run-id")
    box = by_id(browser, "question")
    box.clear()
    box.send_keys(question)
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    return before


def ask(browser: webdriver.Chrome, question: str) -> str:
    """Runs a question to its end; the run's id."""
    before = start(browser, question)
    until(
        browser,
        "the run's final answer",
        lambda b: shown(b, "final") and text(b, "run-id") not in ("", before),
    )
    return text(browser, "run-id")


def cards(browser: webdriver.Chrome) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, "#steps > li.card")


def kinds(browser: webdriver.Chrome) -> list[str]:
    return [str(card.get_attribute("class")).removeprefix("card ") for card in cards(browser)]


def assert_stayed_home(browser: webdriver.Chrome, base_url: str) -> None:
    """Every URL the page loaded or called is the service's, none holds the key, and the
    browser reported no policy violation or uncaught error."""
    urls = browser.execute_script(
        "return ['navigation', 'resource'].flatMap("
        "(type) => performance.getEntriesByType(type).map((e) => e.name))"
    )
    assert any(url.endswith("/ui/playground.js") for url in urls), urls
    foreign = [url for url in urls if not url.startswith(f"{base_url}/")]
    assert foreign == [], foreign
    assert not [url for url in urls if KEY in url]
    problems = [
        entry["message"]
        for entry in browser.get_log("browser")  # type: ignore[no-untyped-call]
        if "Content Security Policy" in entry["message"]
        or "Trusted Type" in entry["message"]
        or "Uncaught" in entry["message"]
    ]
    assert problems == [], problems


# -- the tests -------------------------------------------------------------------------------


def test_a_react_run_unfolds_as_cards_once_the_key_is_given(
    browser: webdriver.Chrome, service: Service
) -> None:
    browser.get(f"{service.base_url}/")  # a browser at the root is sent on to the page
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    assert browser.current_url == f"{service.base_url}/ui"
    until(browser, "the key form", lambda b: shown(b, "key-form"))
    assert "missing API key" in text(browser, "key-reason")
    enter_key(browser, "not-the-key-0123456789")
    until(browser, "the wrong key's refusal", lambda b: "wrong API key" in text(b, "key-reason"))
    enter_key(browser, KEY)
    until(browser, "the actions", actions_listed)
    assert browser.execute_script("return sessionStorage.getItem('reactpal.apiKey')") == KEY
    python = first(browser, '#actions input[value="python"]')
    assert python.is_selected() and python.is_enabled()

    start(browser, "   ")  # the server's 422, shown with its detail
    until(browser, "the error", lambda b: shown(b, "error"))
    assert "422" in text(browser, "error") and "blank" in text(browser, "error")

    run_id = ask(browser, QUESTION)
    assert not shown(browser, "error")
    assert kinds(browser) == ["thought", "action", "observation", "thought", "action"]
    titles = [card.find_element(By.TAG_NAME, "h3").text for card in cards(browser)]
    assert titles[1] == "Action · step 1: python" and titles[4] == "Action · step 2: finish"
    program = cards(browser)[1].find_element(By.CSS_SELECTOR, "pre > code.language-python")
    assert program.text == "print(1234 * 5678)"
    assert cards(browser)[2].text.endswith(ANSWER)
    assert text(browser, "final-status") == "finished"
    assert text(browser, "final-answer") == ANSWER
    assert "2 LLM calls" in text(browser, "final-stats")
    assert "30 tokens" in text(browser, "final-stats")  # the fake's 15 per call
    stored = service.client.get(f"/runs/{run_id}").json()
    assert stored["status"] == "finished" and stored["answer"] == ANSWER
    assert_stayed_home(browser, service.base_url)


def test_a_pal_program_is_shown_as_code_and_feedback_is_stored(
    page: webdriver.Chrome, service: Service
) -> None:
    choose_mode(page, "pal")
    assert by_id(page, "samples").is_enabled()
    assert by_id(page, "samples").get_attribute("max") == "8"  # the server's MAX_SAMPLES
    python = first(page, '#actions input[value="python"]')
    assert not python.is_enabled()  # a PAL run is one program: no actions to choose
    run_id = ask(page, f"{QUESTION} {PAL_TAG}")
    assert kinds(page) == ["action", "observation"]
    program = cards(page)[0].find_element(By.CSS_SELECTOR, "pre > code.language-python")
    source = str(program.get_attribute("textContent"))
    assert source.startswith("def solution():") and '"""<b>1234</b> * 5678"""' in source
    assert page.find_elements(By.CSS_SELECTOR, "#steps b") == []  # shown as text, not markup
    assert text(page, "final-answer") == ANSWER
    assert '"agreement": 1' in text(page, "final-details-json")

    by_id(page, "thumb-up").click()
    assert by_id(page, "thumb-up").get_attribute("aria-pressed") == "true"
    by_id(page, "correction").send_keys("7,006,652")
    first(page, '#feedback-form button[type="submit"]').click()
    until(page, "a confirmation", lambda b: "Feedback saved" in text(b, "feedback-status"))
    assert "score +1, correction" in text(page, "feedback-status")

    export = service.client.get("/feedback/export", params={"format": "raw"})
    records = [json.loads(line) for line in export.text.splitlines()]
    mine = [r for r in records if r["run_id"] == run_id]
    assert len(mine) == 1 and mine[0]["feedback"]["score"] == 1
    assert mine[0]["feedback"]["correction"] == "7,006,652"

    by_id(page, "show-stored").click()
    until(page, "the stored run", lambda b: run_id in text(b, "stored-json"))
    stored = json.loads(text(page, "stored-json"))
    assert stored["run_id"] == run_id and stored["feedback"]["score"] == 1
    assert by_id(page, "stored-link").get_attribute("href") == f"{service.base_url}/runs/{run_id}"
    choose_mode(page, "react")


def test_stop_cancels_the_run_in_progress(
    page: webdriver.Chrome, service: Service, llm: FakeLLM
) -> None:
    llm.arm()
    try:
        start(page, f"{QUESTION} [fault:gated]")
        assert llm.gated.wait(TIMEOUT_S), "the model was never asked"
        # Live: the run's first event is on the page while the model has not answered.
        until(page, "the run's id", lambda b: text(b, "run-id") != "")
        until(page, "Stop", lambda b: by_id(b, "stop").is_enabled())
        assert not shown(page, "final") and not by_id(page, "run").is_enabled()
        by_id(page, "stop").click()
        until(page, "the cancelled run's end", lambda b: shown(b, "final"))
    finally:
        llm.release()
    assert text(page, "final-status") == "cancelled"
    assert service.client.get(f"/runs/{text(page, 'run-id')}").json()["status"] == "cancelled"
    assert by_id(page, "run").is_enabled() and not by_id(page, "stop").is_enabled()


def test_a_thread_keeps_its_turns(page: webdriver.Chrome, service: Service) -> None:
    by_id(page, "thread-name").send_keys("Multiplication")
    first(page, '#thread-form button[type="submit"]').click()
    selected = '#thread-list button[aria-pressed="true"]'
    until(page, "the new thread", lambda b: "Multiplication" in first(b, selected).text)
    thread_id = str(first(page, selected).get_attribute("data-thread-id"))
    until(page, "the thread's empty history", lambda b: "No turns yet" in text(b, "turns"))

    ask(page, QUESTION)
    until(page, "the turn in the history", lambda b: ANSWER in text(b, "turns"))
    assert QUESTION in text(page, "turns")
    thread = service.client.get(f"/threads/{thread_id}").json()
    assert [turn["question"] for turn in thread["turns"]] == [QUESTION]

    first(page, '#thread-list button[data-thread-id=""]').click()
    until(page, "the history to close", lambda b: not shown(b, "history"))
    page.refresh()  # the list comes from the server: the thread is still there
    mine = f'[data-thread-id="{thread_id}"]'
    until(page, "the thread list", lambda b: b.find_elements(By.CSS_SELECTOR, mine))
    first(page, mine).click()
    until(page, "the thread's turns", lambda b: ANSWER in text(b, "turns"))


def test_a_run_reads_the_documents_chosen_and_lists_its_sources(
    page: webdriver.Chrome, service: Service
) -> None:
    made = service.client.post("/collections", json={"name": "handbook", "description": "ours"})
    assert made.status_code == 201, made.text
    text_body = {"source": "handbook.md", "text": "# Freedonia\n\nIts capital is Fredville."}
    added = service.client.post("/collections/handbook/documents", json=text_body)
    assert added.status_code == 201, added.text
    page.refresh()  # the collections are listed when the page loads
    until(page, "the collections", lambda b: shown(b, "collections-fieldset"))
    assert "1 documents, 1 passages" in str(
        first(page, '#collections input[value="handbook"]')
        .find_element(By.XPATH, "..")
        .get_attribute("title")
    )
    retrieve = first(page, '#actions input[value="retrieve"]')
    assert not retrieve.is_enabled() and not retrieve.is_selected()  # nothing to read yet
    assert "tick a collection" in str(retrieve.find_element(By.XPATH, "..").text)
    first(page, '#collections input[value="handbook"]').click()
    assert retrieve.is_enabled() and retrieve.is_selected()
    retrieve.click()  # unticked by the user: the page sends it all the same
    run_id = ask(page, "[fault:cite] What is the capital of Freedonia?")
    assert text(page, "final-answer") == f"{ANSWER} [1]"
    until(page, "the sources", lambda b: shown(b, "final-sources"))
    (source,) = page.find_elements(By.CSS_SELECTOR, "#sources > li")
    assert source.text.startswith("[1] handbook.md / Freedonia (handbook)")
    assert "cited" in str(source.get_attribute("class"))
    assert "Fredville" in str(source.get_attribute("title"))
    stored = service.client.get(f"/runs/{run_id}").json()
    assert [step["action"] for step in stored["steps"]] == ["retrieve", "finish"]
    assert stored["details"]["sources"][0]["source"] == "handbook.md"


def test_a_file_is_added_to_a_new_collection_and_a_bad_one_refused(
    page: webdriver.Chrome, service: Service, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nThe meeting is on Tuesday.\n", encoding="utf-8")
    image = tmp_path / "photo.md"  # a PNG under a text name: told by its content
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    until(page, "the documents panel", lambda b: shown(b, "documents-panel"))

    def add(collection: str, path: Path) -> None:
        field = by_id(page, "document-collection")
        field.clear()
        field.send_keys(collection)
        by_id(page, "document-file").send_keys(str(path))
        by_id(page, "document-add").click()

    add("notes", notes)
    until(page, "the file added", lambda b: "Added notes.md" in text(b, "document-status"))
    assert text(page, "document-status") == "Added notes.md to notes: 1 passages."
    until(
        page,
        "the new collection",
        lambda b: b.find_elements(By.CSS_SELECTOR, '#collections input[value="notes"]'),
    )
    made = service.client.get("/collections/notes/documents").json()["documents"]
    assert [(d["source"], d["chunks"]) for d in made] == [("notes.md", 1)]

    add("notes", image)
    until(page, "the refusal", lambda b: shown(b, "document-error"))
    assert text(page, "document-error").startswith("415 ")
    assert len(service.client.get("/collections/notes/documents").json()["documents"]) == 1


def test_the_page_fits_a_phone(page: webdriver.Chrome) -> None:
    phone = {"width": 375, "height": 812, "deviceScaleFactor": 1, "mobile": True}
    page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    try:
        ask(page, QUESTION)
        width, overflow = page.execute_script(
            "const root = document.documentElement;"
            "return [root.clientWidth, root.scrollWidth - root.clientWidth]"
        )
        assert width == 375
        assert overflow <= 0, f"{overflow} px wider than the screen"
        threads = by_id(page, "thread-list").rect
        assert threads["x"] + threads["width"] <= 375  # one column: the panel fits too
    finally:
        page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
