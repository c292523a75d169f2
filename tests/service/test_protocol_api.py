"""AGENT_PROTOCOL through the app: the probe at start-up, /readyz, and the runs it shapes."""

from __future__ import annotations

import json

from tests.fakes import FakeOpenAI, Scenario
from tests.service.conftest import AppFactory

QUESTION = "How many days are there between 1969-07-20 and 1989-11-09?"
PROGRAM = "from datetime import date\nprint((date(1989, 11, 9) - date(1969, 7, 20)).days)"


def step(action: str, action_input: str) -> str:
    return json.dumps({"thought": "t", "action": action, "action_input": action_input})


async def test_auto_runs_json_steps_on_a_server_that_enforces_a_schema(
    app_client: AppFactory,
) -> None:
    steps = [step("python", PROGRAM), step("finish", "$7417")]
    fake = FakeOpenAI(scenarios=[Scenario("1969-07-20", steps=steps)], enforces="llama_cpp")
    async with app_client(fake, agent_protocol="auto") as client:
        body = (await client.post("/ask", json={"question": QUESTION})).json()
        ready = (await client.get("/readyz")).json()
    assert body["status"] == "finished"
    assert body["answer"] == "7417"  # the exemplar's currency is not part of the answer
    assert body["steps"][0]["observation"] == "7417"
    run = [r for r in fake.chat_requests if QUESTION in r.text]
    assert run[0].body["response_format"]["type"] == "json_object"  # llama-cpp's dialect
    protocol = ready["checks"]["llm"]["protocol"]
    assert protocol["configured"] == "auto" and protocol["effective"] == "json"
    assert protocol["capabilities"]["json_schema"] == "llama_cpp"


async def test_auto_on_a_server_that_enforces_nothing_speaks_text(app_client: AppFactory) -> None:
    steps = ["Thought: t\nAction: python[print(7417)]", "Thought: t\nAction: finish[7417]"]
    fake = FakeOpenAI(scenarios=[Scenario("1969-07-20", steps=steps)])
    async with app_client(fake, agent_protocol="auto") as client:
        body = (await client.post("/ask", json={"question": QUESTION})).json()
    assert body["answer"] == "7417"
    run = [r for r in fake.chat_requests if QUESTION in r.text]
    assert "response_format" not in run[0].body and run[0].stop  # the text protocol


async def test_tools_on_a_server_that_ignores_them_is_an_error_not_an_answer(
    app_client: AppFactory,
) -> None:
    fake = FakeOpenAI(scenarios=[Scenario("1969-07-20", steps=["It is 690928 days."])])
    async with app_client(fake, agent_protocol="tools") as client:
        body = (await client.post("/ask", json={"question": QUESTION})).json()  # waits for it
    assert body["status"] == "error" and body["answer"] is None
    assert "ignore tool calls" in body["error"]
