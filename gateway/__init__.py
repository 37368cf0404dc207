"""The pvsettle gateway: reads field devices and speaks to the server only through /ingest/v1.

A long-running collector (``pvsettle gateway run --config FILE``, one per site cluster, on a
small box at the site or beside the server) that polls DL/T 645-2007 meters (:mod:`.dlt645`,
over a DTU or serial server in transparent TCP mode, or a serial port) and Modbus TCP inverters
(:mod:`.modbus`, SunSpec or a vendor register map), keeps what it read in a local SQLite queue
(:mod:`.queue`) and posts it to ``POST /ingest/v1/readings``, ``/telemetry`` and
``/device-status`` with its collector key (:mod:`.uplink`), exactly as any collector would: the
server stays the one place that validates. :mod:`.runner` schedules it all, :mod:`.config` reads
the TOML file.

It imports no settlement code: it may run on another box, with only this package installed.

Exceptions::

    GatewayError                anything the gateway refuses or fails at
    ├── ConfigError             the configuration file; names the line
    ├── DeviceFault             a device did not answer, or answered what cannot be a reading;
    │                           a stable ``code`` (timeout, garbled, bad_checksum, wrong_address, …)
    └── UplinkError             the server could not take a batch now (unreachable, 5xx, 401)
"""
