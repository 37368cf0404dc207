"""Prepaid accounts (预付费): money in first, usage charged daily, cut-off and restore of the
supply through the device-control port.

Public: :mod:`.accounts` — ``open_account``, ``record_usage``, ``tick``, ``start_topup``,
``settle_topup``, ``refund_topup``, ``balance``, ``statement``, ``run_commands``.
"""
