"""Money in through WeChat Pay and from the finance system: prepay orders, the payment and refund
notifications, refunds, reconciliation with the trade bill, offline payment imports.

Public: :mod:`.payments` — ``start_payment``, ``handle_notification`` (verified by the port,
:mod:`settlement.adapters.wechatpay_v3`), ``request_refund``, ``settle_refund``;
:mod:`.orders` — what payments and prepaid top-ups share (``next_attempt``, ``prepay``,
``JsapiPayment``, ``Handled``…); :mod:`.reconcile` — ``reconcile_orders``, ``reconcile_trade_bill``;
:mod:`.offline_import` — ``import_offline_payments``.
"""
