"""The gateway's exceptions (the tree is drawn in :mod:`gateway`)."""

from __future__ import annotations


class GatewayError(Exception):
    """Anything the gateway refuses or fails at."""


class ConfigError(GatewayError):
    """The configuration file is not one the gateway can run.

    Parameters
    ----------
    message : str
        What is wrong, in words an operator acts on.
    line : int or None
        The 1-based line of the file it is about, when there is one.
    path : str
        The file.
    """

    def __init__(self, message: str, *, line: int | None = None, path: str = ""):
        self.message, self.line, self.path = message, line, path
        where = f"{path}:{line}: " if line else (f"{path}: " if path else "")
        super().__init__(where + message)


class DeviceFault(GatewayError):
    """A device did not answer, or answered something that cannot become a reading.

    ``code`` is stable (it is what the server stores in the device's status):

    ==================  ===========================================================================
    ``unreachable``     the TCP connection (DTU, serial server, inverter) could not be opened
    ``timeout``         connected, asked, and no answer came in time (a hung socket, a dead meter)
    ``garbled``         bytes came back that are no frame (noise on the RS-485 line, wrong baud)
    ``bad_checksum``    a frame came back whose checksum is wrong
    ``wrong_address``   a frame came back from another meter address or Modbus unit than asked
    ``device_error``    the device answered with an error (DL/T 645 error frame, Modbus exception)
    ``absurd_value``    a value no honest device shows (BCD digits above 9, rates that do not add
                        up to the total, power above the limit, unimplemented points)
    ``counter_decreased`` an energy register below its last value (and no rollover)
    ``clock_skew``      the meter's clock is off by more than the configured skew
    ``not_sunspec``     no SunSpec marker or model chain where the config said SunSpec
    ==================  ===========================================================================
    """

    def __init__(self, code: str, message: str):
        self.code, self.message = code, message
        super().__init__(f"{code}: {message}")


class UplinkError(GatewayError):
    """The server did not take a batch now; what was sent stays queued.

    ``retry`` is False for an answer that sending the same again cannot change (400: the body).
    """

    def __init__(self, message: str, *, status: int | None = None, retry: bool = True):
        self.status, self.retry = status, retry
        super().__init__(message)
