"""Views: what the pages show, computed from runs: URL state, lessons, verify, reports."""
