"""Owners and who acts for them: bindings of WeChat users, grants to family or finance staff,
mini-program sessions, access rights, their fault reports.

Public: :mod:`.bindings` — ``bind_with_invitation``, ``bind_with_phone``, ``unbind``;
:mod:`.grants`; :mod:`.sessions` — ``open_session``, ``verify_token``; :mod:`.access` —
``load_principal``, ``require``; :mod:`.principal_cache` — ``invalidate``; :mod:`.owner_lists` —
``bill_page``; :mod:`.faults` — ``report_fault``, ``set_fault_state``.
"""
