"""Server-rendered pages for owners (mounted at /e): the e-bill of a form or a bill."""
