"""The observer's name for gostg's HTTP plugin client (gostg.plugin.http), kept for its users."""
from ..plugin import PluginError
from ..plugin.http import MAX_REPLY, Target, plugin_ok, post_json

__all__ = ["MAX_REPLY", "PluginError", "Target", "plugin_ok", "post_json"]
