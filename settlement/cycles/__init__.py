"""Reading cycles and confirmation forms (电量确认单): meter readings become forms, owners confirm
or dispute them, staff adjust them.

Public: :mod:`.runs` — ``run_cycle``, ``due_periods``, ``parse_period``, ``cycle_status``;
:mod:`.forms` — ``send_form``, ``confirm_form``, ``dispute_form``, ``adjust_reading``,
``adjust_energy``, ``auto_confirm_due``. The cycle is scheduled by ``server/scheduler.py``.
"""
