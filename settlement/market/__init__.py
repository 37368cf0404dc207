"""Market prices for settlement at spot-market prices (issue 17): :mod:`.prices` imports
day-ahead and real-time price curves per trading node or province from CSV or XLSX, keeps
their source and version, and looks them up by node and day.
"""
