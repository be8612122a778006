"""Core: settings, limits, the field table and RunConfig; every other layer reads them."""
