"""The ``pvsettle`` command line: :mod:`.main` builds the parser from the command groups, one
module each (:mod:`.serve`, :mod:`.database`, :mod:`.cycles`, :mod:`.bench`, :mod:`.readings`,
:mod:`.payments`, :mod:`.reports`, :mod:`.telemetry`, :mod:`.prepaid`, :mod:`.faults`, :mod:`.invoices`,
:mod:`.gateway`); what they share is :mod:`.common`, which imports none of them.
"""


def main(argv=None) -> int:
    """The installed ``pvsettle`` script's entry point (``server.cli:main``)."""
    from server.cli.main import main as run  # here, not above: the package imports nothing it contains

    return run(argv)
