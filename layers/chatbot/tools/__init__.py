"""The tools the assistant can call, from two sources: the built-in tools over the application data
(`builtin`, an in-process MCP server) and the host application's own MCP servers (`remote`). `toolbox` holds
both for the process; `catalog` is what one request offers the model and runs; `tool` is what they share."""

from .builtin import CALLER_META_KEY, TOOLS, BuiltinTools, ToolSpec, build_server, caller_meta, permitted
from .catalog import Catalog, offered_name
from .remote import Listing, RemoteServer
from .tool import PERMISSION_META_KEY, Tool, ToolResult, not_permitted
from .toolbox import Toolbox

__all__ = [
    "CALLER_META_KEY",
    "PERMISSION_META_KEY",
    "TOOLS",
    "BuiltinTools",
    "Catalog",
    "Listing",
    "RemoteServer",
    "Tool",
    "ToolResult",
    "ToolSpec",
    "Toolbox",
    "build_server",
    "caller_meta",
    "not_permitted",
    "offered_name",
    "permitted",
]
