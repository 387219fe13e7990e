"""pluggy hook specifications (``specs``) and csn's built-in plugins."""
