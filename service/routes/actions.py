"""The server's allow-list, with the descriptions the model sees; then the MCP servers' tools
that ``ALLOWED_ACTIONS`` does not list (``allowed: false``: no run can use them)."""

from __future__ import annotations

from fastapi import APIRouter

from agents.react.prompt import FINISH_DOC
from service.deps import Client, State
from service.errors import problem_responses
from service.schemas import ActionInfo
from tools.base import availability
from tools.mcp_tool import McpTool

router = APIRouter(tags=["actions"])


@router.get(
    "/actions",
    summary="The actions a run may use",
    response_model=list[ActionInfo],
    responses=problem_responses(401),
)
async def actions(state: State, _: Client) -> list[ActionInfo]:
    allowed = state.settings.allowed_actions
    listed = [
        ActionInfo(
            name=tool.name,
            input=tool.input_hint,
            description=tool.description,
            available=(why := availability(tool)) is None,
            unavailable_reason=why,
            allowed=tool.name in allowed,
        )
        for tool in state.tools
        if tool.name in allowed or isinstance(tool, McpTool)
    ]
    finish = ActionInfo(name="finish", input="answer", description=FINISH_DOC.description)
    return [*(a for a in listed if a.allowed), finish, *(a for a in listed if not a.allowed)]
