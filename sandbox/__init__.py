"""The sandbox: an owner's month on one machine without WeChat, served only by ``pvsettle demo``.

What it adds to the demo's server (``install``), and nothing else ever imports it:

- ``/sandbox/`` — an H5 page that plays the mini-program in a phone-sized frame against the real
  ``/api/v1``: pick a demo WeChat user, log in, bind with an invitation code, watch the live power,
  the generation charts, confirm or dispute a form, pay a bill; beside it the user's phone
  (subscribe, template and customer-service messages the fake WeChat delivered, bot replies) and
  a bot console that posts real signed XML to ``/wechat`` as the chosen user;
- the fake WeChat API and fake WeChat Pay of :mod:`settlement.fakes` on ports of their own inside
  the demo process, with the outbound clients pointed at them (:mod:`sandbox.fakes`);
- the demo users: WeChat users for owners to play, and O&M staff for the bot console
  (:mod:`sandbox.people`);
- a telemetry simulator that keeps the demo plants producing through the real ingest service
  (:mod:`sandbox.simulator`).

The sandbox has no authentication of its own (anyone who reaches it may issue invitation codes
and speak as any demo user): it is a tool for one machine, and ``pvsettle demo`` listens on
127.0.0.1 unless ``PVSETTLE_HOST`` says otherwise.

Arrows: ``server → sandbox → settlement``; nothing in ``settlement`` or the API packages imports it.
Refusals are the domain's own exceptions (:mod:`settlement.errors`), so the server's error
middleware answers them in the JSON error shape like every other route.
"""
