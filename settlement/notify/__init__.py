"""Notifications: the outbox written beside each change, the dispatcher that sends it once, and
the subscribe-message answers that say whom it may reach.

Public: :mod:`.outbox` — ``NotifyApps``, ``enqueue``, ``notify_owner``, ``notify_staff``, ``render``;
:mod:`.dispatcher` — ``Dispatcher``; :mod:`.subscriptions` — ``record_answers``, ``may_send``.
"""
