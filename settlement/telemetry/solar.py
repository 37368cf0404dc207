"""Where the sun is, so that a silent plant is judged only while it should produce. Pure numpy.

The solar position is NOAA's general solar position formulas (Spencer's 1971 Fourier series for
the declination and the equation of time; NOAA Global Monitoring Laboratory, "General Solar
Position Calculations"): good to about half a degree, plenty for deciding whether a plant should
be producing. pvlib's SPA is more exact but would bring pandas and scipy into the server for that.

A plant *should produce* while the sun is at least :data:`DAYLIGHT_ELEVATION_DEG` above the
horizon: below that a rooftop array makes little and its inverter may well be asleep.
"""

from __future__ import annotations

import numpy as np

from settlement.telemetry.energy import DAY_US, MINUTE_US

#: The sun's elevation from which a plant should produce [deg].
DAYLIGHT_ELEVATION_DEG = 10.0
#: Used for plants whose coordinates are not recorded: Shanghai [deg].
DEFAULT_LATITUDE, DEFAULT_LONGITUDE = 31.23, 121.47


def sun_elevation_deg(ts_us: np.ndarray, latitude_deg: np.ndarray | float,
                      longitude_deg: np.ndarray | float) -> np.ndarray:
    """The sun's geometric elevation (no refraction) at each time and place.

    Parameters
    ----------
    ts_us : ndarray of int64 [µs since the Unix epoch, UTC]
    latitude_deg, longitude_deg : float or ndarray broadcastable with ``ts_us`` [deg, north and east positive]

    Returns
    -------
    ndarray [deg]
    """
    ts_us = np.asarray(ts_us, np.int64)
    moment = ts_us.astype("datetime64[us]")
    year_start = moment.astype("datetime64[Y]")
    day_of_year = (moment.astype("datetime64[D]") - year_start.astype("datetime64[D]")).astype(np.int64)  # 0-based
    year = year_start.astype(np.int64) + 1970
    days_in_year = np.where((year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0)), 366, 365)
    minutes_utc = (ts_us % DAY_US) / MINUTE_US
    gamma = 2 * np.pi / days_in_year * (day_of_year + (minutes_utc / 60 - 12) / 24)
    eqtime = 229.18 * (0.000075 + 0.001868 * np.cos(gamma) - 0.032077 * np.sin(gamma)
                       - 0.014615 * np.cos(2 * gamma) - 0.040849 * np.sin(2 * gamma))
    declination = (0.006918 - 0.399912 * np.cos(gamma) + 0.070257 * np.sin(gamma)
                   - 0.006758 * np.cos(2 * gamma) + 0.000907 * np.sin(2 * gamma)
                   - 0.002697 * np.cos(3 * gamma) + 0.00148 * np.sin(3 * gamma))
    true_solar_minutes = minutes_utc + eqtime + 4 * np.asarray(longitude_deg, float)
    hour_angle = np.radians(true_solar_minutes / 4 - 180)
    lat = np.radians(np.asarray(latitude_deg, float))
    cos_zenith = np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(hour_angle)
    return 90.0 - np.degrees(np.arccos(np.clip(cos_zenith, -1.0, 1.0)))


def should_produce(ts_us: np.ndarray, latitude_deg: np.ndarray | float, longitude_deg: np.ndarray | float,
                   threshold_deg: float = DAYLIGHT_ELEVATION_DEG) -> np.ndarray:
    """Whether the sun is high enough for the plant to produce at each time (bool ndarray)."""
    return sun_elevation_deg(ts_us, latitude_deg, longitude_deg) >= threshold_deg


def first_daylight(after_us: int, until_us: int, latitude_deg: float, longitude_deg: float,
                   step_us: int = MINUTE_US) -> int | None:
    """The first minute in ``[after_us, until_us]`` at which the plant should produce, or None.

    Searched day by day at one-minute steps, so a plant silent for weeks costs little.
    """
    start = int(after_us)
    while start <= until_us:
        stop = min(start + DAY_US, int(until_us) + 1)
        times = np.arange(start, stop, step_us, dtype=np.int64)
        hits = np.flatnonzero(should_produce(times, latitude_deg, longitude_deg))
        if hits.size:
            return int(times[hits[0]])
        start = stop
    return None


def first_daylight_stretch(after_us: int, until_us: int, latitude_deg: float, longitude_deg: float,
                           min_us: int, step_us: int = MINUTE_US) -> int | None:
    """Where the first stretch of daylight of at least ``min_us`` within ``[after_us, until_us]`` begins.

    A stretch is cut at both ends of the span: the daylight left on the day of ``after_us`` counts
    only from ``after_us``, the stretch still going on at ``until_us`` only up to it. Returns None
    when there is none (all night, or only shorter bits of daylight).
    """
    times = np.arange(int(after_us), int(until_us) + 1, step_us, dtype=np.int64)
    if times.size == 0:
        return None
    day = should_produce(times, latitude_deg, longitude_deg)
    edges = np.diff(np.concatenate([[0], day.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # ends: one past the run
    long_enough = (ends - starts - 1) * step_us >= min_us
    if not long_enough.any():
        return None
    return int(times[starts[np.argmax(long_enough)]])


def daylight_us(start_us: int, end_us: int, latitude_deg: float, longitude_deg: float,
                step_us: int = MINUTE_US) -> int:
    """How much of ``[start_us, end_us)`` the plant should produce [µs], to the minute."""
    times = np.arange(int(start_us), int(end_us), step_us, dtype=np.int64)
    if times.size == 0:
        return 0
    return int(should_produce(times, latitude_deg, longitude_deg).sum()) * step_us
