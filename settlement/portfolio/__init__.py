"""A PV company's own portfolio in and out of pvsettle without SQL: owners, staff, tariffs,
plants, meters (and their replacements), contracts and nearby-consumption terms.

:mod:`.sheets` reads and writes the files (a folder of CSV files or one XLSX workbook),
:mod:`.tables` says what each column holds, :mod:`.changes` imports (checked, idempotent,
audited, all or nothing) and :mod:`.export` writes what is stored in the same tables.
"""
