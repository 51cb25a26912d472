"""Shell widget scripts printed by `nl2cmd init SHELL` (package data; no Python imports)."""
