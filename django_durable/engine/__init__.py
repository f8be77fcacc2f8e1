"""The engine: runs workflow tasks through the runtime and activities through their functions."""
